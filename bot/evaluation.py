"""Measure the matcher on a questions file: how often it answers right, wrong, or asks back.

A questions file is a YAML list of `{q, expect, style}`: `expect` lists the topic ids that are
a correct direct answer, `[]` meaning out of scope (the bot must not answer it directly).
A wrong answer is the costly failure, so the report keeps it apart from clarify and fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from bot.matcher import Match


class MatcherLike(Protocol):
    def match(self, text: str) -> Match: ...


@dataclass(frozen=True)
class EvalQuestion:
    q: str
    expect: tuple[str, ...]  # correct direct answers; empty = out of scope
    style: str

    @property
    def in_scope(self) -> bool:
        return bool(self.expect)


@dataclass(frozen=True)
class Miss:
    query: str
    expected: tuple[str, ...]
    got: str  # "answer: x", "clarify: a, b" or "fallback"


@dataclass
class Tally:
    """Outcome counts for one group of questions (all in scope, or all out of scope)."""

    total: int = 0
    correct: int = 0  # in scope: answered a right topic; out of scope: did not answer
    wrong: int = 0  # in scope: answered a wrong topic; out of scope: answered at all
    clarify: int = 0
    clarify_hit: int = 0  # clarify offering a right topic among its choices
    fallback: int = 0

    def add(self, question: EvalQuestion, match: Match) -> bool:
        """Count one outcome; True when it is a success."""
        self.total += 1
        expected = set(question.expect)
        if match.decision == "clarify":
            self.clarify += 1
            self.clarify_hit += any(c.topic in expected for c in match.candidates)
        elif match.decision == "fallback":
            self.fallback += 1
        if question.in_scope:
            good = match.decision == "answer" and match.topic in expected
            bad = match.decision == "answer" and not good
        else:
            bad = match.decision == "answer"
            good = not bad
        self.correct += good
        self.wrong += bad
        return good


@dataclass
class EvalReport:
    in_scope: Tally = field(default_factory=Tally)
    out_of_scope: Tally = field(default_factory=Tally)
    by_style: dict[str, Tally] = field(default_factory=dict)
    misses: list[Miss] = field(default_factory=list)

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
    return "fallback"


def evaluate(questions: Iterable[EvalQuestion], matcher: MatcherLike) -> EvalReport:
    report = EvalReport()
    for question in questions:
        match = matcher.match(question.q)
        tally = report.in_scope if question.in_scope else report.out_of_scope
        good = tally.add(question, match)
        report.by_style.setdefault(question.style, Tally()).add(question, match)
        if not good:
            report.misses.append(Miss(question.q, question.expect, describe(match)))
    return report


def format_report(report: EvalReport) -> str:
    ins, oos = report.in_scope, report.out_of_scope
    lines = [
        f"In scope ({ins.total} questions):",
        f"  direct correct  {report.direct_correct:5.1f}%  ({ins.correct})",
        f"  wrong answer    {report.wrong_answer:5.1f}%  ({ins.wrong})",
        f"  clarify         {report.clarify:5.1f}%  ({ins.clarify}; right topic offered in "
        f"{ins.clarify_hit}, {report.clarify_hit:.0f}%)",
        f"  fallback        {report.fallback:5.1f}%  ({ins.fallback})",
        f"Out of scope ({oos.total} questions):",
        f"  false answer    {report.false_answer:5.1f}%  ({oos.wrong})",
        "",
        _style_table(report.by_style),
    ]
    if report.misses:
        lines += ["", f"Misses ({len(report.misses)}):"]
        for miss in report.misses:
            expected = ", ".join(miss.expected) or "(out of scope)"
            lines.append(f"  {miss.query!r}\n    expected {expected}; got {miss.got}")
    return "\n".join(lines)


def _style_table(by_style: dict[str, Tally]) -> str:
    header = ("style", "n", "correct", "wrong", "clarify", "fallback")
    rows: list[Sequence[str]] = [header]
    for style, tally in sorted(by_style.items()):
        rows.append(
            (
                style,
                str(tally.total),
                f"{percent(tally.correct, tally.total):.0f}%",
                f"{percent(tally.wrong, tally.total):.0f}%",
                f"{percent(tally.clarify, tally.total):.0f}%",
                f"{percent(tally.fallback, tally.total):.0f}%",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )
