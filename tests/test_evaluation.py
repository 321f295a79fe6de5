"""The evaluation report: figures on a tiny questions file, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluation import (
    EvalQuestion,
    Floors,
    cross_validate,
    evaluate,
    format_report,
    load_questions,
)
from bot.knowledge import KnowledgeBase, load_knowledge
from bot.matcher import Candidate, Match, Matcher

SMALL_KB = Path(__file__).resolve().parent / "fixtures" / "matcher" / "small"

QUESTIONS = """\
- q: what is effleurage
  expect: [effleurage]
  style: direct
- q: petrisage
  expect: [petrissage]
  style: typo
- q: kneading
  expect: [petrissage]
  style: alias
- q: tapping
  expect: [tapotement, vibration]
  style: alias
- q: shaking
  expect: [vibration]
  style: alias
- q: car oil
  expect: []
  style: out-of-scope
- q: tell me a joke
  expect: []
  style: out-of-scope
"""


class ScriptedMatcher:
    """Replies from a table, so the expected figures do not depend on the real matcher."""

    def __init__(self, replies: dict[str, Match]) -> None:
        self.replies = replies

    def match(self, text: str) -> Match:
        return self.replies[text]


def answer(topic: str) -> Match:
    return Match("answer", topic, (Candidate(topic, 90.0),))


def clarify(*topics: str) -> Match:
    return Match("clarify", None, tuple(Candidate(t, 40.0 - i) for i, t in enumerate(topics)))


FALLBACK = Match("fallback", None, ())

REPLIES = {
    "what is effleurage": answer("effleurage"),  # correct
    "petrisage": answer("petrissage"),  # correct
    "kneading": answer("effleurage"),  # wrong answer
    "tapping": clarify("friction", "vibration"),  # clarify, right topic offered
    "shaking": FALLBACK,  # fallback
    "car oil": answer("oil-and-lotion"),  # false answer out of scope
    "tell me a joke": clarify("benefits"),  # not an answer: fine out of scope
}


@pytest.fixture(scope="module")
def small_kb() -> KnowledgeBase:
    return load_knowledge(SMALL_KB, require_contract=False)


@pytest.fixture
def questions(tmp_path: Path) -> list[EvalQuestion]:
    path = tmp_path / "questions.yaml"
    path.write_text(QUESTIONS, encoding="utf-8")
    return load_questions(path)


def test_load_questions_reads_every_field(questions: list[EvalQuestion]) -> None:
    assert len(questions) == 7
    assert questions[3] == EvalQuestion("tapping", ("tapotement", "vibration"), "alias")
    assert not questions[5].in_scope


def test_figures_worked_out_by_hand(questions: list[EvalQuestion]) -> None:
    report = evaluate(questions, ScriptedMatcher(REPLIES))
    # 5 in scope: 2 correct, 1 wrong, 1 clarify (right topic offered), 1 fallback.
    assert report.in_scope.total == 5
    assert report.direct_correct == pytest.approx(40.0)
    assert report.wrong_answer == pytest.approx(20.0)
    assert report.clarify == pytest.approx(20.0)
    assert report.clarify_hit == pytest.approx(100.0)
    assert report.fallback == pytest.approx(20.0)
    # 2 out of scope: 1 answered.
    assert report.out_of_scope.total == 2
    assert report.false_answer == pytest.approx(50.0)
    alias = report.by_style["alias"]
    assert (alias.total, alias.correct, alias.wrong, alias.clarify, alias.fallback) == (
        3, 0, 1, 1, 1,
    )  # fmt: skip
    assert [(m.query, m.got) for m in report.misses] == [
        ("kneading", "answer: effleurage"),
        ("tapping", "clarify: friction, vibration"),
        ("shaking", "fallback"),
        ("car oil", "answer: oil-and-lotion"),
    ]


def test_format_report_shows_figures_styles_and_misses(questions: list[EvalQuestion]) -> None:
    text = format_report(evaluate(questions, ScriptedMatcher(REPLIES)))
    assert "direct correct   40.0%" in text
    assert "wrong answer     20.0%" in text
    assert "false answer     50.0%" in text
    assert "right topic offered in 1, 100%" in text
    assert "out-of-scope" in text and "typo" in text
    assert "'kneading'\n    expected petrissage; got answer: effleurage" in text
    assert "expected (out of scope); got answer: oil-and-lotion" in text


def test_empty_questions_give_zero_figures_not_errors() -> None:
    report = evaluate([], ScriptedMatcher({}))
    assert report.direct_correct == 0.0
    assert report.false_answer == 0.0
    assert "Misses" not in format_report(report)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("q: not a list", "expected a list"),
        ("- just a string", "question 1: expected a mapping"),
        ("- q: ''\n  expect: []", "q must be a non-empty string"),
        ("- q: hi\n  expect: effleurage", "expect must be a list"),
        ("- q: hi", "expect must be a list"),
    ],
)
def test_load_questions_names_the_malformed_entry(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        load_questions(path)


def test_topic_precision_recall_and_confusions(questions: list[EvalQuestion]) -> None:
    report = evaluate(questions, ScriptedMatcher(REPLIES))
    figures = {t.topic: t for t in report.topics}
    # petrissage owns "petrisage" (answered right) and "kneading" (answered effleurage).
    assert (figures["petrissage"].support, figures["petrissage"].recalled) == (2, 1)
    assert figures["petrissage"].recall == pytest.approx(50.0)
    # effleurage was answered twice, once rightly.
    assert (figures["effleurage"].answered, figures["effleurage"].right) == (2, 1)
    assert figures["effleurage"].precision == pytest.approx(50.0)
    # An out-of-scope question answered counts against the topic's precision.
    assert (figures["oil-and-lotion"].answered, figures["oil-and-lotion"].right) == (1, 0)
    assert dict(report.confusions) == {("petrissage", "effleurage"): 1}
    text = format_report(report)
    assert "petrissage -> effleurage  1" in text


def test_every_style_row_adds_up_to_100_percent(questions: list[EvalQuestion]) -> None:
    text = format_report(evaluate(questions, ScriptedMatcher(REPLIES)))
    rows = [line.split() for line in text.splitlines()
            if line.split()[:1] in (["alias"], ["direct"], ["typo"], ["out-of-scope"])
            and line.split()[1].isdigit()]
    assert len(rows) == 4
    for row in rows:
        # Four rounded shares: 100 give or take the rounding.
        assert abs(sum(int(cell.rstrip("%")) for cell in row[2:6]) - 100) <= 2, row
    oos = next(row for row in rows if row[0] == "out-of-scope")
    assert oos[1:6] == ["2", "0%", "50%", "50%", "0%"]


def test_misses_show_the_score_and_the_phrasing_matched() -> None:
    kneading = Match(
        "answer", "effleurage", (Candidate("effleurage", 55.0, "gliding strokes", ("glid",)),)
    )
    question = EvalQuestion("kneading", ("petrissage",), "alias")
    report = evaluate([question], ScriptedMatcher({"kneading": kneading}))
    assert report.misses[0].score == 55.0
    assert "via 'gliding strokes'" in format_report(report)
    as_json = report.as_dict()
    assert as_json["misses"][0]["phrasing"] == "gliding strokes"
    assert as_json["in_scope"]["wrong"] == 1


def test_floors_name_each_target_missed(questions: list[EvalQuestion]) -> None:
    report = evaluate(questions, ScriptedMatcher(REPLIES))
    assert Floors().breaches(report) == []
    assert Floors(min_direct=40.0, max_wrong=20.0, max_oos=50.0).breaches(report) == []
    breaches = Floors(min_direct=41.0, max_wrong=19.0, max_oos=49.0).breaches(report)
    assert [b.split()[0] for b in breaches] == ["direct", "wrong", "out"]


def test_cross_validation_asks_each_phrasing_without_it(small_kb: KnowledgeBase) -> None:
    seen: list[tuple[str, KnowledgeBase]] = []

    class Recording:
        def __init__(self, knowledge: KnowledgeBase) -> None:
            self.knowledge = knowledge

        def match(self, text: str) -> Match:
            seen.append((text, self.knowledge))
            return answer("effleurage")

    report = cross_validate(small_kb, Recording)
    phrasings = sum(len(t.aliases) + len(t.questions) for t in small_kb.topics.values())
    assert report.in_scope.total == phrasings
    assert report.out_of_scope.total == len(small_kb.out_of_scope)
    for text, reduced in seen:
        in_topics = [
            t.id for t in reduced.topics.values() if text in t.aliases or text in t.questions
        ]
        others = [t.id for t in small_kb.topics.values() if text in (*t.aliases, *t.questions)]
        # Taken out of its own topic; still where another topic also says it ("stones").
        assert len(in_topics) == len(others) - 1 or text in small_kb.out_of_scope
        if text in small_kb.out_of_scope:
            assert text not in reduced.out_of_scope
    # Style is the topic's kind.
    assert set(report.by_style) == {"technique", "equipment", "positioning", "procedure",
                                    "out-of-scope"}
    effleurage = next(t for t in report.topics if t.topic == "effleurage")
    assert effleurage.right == len(small_kb.topics["effleurage"].aliases) + len(
        small_kb.topics["effleurage"].questions)


def test_cross_validation_with_the_real_matcher_is_honest(small_kb: KnowledgeBase) -> None:
    # "draping" is said by one alias of one topic only: with all of the knowledge base the
    # matcher finds it, but asked without its own alias, nothing knows the word.
    assert Matcher(small_kb).match("draping").topic == "towels-and-washing"
    report = cross_validate(small_kb, Matcher)
    missed = {miss.query: miss.got for miss in report.misses}
    assert missed["draping"] != "answer: towels-and-washing"
    # A phrasing other phrasings back up is still found without itself.
    assert "what is petrissage" not in missed


def test_cross_validation_reports_each_source_apart(small_kb: KnowledgeBase) -> None:
    report = cross_validate(small_kb, Matcher)
    assert set(report.by_source) == {"aliases", "questions", "out_of_scope"}
    assert sum(t.total for t in report.by_source.values()) == (
        report.in_scope.total + report.out_of_scope.total
    )
    assert "source " in format_report(report)
