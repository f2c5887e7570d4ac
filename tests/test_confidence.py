"""The confidence gate: its evidence features, the logistic model and its file."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import candidate

from rag.confidence import FEATURES, ConfidenceModel, Evidence, evidence_features
from rag.terms import QueryTerms

pytestmark = pytest.mark.unit


def test_no_candidates_means_zero_features_and_every_specific_term_missing():
    ev = evidence_features(QueryTerms.of("What did Hannibal do at Zama in 202 BCE?"), [])
    assert ev.features == dict.fromkeys(FEATURES, 0.0)
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
