"""The query path, end to end: retrieve -> rerank -> confidence gate -> cited answer or refusal.

    pipeline = AskPipeline(retriever, EvidenceReranker(), ConfidenceModel.load(),
                           ExtractiveAnswerer(), QueryLog(engine))
    result = pipeline.ask("How long is parental leave?", tiers=["verified"])

Every answer sentence carries a citation whose quote is an exact substring of its chunk; if
that check fails the service refuses instead (reason `citation_check_failed`). Refusals name
their reason and list the closest sources, marked as not an answer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from rag.answer import Answerer, check_citations
from rag.confidence import ConfidenceModel, evidence_features
from rag.metrics import ASKS, STAGE_SECONDS
from rag.querylog import QueryLog, Trace
from rag.rerank import Reranker
from rag.retrieval import HybridRetriever
from rag.types import Candidate, utc_now

REFUSAL_MESSAGES = {
    "no_permitted_tiers": "This key may not read any tier that could hold the answer.",
    "no_evidence": "Nothing in the permitted sources matches this question.",
    "low_confidence": "The permitted sources do not clearly answer this question.",
    "citation_check_failed": "An answer could not be backed by exact quotes from the sources.",
}


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round((now - self.last) * 1000, 3)
        self.last = now

    def total(self) -> dict[str, float]:
        return {**self.ms, "total": round((time.perf_counter() - self.start) * 1000, 3)}


@dataclass
class AskPipeline:
    retriever: HybridRetriever
    reranker: Reranker
    confidence: ConfidenceModel
    answerer: Answerer
    log: QueryLog | None = None
    candidates: int = 20
    threshold: float | None = None  # overrides the calibrated threshold when set

    @property
    def effective_threshold(self) -> float:
        return self.confidence.threshold if self.threshold is None else self.threshold

    def search(self, question: str, tiers: list[str], top_k: int = 5) -> dict[str, Any]:
        """Retrieval only: reranked candidates with their evidence scores, no answer."""
        clock = _Clock()
        vectors = self.retriever.encode(question)
        clock.lap("embed")
        found = self.retriever.retrieve(question, tiers, self.candidates, vectors)
        clock.lap("retrieve")
        ranked = self.reranker.rerank(question, found)[:top_k]
        clock.lap("rerank")
        return {
            "question": question,
            "tiers": tiers,
            "results": [
                {
                    **c.brief(),
                    "dense": round(c.dense, 6),
                    "bm25": round(c.bm25, 6),
                    "title": c.payload.title,
                    "section": c.payload.section,
                    "text": c.payload.text,
                }
                for c in ranked
            ],
            "latency_ms": clock.total(),
        }

    def ask(
        self,
        question: str,
        tiers: list[str],
        top_k: int = 5,
        allowed_tiers: list[str] | None = None,
        key_name: str | None = None,
    ) -> dict[str, Any]:
        clock = _Clock()
        now = utc_now()
        trace_id = str(uuid.uuid4())
        found: list[Candidate] = []
        ranked: list[Candidate] = []
        confidence: float | None = None
        reason: str | None = None
        detail: str | None = None
        answer: str | None = None
        citations: list[Any] = []
        features: dict[str, float] | None = None
        if not tiers:
            reason = "no_permitted_tiers"
        else:
            vectors = self.retriever.encode(question)
            clock.lap("embed")
            found = self.retriever.retrieve(question, tiers, self.candidates, vectors)
            clock.lap("retrieve")
            ranked = self.reranker.rerank(question, list(found))
            clock.lap("rerank")
            evidence = evidence_features(question, ranked)
            features = {k: round(v, 6) for k, v in evidence.features.items()}
            confidence = round(self.confidence.confidence(evidence), 4) if ranked else 0.0
            if not ranked:
                reason = "no_evidence"
            elif confidence < self.effective_threshold:
                reason = "low_confidence"
                if evidence.missing_specific:
                    detail = "the sources never mention: " + ", ".join(evidence.missing_specific)
            else:
                text, cites = self.answerer.answer(question, ranked[:top_k])
                problems = check_citations(text, cites)
                if problems:
                    reason, detail = "citation_check_failed", "; ".join(problems)
                else:
                    answer, citations = text, cites
            clock.lap("answer")
        latency = clock.total()
        ASKS.labels("refused" if reason else "answered", reason or "").inc()
        for stage, ms in latency.items():
            STAGE_SECONDS.labels(stage).observe(ms / 1000)
        result: dict[str, Any] = {
            "question": question,
            "refused": reason is not None,
            "refusal_reason": reason,
            "refusal_message": REFUSAL_MESSAGES.get(reason) if reason else None,
            "refusal_detail": detail,
            "answer": answer,
            "confidence": confidence,
            "threshold": self.effective_threshold,
            "evidence": features,
            "citations": [c.to_dict(now) for c in citations],
            "retrieved": [c.brief() for c in ranked[:top_k]],
            "closest_sources": (
                [
                    {**c.brief(), "title": c.payload.title, "note": "not an answer"}
                    for c in ranked[:3]
                ]
                if reason
                else []
            ),
            "tiers": tiers,
            "generator": {
                "kind": self.answerer.kind,
                "provider": None,
                "prompt_version": None,
                "tokens_in": 0,
                "tokens_out": 0,
                "cost": 0.0,
                "fallback_reason": None,
            },
            "latency_ms": latency,
            "trace_id": trace_id,
        }
        if self.log is not None:
            self.log.record(
                Trace(
                    trace_id=trace_id,
                    asked_at=now,
                    question=question,
                    key_name=key_name,
                    allowed_tiers=list(allowed_tiers if allowed_tiers is not None else tiers),
                    queried_tiers=list(tiers),
                    outcome="refused" if reason else "answered",
                    refusal_reason=reason,
                    confidence=confidence,
                    retrieved=[
                        {**c.brief(), "fused": round(c.fused, 6)} for c in found[: self.candidates]
                    ],
                    reranked=[c.brief() for c in ranked[:top_k]],
                    cited=[
                        {
                            "chunk_id": c.candidate.chunk_id,
                            "doc_id": c.candidate.payload.doc_id,
                            "tier": c.candidate.tier,
                            "source": c.candidate.payload.source,
                        }
                        for c in citations
                    ],
                    latency_ms=latency,
                )
            )
        return result
