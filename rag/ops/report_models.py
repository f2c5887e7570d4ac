"""The operator reports as typed models: `rag.ops.reports` builds them; the JSON routes, the
CLI's tables and the dashboard read them (field names are the JSON keys)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class FailedFile(BaseModel):
    path: str
    reason: str | None


class LastRead(BaseModel):
    """What a source's last run read: documents downloaded or read (`read`), those whose
    source said they had not changed so nothing was downloaded (`not_read`: a web page's 304,
    a git file outside the diff), and failures."""

    read: int
    not_read: int
    failed: int


class FlaggedChunk(BaseModel):
    """A chunk flagged at ingestion as trying to instruct a model."""

    doc_id: str
    chunk_id: str
    reason: str | None


class OcrPage(BaseModel):
    """A page read by OCR below the confidence floor."""

    doc_id: str
    page: str
    confidence: float | None


class SourceFreshness(BaseModel):
    source: str
    tier: str
    kind: str  # folder, jsonl, git or web
    path: str
    # A git source: the commit its last complete run read.
    commit: str | None = None
    ttl: str
    schedule: str | None
    documents: int
    chunks: int
    newest_source_date: str | None
    oldest_source_date: str | None
    last_success_at: str | None
    last_failure_at: str | None
    last_error: str | None
    next_run_at: str | None
    overdue: bool
    chunks_expiring_24h: int
    chunks_expired_unswept: int
    chunks_flagged: int
    flagged: list[FlaggedChunk]
    chunks_ocr_flagged: int
    ocr_flagged: list[OcrPage]
    last_job: dict[str, Any] | None  # the jobs route's shape, without files
    last_read: LastRead | None
    last_failures: list[FailedFile]
    age_distribution: dict[str, int]  # documents per age bucket, youngest first


class TierFreshness(BaseModel):
    tier: str
    sources: int
    documents: int
    chunks: int
    chunks_expiring_24h: int
    chunks_expired_unswept: int
    chunks_flagged: int
    chunks_ocr_flagged: int


class FreshnessReport(BaseModel):
    generated_at: str
    overdue_sources: list[str]
    sources: list[SourceFreshness]
    tiers: list[TierFreshness]


class RatingCounts(BaseModel):
    """One count per rating kind (`rag.ops.feedback.RATINGS`)."""

    good: int = 0
    wrong: int = 0
    should_refuse: int = 0
    should_answer: int = 0


class TierRatings(RatingCounts):
    tier: str


class SourceRatings(RatingCounts):
    source: str


class RatedQuestion(BaseModel):
    question: str
    bad_ratings: int


class RatedDocument(BaseModel):
    source: str
    doc_id: str
    bad_ratings: int


class MissedAnswer(BaseModel):
    """A refusal an operator rated "should_answer": a gap the documents do cover."""

    question: str
    refusal_reason: str | None
    correct_doc_id: str | None
    trace_id: str


class RatingsReport(BaseModel):
    total: int
    by_rating: RatingCounts
    per_tier: list[TierRatings]
    per_source: list[SourceRatings]
    worst_questions: list[RatedQuestion]
    worst_documents: list[RatedDocument]
    should_answer: list[MissedAnswer]


class TierHits(BaseModel):
    tier: str
    asks: int
    hits: int
    hit_rate: float | None


class SourceHits(BaseModel):
    source: str
    retrieved: int
    cited: int
    hit_rate: float | None


class CitedDocument(BaseModel):
    source: str
    doc_id: str
    citations: int


class DocumentRef(BaseModel):
    source: str
    doc_id: str


class NeverRetrieved(BaseModel):
    count: int
    documents: list[DocumentRef]  # the first 50


class KnowledgeGap(BaseModel):
    question: str
    asked: int
    refusal_reason: str | None


class GeneratorUsage(BaseModel):
    """Asks answered by one answerer, provider and prompt version (a changed prompt is a new
    row), what they cost, and how often the generator fell back to the extractive answer."""

    kind: str
    provider: str | None
    prompt_version: str | None
    asks: int = 0
    fallbacks: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    sentences_dropped: int = 0


class StageLatency(BaseModel):
    p50: float | None
    p95: float | None


class DailyHits(BaseModel):
    date: str
    asks: int
    answered: int
    refused: int
    answer_rate: float
    p95_ms: float | None


class HitsReport(BaseModel):
    since: str
    until: str
    asks: int
    answered: int
    refused: int
    answer_rate: float | None
    refusals_by_reason: dict[str, int]
    tiers: list[TierHits]
    sources: list[SourceHits]
    most_cited_documents: list[CitedDocument]
    never_retrieved: NeverRetrieved
    knowledge_gaps: list[KnowledgeGap]
    ratings: RatingsReport
    generators: list[GeneratorUsage]
    cost_total: float
    latency_ms: dict[str, StageLatency]  # every `rag.types.Stage`, in pipeline order
    daily: list[DailyHits]
