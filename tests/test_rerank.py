"""The evidence reranker and the reranker factory, on hand-made candidates."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import candidate

from rag.retrieval.rerank import EvidenceReranker, NoReranker, make_reranker
from rag.retrieval.terms import QueryTerms

pytestmark = pytest.mark.unit

LEAVE = QueryTerms.of("How long is parental leave?")


def _order(ranked: list) -> list[str]:
    return [c.payload.doc_id for c in ranked]


def test_coverage_of_the_question_lifts_a_chunk():
    off = candidate("The canteen opens at noon.", "canteen.md")
    on = candidate("Parental leave lasts sixteen weeks.", "leave.md")
    assert _order(EvidenceReranker().rerank(LEAVE, [off, on])) == ["leave.md", "canteen.md"]


def test_dense_similarity_orders_equal_coverage():
    weak = candidate("Parental leave rules.", "weak.md", dense=0.2)
    strong = candidate("Parental leave rules.", "strong.md", dense=0.8)
    assert _order(EvidenceReranker().rerank(LEAVE, [weak, strong])) == ["strong.md", "weak.md"]


def test_bm25_orders_equal_coverage_and_dense():
    weak = candidate("Parental leave rules.", "weak.md", bm25=0.5)
    strong = candidate("Parental leave rules.", "strong.md", bm25=2.0)
    ranked = EvidenceReranker().rerank(LEAVE, [weak, strong])
    assert _order(ranked) == ["strong.md", "weak.md"]
    # BM25 counts relative to the best candidate's: the strongest one contributes its full weight.
    assert ranked[0].score - ranked[1].score == pytest.approx(0.5 * (1 - 0.5 / 2.0))


def test_trust_weight_scales_the_score():
    text = "Parental leave lasts sixteen weeks."
    trusted = candidate(text, "a.md", trust=1.0)
    untrusted = candidate(text, "b.md", trust=0.6)
    ranked = EvidenceReranker().rerank(LEAVE, [untrusted, trusted])
    assert _order(ranked) == ["a.md", "b.md"]
    assert ranked[1].score == pytest.approx(0.6 * ranked[0].score)


def test_no_candidates_rank_to_nothing():
    assert EvidenceReranker().rerank(LEAVE, []) == []


def test_no_reranker_keeps_the_engine_order_and_factory_refuses_missing_dirs(tmp_path: Path):
    a, b = candidate("x", "a.md", score=0.2), candidate("y", "b.md", score=0.9)
    assert _order(NoReranker().rerank(LEAVE, [a, b])) == ["b.md", "a.md"]
    assert isinstance(make_reranker("none"), NoReranker)
    assert isinstance(make_reranker("evidence"), EvidenceReranker)
    with pytest.raises(ValueError, match="not a local directory"):
        make_reranker(str(tmp_path / "missing"))
