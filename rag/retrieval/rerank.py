"""Rerankers: reorder retrieved candidates by how well each answers the question.

- `EvidenceReranker` (offline default): a linear blend of the engine's dense cosine, the
  engine's BM25 score (relative to the best candidate's) and the coverage of the question's
  terms in the chunk, specific terms (names, numbers) counting double. Its weights were chosen
  on the HaluEval development split by `bench/retrieval.py`.
- `CrossEncoderReranker`: a sentence-transformers CrossEncoder from a local directory
  (`RAG_RERANKER_MODEL`); none ships in any package reachable here.
- `NoReranker`: keep the engine's fused order.

    reranker = EvidenceReranker(); ranked = reranker.rerank(QueryTerms.of(question), candidates)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QueryTerms
from rag.types import Candidate


class Reranker(Protocol):
    name: str

    def rerank(self, query: QueryTerms, candidates: list[Candidate]) -> list[Candidate]: ...


class NoReranker:
    name = "none"

    def rerank(self, query: QueryTerms, candidates: list[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda c: c.score, reverse=True)


@dataclass
class EvidenceReranker:
    # Chosen by `python -m bench.retrieval ... --grid` on the HaluEval dev split.
    dense_weight: float = 2.0
    bm25_weight: float = 0.5
    coverage_weight: float = 1.0
    name: str = "evidence"

    def rerank(self, query: QueryTerms, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        best_bm25 = max(c.bm25 for c in candidates) or 1.0
        for c in candidates:
            coverage = query.coverage(set(tokenize(c.payload.text)))
            c.score = c.trust * (
                self.dense_weight * c.dense
                + self.bm25_weight * c.bm25 / best_bm25
                + self.coverage_weight * coverage
            )
        return sorted(candidates, key=lambda c: c.score, reverse=True)


class CrossEncoderReranker:
    """`CrossEncoderReranker(Path("/models/ms-marco-MiniLM-L-6-v2"))`: a local model only."""

    name = "cross-encoder"

    def __init__(self, model_dir: Path) -> None:
        if not Path(model_dir).is_dir():
            raise ValueError(f"reranker model {model_dir} is not a local directory")
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(str(model_dir), device="cpu")

    def rerank(self, query: QueryTerms, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        scores = self._model.predict([(query.text, c.payload.text) for c in candidates])
        for c, s in zip(candidates, scores):
            c.score = c.trust * float(s)
        return sorted(candidates, key=lambda c: c.score, reverse=True)


def make_reranker(name: str) -> Reranker:
    """ "evidence" (default), "none", or a path to a local CrossEncoder directory."""
    if name == "evidence":
        return EvidenceReranker()
    if name == "none":
        return NoReranker()
    return CrossEncoderReranker(Path(name))
