"""Hybrid retrieval: per permitted tier, one engine query fusing a dense and a BM25 prefetch.

Expired chunks are filtered in the engine at query time, so nothing past its TTL is ever
returned, even before a sweep deletes it. Each candidate then gets its exact dense and BM25
scores from the engine (two queries restricted to the candidates' ids, batched in one call
without payloads): the reranker and the confidence gate need the evidence, not just a fused
rank.

    retriever = HybridRetriever(store, embedder, BM25Encoder())
    candidates = retriever.retrieve("How long is parental leave?", ["verified"], limit=20)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.retrieval.bm25 import BM25Encoder, term_id
from rag.retrieval.embedding import DenseEmbedder
from rag.retrieval.store import ChunkFilter, StoreQuery, VectorStore
from rag.retrieval.store.base import Fusion, QueryMode
from rag.types import Candidate, SparseVector, utc_now


@dataclass
class QueryVectors:
    dense: np.ndarray
    sparse: SparseVector


@dataclass
class HybridRetriever:
    store: VectorStore
    embedder: DenseEmbedder
    bm25: BM25Encoder
    fusion: Fusion = "rrf"
    prefetch_limit: int = 50
    tier_weights: dict[str, float] = field(default_factory=dict)

    def encode(self, question: str) -> QueryVectors:
        return QueryVectors(self.embedder.embed_query(question), self.bm25.encode_query(question))

    def retrieve(
        self,
        question: str,
        tiers: Sequence[str],
        limit: int,
        vectors: QueryVectors | None = None,
        mode: QueryMode = "hybrid",
    ) -> list[Candidate]:
        """Candidates from every tier in `tiers`, best first by fused score x trust weight."""
        vectors = vectors or self.encode(question)
        live = ChunkFilter(live_at=utc_now())
        dense = vectors.dense.tolist()
        out: list[Candidate] = []
        for tier in tiers:
            query = StoreQuery(
                limit,
                dense,
                vectors.sparse,
                where=live,
                mode=mode,
                fusion=self.fusion,
                prefetch_limit=max(self.prefetch_limit, limit),
            )
            hits = self.store.query(tier, query)
            if not hits:
                continue
            candidates = [Candidate(h.payload, fused=h.score) for h in hits]
            self._attach_scores(tier, candidates, dense, vectors.sparse)
            weight = self.tier_weights.get(tier, 1.0)
            for c in candidates:
                c.trust = weight
                c.score = c.fused * weight
            out.extend(candidates)
        out.sort(key=lambda c: c.score, reverse=True)
        return out

    def unmentioned(self, terms: Sequence[str], tiers: Sequence[str]) -> list[str]:
        """The terms that no live chunk of `tiers` contains: one BM25-only engine query per term
        and tier, stopping at the first tier that has it."""
        live = ChunkFilter(live_at=utc_now())
        out = []
        for term in terms:
            probe = StoreQuery(
                1, sparse=SparseVector([term_id(term)], [1.0]), where=live, mode="sparse"
            )
            if not any(self.store.query(tier, probe) for tier in tiers):
                out.append(term)
        return out

    def _attach_scores(
        self, tier: str, candidates: list[Candidate], dense: list[float], sparse: SparseVector
    ) -> None:
        """The candidates' exact dense and BM25 scores: both queries, restricted to their ids,
        in one engine call that reads no payloads (the fused query already returned them)."""
        only = ChunkFilter(chunk_ids=[c.chunk_id for c in candidates])
        n = len(candidates)
        queries = [StoreQuery(n, dense, where=only, mode="dense")]
        if sparse.indices:
            queries.append(StoreQuery(n, sparse=sparse, where=only, mode="sparse"))
        dense_scores, *rest = self.store.scores(tier, queries)
        bm25_scores = rest[0] if rest else {}
        for c in candidates:
            c.dense = dense_scores.get(c.chunk_id, 0.0)
            c.bm25 = bm25_scores.get(c.chunk_id, 0.0)
