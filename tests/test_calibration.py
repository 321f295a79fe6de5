"""Fitting the matcher's parameters: the pieces on data with known answers, and a whole fit on
the small fixture knowledge base."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest

from bot.calibration import (
    PARAMS_FILE,
    UTILITY,
    assess,
    coordinate_search,
    fit,
    fit_logistic,
    held_out_sets,
    main,
    total_utility,
    utility,
)
from bot.evaluation import EvalQuestion
from bot.knowledge import load_knowledge
from bot.matcher import FEATURES, Candidate, Match, Matcher, Params, fitted_params

SMALL = Path(__file__).parent / "fixtures" / "matcher" / "small"


def test_logistic_regression_recovers_a_known_model() -> None:
    rng = random.Random(7)
    bias, weights = -1.0, (3.0, -2.0)
    rows = []
    for _ in range(4000):
        x = (rng.uniform(-1, 1), rng.uniform(-1, 1))
        p = 1 / (1 + math.exp(-(bias + weights[0] * x[0] + weights[1] * x[1])))
        rows.append((x, rng.random() < p, 1.0))
    fitted_bias, fitted = fit_logistic(rows)
    assert fitted_bias == pytest.approx(bias, abs=0.25)
    assert fitted[0] == pytest.approx(weights[0], abs=0.4)
    assert fitted[1] == pytest.approx(weights[1], abs=0.4)


def test_logistic_regression_stays_finite_when_one_feature_separates() -> None:
    rows = [((1.0,), True, 1.0)] * 20 + [((0.0,), False, 1.0)] * 20
    bias, (weight,) = fit_logistic(rows)
    assert math.isfinite(bias) and math.isfinite(weight)
    assert weight > 5  # it does separate them


def test_utility_ranks_replies_as_a_person_would() -> None:
    question = EvalQuestion("kneading", ("petrissage",), "alias")
    right = Match("answer", "petrissage", (Candidate("petrissage", 90),))
    wrong = Match("answer", "effleurage", (Candidate("effleurage", 90),))
    offered = Match("clarify", None, (Candidate("effleurage", 50), Candidate("petrissage", 48)))
    missed = Match("clarify", None, (Candidate("effleurage", 50),))
    fallback = Match("fallback", None, ())
    values = [utility(question, m) for m in (right, offered, fallback, missed, wrong)]
    assert values == sorted(values, reverse=True)
    assert utility(question, wrong) == UTILITY["wrong"]
    out = EvalQuestion("car oil", (), "out-of-scope")
    assert utility(out, fallback) > utility(out, missed) > utility(out, wrong)


def test_coordinate_search_keeps_only_improvements() -> None:
    def score(params: Params) -> float:
        return -abs(params.story - 0.35) - abs(params.answer_weight - 0.2)

    found, best = coordinate_search(
        Params(), {"story": [0.2, 0.35, 0.5], "answer_weight": [0.1, 0.2, 0.3]}, score
    )
    assert (found.story, found.answer_weight) == (0.35, 0.2)
    assert best == pytest.approx(0.0)


def test_a_fit_on_the_small_knowledge_base_does_no_worse_than_where_it_started() -> None:
    knowledge = load_knowledge(SMALL, require_contract=False)
    labelled = [
        EvalQuestion("how do i knead his shoulders", ("petrissage",), "direct"),
        EvalQuestion("long slow strokes with flat palms", ("effleurage",), "descriptive"),
        EvalQuestion("which oil", ("oil-and-lotion",), "keyword"),
        EvalQuestion("she cant lie face down", ("side-lying",), "direct"),
        EvalQuestion("car oil", (), "out-of-scope"),
    ]
    start = Params()
    before = total_utility(assess(knowledge, start, labelled, folds=3), start)
    params, after = fit(knowledge, labelled, start=start, ranking=False)
    assert after >= before
    assert len(params.coefficients) == len(params.features)
    assert set(params.features) <= set(FEATURES)


def test_a_held_out_set_is_asked_without_its_own_messages() -> None:
    knowledge = load_knowledge(SMALL, require_contract=False)
    filed = "zorblax quibbit"  # filed as an example: only the index can know it
    topic = knowledge.topics["petrissage"]
    knowledge = dataclasses.replace(knowledge, topics={
        **knowledge.topics,
        "petrissage": dataclasses.replace(topic, examples=(*topic.examples, filed)),
    })
    assert Matcher(knowledge).match(filed).topic == "petrissage"
    questions = [EvalQuestion(filed, ("petrissage",), "keyword"),
                 EvalQuestion("how do i knead", ("petrissage",), "direct")]
    report = held_out_sets(knowledge, fitted_params(), [("wave", questions)])
    assert (report.in_scope.total, report.in_scope.right) == (2, 1)
    assert report.by_source["wave"].fallback == 1  # it was never seen


def test_the_shipped_parameters_are_a_complete_fit() -> None:
    record = json.loads(PARAMS_FILE.read_text(encoding="utf-8"))
    assert record["features"] == list(FEATURES)
    params = fitted_params()
    assert len(params.coefficients) == len(params.features)
    assert set(params.features) <= set(FEATURES)
    assert 0.0 < params.answer_probability < 1.0
    assert "python -m bot.calibration" in record["fitted"]


def test_the_command_writes_a_parameters_file(tmp_path: Path) -> None:
    out = tmp_path / "params.json"
    questions = tmp_path / "questions.yaml"
    questions.write_text("- q: which oil\n  expect: [oil-and-lotion]\n  style: keyword\n")
    assert main([str(questions), "--kb", str(SMALL), "--decision-only", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert Params.from_dict(record["params"]).coefficients
    assert "1 labelled questions" in record["fitted"]
    # A new file starts from the shipped fit: a decision-only fit keeps its ranking weights.
    written = Params.from_dict(record["params"])
    shipped = fitted_params()
    assert (written.question_weight, written.central_base, written.story) == (
        shipped.question_weight, shipped.central_base, shipped.story)
