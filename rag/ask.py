"""The query path, end to end: retrieve -> rerank -> judge -> confidence gate -> cited answer or
refusal.

    pipeline = AskPipeline(retriever, EvidenceReranker(), ConfidenceModel.load(),
                           ExtractiveAnswerer(), judge=shared_judge(), log=QueryLog(engine))
    result = pipeline.ask("How long is parental leave?", tiers=["verified"])

The question is analysed once (`QueryTerms`) and handed to every stage. The answerability
judge reads the best windows of the top `judge_depth` candidates in rank order until one clears
the gate; its best logit is the main input of the confidence gate. Every answer sentence
carries a citation whose quote is an exact substring of its chunk; if that check fails the
service refuses instead (reason `citation_check_failed`). Refusals name their reason and list
the closest sources, marked as not an answer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from rag.answering.answer import Answerer, check_citations
from rag.answering.confidence import ConfidenceModel, Evidence, evidence_features, sigmoid
from rag.answering.judge import AnswerabilityJudge
from rag.answering.qualifiers import Contrast, QualifierReader
from rag.ops.metrics import ASKS, STAGE_SECONDS
from rag.ops.querylog import QueryLog, Trace
from rag.retrieval.bm25 import tokenize
from rag.retrieval.hybrid import HybridRetriever
from rag.retrieval.rerank import Reranker
from rag.retrieval.terms import QueryTerms, clean_question
from rag.types import (
    AskResult,
    Candidate,
    Citation,
    ClosestSource,
    GeneratorInfo,
    SearchHit,
    SearchResult,
    Stage,
    TextSink,
    age_days,
    utc_now,
)

REFUSAL_MESSAGES = {
    "no_permitted_tiers": "This key may not read any tier that could hold the answer.",
    "no_evidence": "Nothing in the permitted sources matches this question.",
    "not_covered": "The permitted sources never mention what this question asks about.",
    "low_confidence": "The permitted sources do not clearly answer this question.",
    "citation_check_failed": "An answer could not be backed by exact quotes from the sources.",
}


def _unmentioned_detail(words: str) -> str:
    """The `not_covered` detail: the question's own words that no document mentions."""
    return f"no document in the tiers searched mentions: {words}"


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: Stage) -> None:
        now = time.perf_counter()
        self.ms[stage.value] = round((now - self.last) * 1000, 3)
        self.last = now

    def total(self) -> dict[str, float]:
        total = round((time.perf_counter() - self.start) * 1000, 3)
        return {**self.ms, Stage.TOTAL.value: total}


@dataclass
class _Decision:
    """What the gate and the answerer made of one question's evidence."""

    found: list[Candidate] = field(default_factory=list)
    ranked: list[Candidate] = field(default_factory=list)
    evidence: Evidence | None = None
    confidence: float | None = None
    reason: str | None = None
    detail: str | None = None
    answer: str | None = None
    citations: list[Citation] = field(default_factory=list)
    generator: GeneratorInfo | None = None


