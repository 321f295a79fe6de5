"""Measure the matcher: how often it answers right, wrong, or asks back.

Two sources of questions:

- a questions file, a YAML list of `{q, expect, style}`: `expect` lists the topic ids that are a
  correct direct answer, `[]` meaning out of scope (the bot must not answer it directly);
- the knowledge base itself, by cross-validation: each alias, question, example and
  out-of-scope phrasing is taken out of the knowledge base, the index is rebuilt without it,
  and it is asked (or, faster, a tenth of them at a time). The matcher never saw that
  phrasing, so this is the figure that says whether it generalises; a figure on a set the
  knowledge base was tuned on does not.

A wrong answer is the costly failure, so the report keeps it apart from clarify and fallback.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from bot.knowledge import KnowledgeBase
from bot.matcher import Match


class MatcherLike(Protocol):
    def match(self, text: str) -> Match: ...


@dataclass(frozen=True)
class EvalQuestion:
    q: str
    expect: tuple[str, ...]  # correct direct answers; empty = out of scope
    style: str
    source: str = ""  # in cross-validation, the field it came from ("aliases", "examples", ...)

    @property
    def in_scope(self) -> bool:
        return bool(self.expect)


@dataclass(frozen=True)
class Miss:
    query: str
    expected: tuple[str, ...]
    got: str  # "answer: x", "clarify: a, b" or "fallback"
    score: float  # the best candidate's score, 0 when there was none
    phrasing: str  # the knowledge-base phrasing the best candidate matched best


@dataclass
class Tally:
    """Outcome counts for one group of questions (all in scope, or all out of scope)."""

    total: int = 0
    correct: int = 0  # in scope: answered a right topic; out of scope: did not answer
    wrong: int = 0  # in scope: answered a wrong topic; out of scope: answered at all
    clarify: int = 0
    clarify_hit: int = 0  # clarify offering a right topic among its choices
    fallback: int = 0
    smalltalk: int = 0  # taken for chit-chat ("thanks!"): never an answer
    right: int = 0  # answered a right topic (in scope only); the outcomes add up with it

    def add(self, question: EvalQuestion, match: Match) -> bool:
        """Count one outcome; True when it is a success."""
        self.total += 1
        expected = set(question.expect)
        if match.decision == "clarify":
            self.clarify += 1
            self.clarify_hit += any(c.topic in expected for c in match.candidates)
        elif match.decision == "fallback":
            self.fallback += 1
        elif match.decision == "smalltalk":
            self.smalltalk += 1
        if question.in_scope:
            good = match.decision == "answer" and match.topic in expected
            bad = match.decision == "answer" and not good
        else:
            bad = match.decision == "answer"
            good = not bad
        self.correct += good
        self.wrong += bad
        self.right += good and question.in_scope
        return good

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TopicFigures:
    """How one topic fares: precision of its answers, recall of the questions it owns."""

    topic: str
    support: int  # in-scope questions whose first expected topic is this one
    recalled: int  # of those, answered with a right topic
    answered: int  # answers that named this topic
    right: int  # of those, right

    @property
    def precision(self) -> float:
        return percent(self.right, self.answered)

    @property
    def recall(self) -> float:
        return percent(self.recalled, self.support)


@dataclass
class EvalReport:
    in_scope: Tally = field(default_factory=Tally)
    out_of_scope: Tally = field(default_factory=Tally)
    by_style: dict[str, Tally] = field(default_factory=dict)
    # In cross-validation: by where a phrasing came from (aliases, questions, examples, ...).
    by_source: dict[str, Tally] = field(default_factory=dict)
    misses: list[Miss] = field(default_factory=list)
    # Per topic: [support, recalled, answered, right]; see TopicFigures.
    _topics: dict[str, list[int]] = field(default_factory=dict)
    # (expected, answered) -> count, for in-scope wrong answers.
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, question: EvalQuestion, match: Match) -> None:
        tally = self.in_scope if question.in_scope else self.out_of_scope
        good = tally.add(question, match)
        self.by_style.setdefault(question.style, Tally()).add(question, match)
        if question.source:
            self.by_source.setdefault(question.source, Tally()).add(question, match)
        if question.in_scope:
            figures = self._topics.setdefault(question.expect[0], [0, 0, 0, 0])
            figures[0] += 1
            figures[1] += good
        if match.decision == "answer" and match.topic is not None:
            figures = self._topics.setdefault(match.topic, [0, 0, 0, 0])
            figures[2] += 1
            figures[3] += good
            if question.in_scope and not good:
                self.confusions[(question.expect[0], match.topic)] += 1
        if not good:
            best = match.candidates[0] if match.candidates else None
            self.misses.append(
                Miss(
                    question.q,
                    question.expect,
                    describe(match),
                    best.score if best else 0.0,
                    best.phrasing if best else "",
                )
            )

    @property
    def topics(self) -> list[TopicFigures]:
        return [TopicFigures(topic, *figures) for topic, figures in sorted(self._topics.items())]

    @property
    def direct_correct(self) -> float:
        return percent(self.in_scope.correct, self.in_scope.total)

    @property
    def wrong_answer(self) -> float:
        return percent(self.in_scope.wrong, self.in_scope.total)

    @property
    def clarify(self) -> float:
        return percent(self.in_scope.clarify, self.in_scope.total)

    @property
    def clarify_hit(self) -> float:
        """Of the in-scope clarifies, how often a right topic was among the choices."""
        return percent(self.in_scope.clarify_hit, self.in_scope.clarify)

    @property
    def fallback(self) -> float:
        return percent(self.in_scope.fallback, self.in_scope.total)

    @property
    def false_answer(self) -> float:
        return percent(self.out_of_scope.wrong, self.out_of_scope.total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_scope": {
                **self.in_scope.as_dict(),
                "direct_correct": self.direct_correct,
                "wrong_answer": self.wrong_answer,
                "clarify_rate": self.clarify,
                "clarify_hit_rate": self.clarify_hit,
                "fallback_rate": self.fallback,
            },
            "out_of_scope": {**self.out_of_scope.as_dict(), "false_answer": self.false_answer},
            "by_style": {style: tally.as_dict() for style, tally in sorted(self.by_style.items())},
            "by_source": {
                source: tally.as_dict() for source, tally in sorted(self.by_source.items())
            },
            "topics": [
                {**dataclasses.asdict(t), "precision": t.precision, "recall": t.recall}
                for t in self.topics
            ],
            "confusions": [
                {"expected": expected, "got": got, "count": count}
                for (expected, got), count in self.confusions.most_common()
            ],
            "misses": [dataclasses.asdict(miss) for miss in self.misses],
        }


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read a questions file; ValueError names the entry that is malformed."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of questions")
    questions = []
    for index, item in enumerate(data):
        where = f"{path}: question {index + 1}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping with q, expect and style")
        q, expect, style = item.get("q"), item.get("expect"), item.get("style", "")
        if not isinstance(q, str) or not q.strip():
            raise ValueError(f"{where}: q must be a non-empty string")
        if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
            raise ValueError(f"{where}: expect must be a list of topic ids ([] = out of scope)")
        if not isinstance(style, str):
            raise ValueError(f"{where}: style must be a string")
        questions.append(EvalQuestion(q, tuple(expect), style or "unstyled"))
    return questions


def describe(match: Match) -> str:
    if match.decision == "answer":
        return f"answer: {match.topic}"
    if match.decision == "clarify":
        return "clarify: " + ", ".join(c.topic for c in match.candidates)
    return match.decision


def evaluate(questions: Iterable[EvalQuestion], matcher: MatcherLike) -> EvalReport:
    report = EvalReport()
    for question in questions:
        report.add(question, matcher.match(question.q))
    return report


PHRASING_FIELDS = ("aliases", "questions", "examples")


def held_out(
    knowledge: KnowledgeBase, folds: int | None = None
) -> Iterator[tuple[KnowledgeBase, list[EvalQuestion]]]:
    """The knowledge base's aliases, questions, examples and out-of-scope phrasings as questions,
    each with a knowledge base that lacks it: one phrasing at a time (leave-one-out), or, with
    `folds`, that many groups, each taking every `folds`-th phrasing of every topic.

    A phrasing's expected topic is its own topic, its style the topic's kind.
    """
    phrasings: list[tuple[str, str, int, EvalQuestion]] = []  # (topic id or "", field, index)
    for topic in knowledge.topics.values():
        for name in PHRASING_FIELDS:
            for index, text in enumerate(getattr(topic, name)):
                question = EvalQuestion(text, (topic.id,), topic.kind, name)
                phrasings.append((topic.id, name, index, question))
    for index, text in enumerate(knowledge.out_of_scope):
        question = EvalQuestion(text, (), "out-of-scope", "out_of_scope")
        phrasings.append(("", "out_of_scope", index, question))
    count = len(phrasings) if folds is None else max(1, min(folds, len(phrasings)))
    for fold in range(count):
        chosen = phrasings[fold::count]
        removed = {(topic, name, index) for topic, name, index, _q in chosen}
        topics = dict(knowledge.topics)
        for topic_id in {topic for topic, _name, _index, _q in chosen if topic}:
            topic = topics[topic_id]
            topics[topic_id] = dataclasses.replace(
                topic,
                **{
                    name: tuple(
                        text
                        for index, text in enumerate(getattr(topic, name))
                        if (topic_id, name, index) not in removed
                    )
                    for name in PHRASING_FIELDS
                },
            )
        out_of_scope = tuple(
            text
            for index, text in enumerate(knowledge.out_of_scope)
            if ("", "out_of_scope", index) not in removed
        )
        reduced = dataclasses.replace(knowledge, topics=topics, out_of_scope=out_of_scope)
        yield reduced, [question for _topic, _name, _index, question in chosen]


def cross_validate(
    knowledge: KnowledgeBase,
    build: Callable[[KnowledgeBase], MatcherLike],
    folds: int | None = None,
) -> EvalReport:
    """Each phrasing asked of a matcher built without it; see `held_out`."""
    report = EvalReport()
    for reduced, questions in held_out(knowledge, folds):
        matcher = build(reduced)
        for question in questions:
            report.add(question, matcher.match(question.q))
    return report


@dataclass(frozen=True)
class Floors:
    """Targets that make `eval` fail (exit 1), so CI can hold a floor."""

    min_direct: float | None = None
    max_wrong: float | None = None
    max_oos: float | None = None

    def breaches(self, report: EvalReport) -> list[str]:
        found = []
        if self.min_direct is not None and report.direct_correct < self.min_direct:
            found.append(f"direct correct {report.direct_correct:.1f}% < {self.min_direct}%")
        if self.max_wrong is not None and report.wrong_answer > self.max_wrong:
            found.append(f"wrong answer {report.wrong_answer:.1f}% > {self.max_wrong}%")
        if self.max_oos is not None and report.false_answer > self.max_oos:
            found.append(
                f"out of scope answered {report.false_answer:.1f}% > {self.max_oos}%"
            )
        return found


def format_report(report: EvalReport, details: bool = True) -> str:
    ins, oos = report.in_scope, report.out_of_scope
    lines = [
        f"In scope ({ins.total} questions):",
        f"  direct correct  {report.direct_correct:5.1f}%  ({ins.correct})",
        f"  wrong answer    {report.wrong_answer:5.1f}%  ({ins.wrong})",
        f"  clarify         {report.clarify:5.1f}%  ({ins.clarify}; right topic offered in "
        f"{ins.clarify_hit}, {report.clarify_hit:.0f}%)",
        f"  fallback        {report.fallback:5.1f}%  ({ins.fallback})",
    ]
    if ins.smalltalk:
        lines.append(
            f"  small talk      {percent(ins.smalltalk, ins.total):5.1f}%  ({ins.smalltalk})"
        )
    lines += [
        f"Out of scope ({oos.total} questions):",
        f"  false answer    {report.false_answer:5.1f}%  ({oos.wrong})",
        "",
        _style_table(report.by_style),
    ]
    if report.by_source:
        lines += ["", _style_table(report.by_source, "source")]
    if not details:
        return "\n".join(lines)
    if report.confusions:
        lines += ["", "Confusions (expected -> answered, count):"]
        lines += [
            f"  {expected} -> {got}  {count}"
            for (expected, got), count in report.confusions.most_common()
        ]
    lines += ["", _topic_table(report.topics)]
    if report.misses:
        lines += ["", f"Misses ({len(report.misses)}):"]
        for miss in report.misses:
            expected = ", ".join(miss.expected) or "(out of scope)"
            matched = f" (score {miss.score:.0f}, via {miss.phrasing!r})" if miss.phrasing else ""
            lines.append(f"  {miss.query!r}\n    expected {expected}; got {miss.got}{matched}")
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _style_table(by_style: dict[str, Tally], heading: str = "style") -> str:
    """Right answer, wrong answer, clarify and fallback add up to 100% in every row; out of
    scope, an answer is always wrong and anything else is right."""
    rows: list[Sequence[str]] = [(heading, "n", "right", "wrong", "clarify", "fallback")]
    for style, tally in sorted(by_style.items()):
        counts = (tally.right, tally.wrong, tally.clarify, tally.fallback + tally.smalltalk)
        rows.append(
            (style, str(tally.total), *(f"{percent(c, tally.total):.0f}%" for c in counts))
        )
    return _table(rows)


def _topic_table(topics: Sequence[TopicFigures]) -> str:
    rows: list[Sequence[str]] = [("topic", "support", "recall", "answered", "precision")]
    for t in topics:
        rows.append(
            (t.topic, str(t.support), f"{t.recall:.0f}%", str(t.answered), f"{t.precision:.0f}%")
        )
    return _table(rows)
