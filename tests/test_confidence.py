"""The confidence gate: its evidence features, the logistic model and its file."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import candidate

from evals.calibrate import cross_validate, fit
from rag.answering.confidence import (
    FEATURES,
    JUDGE_FLOOR,
    ConfidenceModel,
    Evidence,
    evidence_features,
)
from rag.retrieval.terms import QueryTerms

pytestmark = pytest.mark.unit


def test_no_candidates_means_zero_features_and_every_specific_term_missing():
    ev = evidence_features(QueryTerms.of("What did Hannibal do at Zama in 202 BCE?"), [])
    judge = {"judge_max": JUDGE_FLOOR, "judge_second": JUDGE_FLOOR}
    assert ev.features == dict.fromkeys(FEATURES, 0.0) | judge
    assert ev.missing_specific == ["202", "bce", "hannib", "zama"]


def test_features_read_the_top_candidates():
    query = QueryTerms.of("What did Hannibal do at Zama?")
    ranked = [
        candidate("Hannibal fought at Cannae.", "cannae.md", dense=0.7, bm25=4.0),
        candidate("Zama was a battle.", "zama.md"),
    ]
    ev = evidence_features(query, ranked)
    assert set(ev.features) == set(FEATURES)
    assert ev.features["dense_top"] == 0.7
    assert ev.features["bm25_per_term"] == pytest.approx(4.0 / len(query.content))
    assert ev.features["has_specific"] == 1.0
    # Each specific term is in one of the top chunks, none in the top one alone...
    assert ev.features["specific_missing"] == 0.0 and ev.missing_specific == []
    assert ev.features["specific_missing_top"] == 0.5
    # ...and no single sentence holds both.
    assert ev.features["sentence_specific_missing"] == 0.5


def test_confidence_rises_with_a_positive_weight_feature():
    model = ConfidenceModel(weights={"coverage_top": 4.0}, bias=-2.0, threshold=0.5)
    scores = [model.confidence(Evidence({"coverage_top": x}, [])) for x in (0.0, 0.25, 0.5, 1.0)]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert 0.0 < scores[0] < 0.5 < scores[-1] < 1.0


def test_the_judge_logit_that_settles_the_gate_is_where_confidence_meets_the_threshold():
    model = ConfidenceModel(weights={"judge_max": 0.6}, bias=1.3, threshold=0.56)
    settle = model.judge_logit_settling(0.56)
    assert settle is not None
    at = {"judge_max": settle}
    above = Evidence({"judge_max": settle + 1e-6}, [])
    assert model.confidence(Evidence(at, [])) == pytest.approx(0.56)
    assert model.confidence(above) > 0.56
    # Another feature could still pull an answer under the threshold: no early verdict.
    richer = ConfidenceModel(weights={"judge_max": 0.6, "dense_top": 1.0}, bias=1.3, threshold=0.5)
    assert richer.judge_logit_settling(0.5) is None
    assert model.judge_logit_settling(0.0) is None  # RAG_CONFIDENCE_THRESHOLD=0 answers all
    assert model.judge_logit_settling(1.0) is None


def test_model_file_round_trips(tmp_path: Path):
    model = ConfidenceModel(
        weights={"coverage_top": 1.5, "dense_top": -0.25},
        bias=-1.0,
        threshold=0.42,
        fitted_on={"sets": ["a"], "a answer_rate": 0.9},
    )
    model.save(tmp_path / "c.json")
    assert ConfidenceModel.load(tmp_path / "c.json") == model


def test_shipped_model_loads_with_known_features():
    model = ConfidenceModel.load()
    assert 0.0 < model.threshold < 1.0
    assert set(model.weights) <= set(FEATURES)


def test_judge_features_are_the_two_best_logits_of_the_candidates_it_read():
    ranked = [candidate("a b", judge=-1.0), candidate("c d", judge=2.0), candidate("e f")]
    ev = evidence_features(QueryTerms.of("a c?"), ranked)
    assert (ev.features["judge_max"], ev.features["judge_second"]) == (2.0, -1.0)
    unjudged = evidence_features(QueryTerms.of("a c?"), [candidate("a b")])
    assert unjudged.features["judge_max"] == JUDGE_FLOOR


def _run(name: str, pos: list[float], neg: list[float]):
    results, dataset = [], {}
    for i, z in enumerate(pos + neg):
        rid = f"{name}{i}"
        results.append({"id": rid, "evidence": dict.fromkeys(FEATURES, 0.0) | {"judge_max": z}})
        dataset[rid] = {"answerable": i < len(pos)}
    return name, results, dataset


def test_calibration_separates_what_the_judge_separates_and_cv_sees_noise():
    runs = [_run("a", [2.0, 3.0, 2.5, 4.0, 1.5], [-2.0, -3.0, -1.0, -2.5, -4.0])]
    model = fit(runs, ("judge_max",))
    assert model.weights["judge_max"] > 0
    assert model.fitted_on["a answer_rate"] == 1.0 and model.fitted_on["a refusal_recall"] == 1.0
    # The threshold sits mid-gap, not on the edge of the training rows: unseen folds pass too.
    assert cross_validate(runs, ("judge_max",))["worst"] == 1.0
    noisy = [_run("b", [1.0, -1.0, 1.0, -1.0, 1.0], [1.0, -1.0, -1.0, 1.0, -1.0])]
    assert cross_validate(noisy, ("judge_max",))["worst"] < 1.0


def test_a_question_whose_every_name_is_missing_is_a_near_miss():
    query = QueryTerms.of("How do I fail over the MySQL database?")
    runbook = [candidate("Fail over the PostgreSQL primary when it is unreachable.", "pg.md")]
    assert evidence_features(query, runbook).misses_every_specific_term
    mysql = [candidate("Fail over the MySQL primary when it is unreachable.", "my.md")]
    assert not evidence_features(query, mysql).misses_every_specific_term
    # Half the names present: the judge decides, not this guard.
    both = QueryTerms.of("Does MySQL fail over like PostgreSQL?")
    assert not evidence_features(both, runbook).misses_every_specific_term
    # A question that names nothing specific is never caught by it.
    assert not evidence_features(
        QueryTerms.of("how do I fail over?"), runbook
    ).misses_every_specific_term