@dataclass
class AskPipeline:
    retriever: HybridRetriever
    reranker: Reranker
    confidence: ConfidenceModel
    answerer: Answerer
    judge: AnswerabilityJudge | None = None
    log: QueryLog | None = None
    candidates: int = 20
    threshold: float | None = None  # overrides the calibrated threshold when set
    # How many top candidates the judge reads, and whether its order replaces theirs.
    judge_depth: int = 3
    judge_rerank: bool = False
    # Parses the question for what it asks the existence of ("Is there a gym?").
    qualifiers: QualifierReader | None = None

    @property
    def effective_threshold(self) -> float:
        return self.confidence.threshold if self.threshold is None else self.threshold

    def search(self, question: str, tiers: list[str], top_k: int = 5) -> SearchResult:
        """Retrieval only: reranked (and judged) candidates with their scores, no answer."""
        clock = _Clock()
        now = utc_now()
        question = clean_question(question)
        query = QueryTerms.of(question)
        _, ranked = self._rank(query, tiers, clock)
        hits = [
            SearchHit(
                **c.brief().model_dump(),
                title=c.payload.title,
                section=c.payload.section,
                text=c.payload.text,
                uri=c.payload.uri,
                source_modified_at=c.payload.source_modified_at,
                ingested_at=c.payload.ingested_at,
                expires_at=c.payload.expires_at,
                age_days=age_days(c.payload.source_modified_at, now),
            )
            for c in ranked[:top_k]
        ]
        return SearchResult(question=question, tiers=tiers, results=hits, latency_ms=clock.total())

    def ask(
        self,
        question: str,
        tiers: list[str],
        top_k: int = 5,
        allowed_tiers: list[str] | None = None,
        key_name: str | None = None,
        on_sentence: TextSink | None = None,
    ) -> AskResult:
        """`on_sentence` receives each answer sentence once it is final (and, for generated
        answers, verified): `/ask?stream=true` sends them as server-sent events."""
        clock = _Clock()
        now = utc_now()
        question = clean_question(question)
        query = QueryTerms.of(question)
        if tiers:
            decision = self._decide(query, tiers, top_k, clock, on_sentence)
            clock.lap(Stage.ANSWER)  # the gate, and the answer when there is one
        else:
            decision = _Decision(reason="no_permitted_tiers")
        latency = clock.total()
        ASKS.labels("refused" if decision.reason else "answered", decision.reason or "").inc()
        for stage, ms in latency.items():
            STAGE_SECONDS.labels(stage).observe(ms / 1000)
        result = self._result(question, tiers, top_k, decision, now, latency)
        if self.log is not None:
            self.log.record(self._trace(result, decision, now, allowed_tiers, key_name, top_k))
        return result

    def _rank(
        self, query: QueryTerms, tiers: list[str], clock: _Clock, settle: bool = False
    ) -> tuple[list[Candidate], list[Candidate]]:
        """Retrieve, rerank and judge. With `settle`, the judge stops at the first candidate
        whose logit already makes the gate answer: reading further could not change the verdict
        (calib: 97 % of answered HaluEval questions stop after one pair; the answerer quotes
        only judged chunks, and reference containment stayed at 0.890)."""
        vectors = self.retriever.encode(query.text)
        clock.lap(Stage.EMBED)
        found = self.retriever.retrieve(query.text, tiers, self.candidates, vectors)
        clock.lap(Stage.RETRIEVE)
        ranked = self.reranker.rerank(query, list(found))
        clock.lap(Stage.RERANK)
        if self.judge is not None and ranked:
            head = ranked[: self.judge_depth]
            stop_above = None
            if settle and not self.judge_rerank:
                stop_above = self.confidence.judge_logit_settling(self.effective_threshold)
            self.judge.read(query, head, stop_above)
            if self.judge_rerank:
                # Stable: ties keep the reranker's order.
                ranked = sorted(head, key=lambda c: -(c.judge or 0.0)) + ranked[len(head) :]
            clock.lap(Stage.JUDGE)
        return found, ranked

    def _decide(
        self,
        query: QueryTerms,
        tiers: list[str],
        top_k: int,
        clock: _Clock,
        on_sentence: TextSink | None = None,
    ) -> _Decision:
        found, ranked = self._rank(query, tiers, clock, settle=True)
        evidence = evidence_features(query, ranked)
        d = _Decision(found=found, ranked=ranked, evidence=evidence)
        if not ranked:
            d.confidence, d.reason = 0.0, "no_evidence"
            return d
        d.confidence = confidence = round(self.confidence.confidence(evidence), 4)
        unknown = self._unknown_thing(query, tiers)
        if unknown is not None:
            d.reason = "not_covered"
            d.detail = _unmentioned_detail(unknown)
            return d
        if (
            confidence < self.effective_threshold
            or evidence.misses_every_specific_term
            or self._names_an_unknown_code(query, evidence, tiers)
        ):
            d.reason, d.detail = self._refusal(query, evidence, confidence, tiers)
            return d
        contrast = self.answerer.contrast(query, ranked[:top_k])
        if contrast is not None:
            d.reason, d.detail = self._contrast_refusal(contrast, tiers)
            return d
        reply = self.answerer.answer(query, ranked[:top_k], on_sentence)
        d.generator = reply.generator
        if not reply.citations:
            # The evidence read holds only headings and questions: context, not an answer.
            d.reason = "low_confidence"
            d.detail = "the evidence read has no sentence that answers, only headings or questions"
            return d
        problems = check_citations(reply.text, reply.citations, reply.verbatim)
        if problems:
            d.reason, d.detail = "citation_check_failed", "; ".join(problems)
        else:
            d.answer, d.citations = reply.text, reply.citations
        return d

    def _unknown_thing(self, query: QueryTerms, tiers: list[str]) -> str | None:
        """The thing the question asks the existence of, as written, when no document of the
        tiers searched mentions it."""
        if self.qualifiers is None:
            return None
        thing = self.qualifiers.asked_thing(query.text)
        if thing is None or not self.retriever.unmentioned([thing.stem], tiers):
            return None
        return thing.text

    def _names_an_unknown_code(
        self, query: QueryTerms, evidence: Evidence, tiers: list[str]
    ) -> bool:
        """The question names a code (week 2026-W50, flight A320) that no document of the tiers
        searched mentions: nothing here can answer it, however well the chunks read about its
        neighbours (the rota's week W47) score. The whole-index lookup runs only when a code is
        missing from the chunks read."""
        codes = [t for t in evidence.missing_specific if t in query.codes]
        return bool(codes) and bool(self.retriever.unmentioned(codes, tiers))

    def _contrast_refusal(self, contrast: Contrast, tiers: list[str]) -> tuple[str, str]:
        """The best evidence is about another qualifier: `not_covered` when the asked one
        appears in no document of the tiers searched, else `low_confidence`, both saying so."""
        word = contrast.word
        if word and (asked := tokenize(word)) and self.retriever.unmentioned(asked, tiers):
            return "not_covered", f"{_unmentioned_detail(word)}; {contrast.describe()}"
        return "low_confidence", contrast.describe()

    def _refusal(
        self, query: QueryTerms, evidence: Evidence, confidence: float, tiers: list[str]
    ) -> tuple[str, str]:
        """Why the gate refused, as a reason an operator can count, and its detail:
        `not_covered` when a name or number of the question appears in no document of the tiers
        searched (looked up in the whole index, not only the chunks read), else
        `low_confidence` with the score. The question's own words are shown, never stems."""
        uncovered = self.retriever.unmentioned(evidence.missing_specific, tiers)
        if uncovered:
            words = ", ".join(query.as_written(uncovered))
            return "not_covered", _unmentioned_detail(words)
        missing = ", ".join(query.as_written(evidence.missing_specific))
        threshold = self.effective_threshold
        if confidence >= threshold:  # refused for missing every name and number it asks about
            return "low_confidence", (
                f"confidence {confidence:.3f} is above the threshold {threshold:.3f}, but the "
                f"best evidence mentions none of: {missing}"
            )
        detail = f"confidence {confidence:.3f} is below the threshold {threshold:.3f}"
        if missing:
            detail += f"; the best evidence does not mention: {missing}"
        return "low_confidence", detail

    def _result(
        self,
        question: str,
        tiers: list[str],
        top_k: int,
        d: _Decision,
        now: datetime,
        latency: dict[str, float],
    ) -> AskResult:
        evidence = None
        if d.evidence is not None:
            evidence = {k: round(v, 6) for k, v in d.evidence.features.items()}
            evidence["judge_probability"] = round(sigmoid(evidence["judge_max"]), 4)
        closest = [
            ClosestSource(**c.brief().model_dump(), title=c.payload.title) for c in d.ranked[:3]
        ]
        return AskResult(
            question=question,
            refused=d.reason is not None,
            refusal_reason=d.reason,
            refusal_message=REFUSAL_MESSAGES.get(d.reason) if d.reason else None,
            refusal_detail=d.detail,
            answer=d.answer,
            confidence=d.confidence,
            threshold=self.effective_threshold,
            evidence=evidence,
            citations=[c.public(now) for c in d.citations],
            retrieved=[c.brief() for c in d.ranked[:top_k]],
            closest_sources=closest if d.reason else [],
            tiers=tiers,
            generator=d.generator or GeneratorInfo(kind=self.answerer.kind),
            latency_ms=latency,
            trace_id=str(uuid.uuid4()),
        )

    def _trace(
        self,
        result: AskResult,
        d: _Decision,
        now: datetime,
        allowed_tiers: list[str] | None,
        key_name: str | None,
        top_k: int,
    ) -> Trace:
        return Trace(
            trace_id=result.trace_id,
            asked_at=now,
            question=result.question,
            key_name=key_name,
            allowed_tiers=list(allowed_tiers if allowed_tiers is not None else result.tiers),
            queried_tiers=list(result.tiers),
            outcome="refused" if d.reason else "answered",
            refusal_reason=d.reason,
            confidence=d.confidence,
            retrieved=[
                {**c.brief().model_dump(), "fused": round(c.fused, 6)}
                for c in d.found[: self.candidates]
            ],
            reranked=[c.brief().model_dump() for c in d.ranked[:top_k]],
            cited=[
                {
                    "chunk_id": c.candidate.chunk_id,
                    "doc_id": c.candidate.payload.doc_id,
                    "tier": c.candidate.tier,
                    "source": c.candidate.payload.source,
                }
                for c in d.citations
            ],
            latency_ms=result.latency_ms,
            generator=result.generator.model_dump() if d.generator else None,
        )
