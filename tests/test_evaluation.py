"""The evaluation report: figures on a tiny questions file, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluation import EvalQuestion, evaluate, format_report, load_questions
from bot.matcher import Candidate, Match

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
