"""Data types shared by ingestion, the store and the query side. Nobody redefines them."""

from __future__ import annotations

import hashlib
import uuid
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

# Receives each piece of text as soon as it is final: a sentence of a streamed answer, a delta
# of a provider's stream.
TextSink = Callable[[str], None]


class Stage(StrEnum):
    """The stages an ask's latency is reported by: the pipeline laps them, the query log keeps
    them, the hits report, the dashboard and /metrics show them."""

    EMBED = "embed"
    RETRIEVE = "retrieve"
    RERANK = "rerank"
    JUDGE = "judge"  # the answerability judge: about half of an ask's CPU
    ANSWER = "answer"  # the gate and the answer (generation and verification when on)
    TOTAL = "total"


# Namespace for chunk ids: uuid5(namespace, source|doc_id|index|hash) is stable across runs.
CHUNK_NAMESPACE = uuid.UUID("5b0c7a52-2f5e-4d55-9a6b-2b8c1f3e7a10")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """Timestamps are stored as ISO-8601 UTC strings: Qdrant datetime ranges take strings."""
    return ts.astimezone(UTC).isoformat(timespec="seconds")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id_for(source: str, doc_id: str, index: int, chunk_hash: str) -> str:
    # doc ids are unique within a source (a relative path, a JSONL id), so the source is part
    # of the key: two sources may both have a "README.md".
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{source}|{doc_id}|{index}|{chunk_hash}"))


@dataclass(frozen=True)
class SectionSpan:
    """A run of the source text under one heading path; chunks never cross its edges."""

    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    # For text read by OCR: the page's mean word confidence (0..1); None for a text layer.
    ocr_confidence: float | None = None


@dataclass
class LoadedDocument:
    """One source document as text, with its structure kept as character spans."""

    doc_id: str
    text: str
    uri: str
    title: str
    sections: list[SectionSpan]
    modified_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    # What the loader left out or doubts, said in the job's per-file result (hidden sheets
    # skipped, pages read by OCR below the confidence floor).
    notes: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)

    def section_at(self, offset: int) -> SectionSpan | None:
        """The section holding character `offset` (chunks never cross a section's edges;
        sections are in text order, so this is a bisection)."""
        i = bisect_right(self.sections, offset, key=lambda s: s.start) - 1
        return self.sections[i] if i >= 0 and offset < self.sections[i].end else None


@dataclass
class Chunk:
    """A piece of a document, cut by meaning; `text == document.text[char_start:char_end]`."""

    doc_id: str
    index: int
    text: str
    char_start: int
    char_end: int
    section: str


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass
class ChunkPayload:
    """The payload stored with every point (DESIGN.md, "Chunk payload")."""

    doc_id: str
    chunk_id: str
    chunk_index: int
    source: str
    tier: str
    uri: str
    title: str
    section: str
    text: str
    char_start: int
    char_end: int
    source_modified_at: str
    ingested_at: str
    expires_at: str
    content_hash: str
    doc_hash: str
    version: int
    token_count: int
    # Why the chunk reads as an instruction to a model (`rag.answering.injection`), or None. Set at
    # ingestion, shown in the freshness report; such chunks never enter an LLM's context.
    injection: str | None = None
    # Text read by OCR: its page's confidence (0..1), and why it is flagged when that is below
    # the floor (RAG_OCR_MIN_CONFIDENCE); such chunks are served but listed in the freshness
    # report for an operator to check against the original.
    ocr_confidence: float | None = None
    ocr_flag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkPayload:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ChunkPoint:
    """What the store writes: the payload plus its dense and BM25 sparse vectors."""

    payload: ChunkPayload
    dense: list[float]
    sparse: SparseVector

    @property
    def id(self) -> str:
        return self.payload.chunk_id


class _OfChunk:
    """A chunk seen by a stage of the query path: its id and tier are its payload's."""

    payload: ChunkPayload

    @property
    def chunk_id(self) -> str:
        return self.payload.chunk_id

    @property
    def tier(self) -> str:
        return self.payload.tier


@dataclass
class ScoredChunk(_OfChunk):
    """A retrieved chunk with the engine's score."""

    payload: ChunkPayload
    score: float


@dataclass
class Candidate(_OfChunk):
    """A chunk on the query path, with the evidence behind its rank.

    `fused` is the engine's fusion score within its tier; `dense` the cosine similarity and
    `bm25` the engine's BM25 score for this question; `score` the final ranking score after
    reranking and trust weighting. `judge` is the answerability judge's logit for the chunk's
    `window` (character span of the text it read); None for chunks the judge did not read.
    """

    payload: ChunkPayload
    fused: float
    dense: float = 0.0
    bm25: float = 0.0
    trust: float = 1.0  # the tier's trust weight; rankers multiply their score by it
    score: float = 0.0
    judge: float | None = None
    window: tuple[int, int] | None = None

    def brief(self) -> RetrievedChunk:
        p = self.payload
        return RetrievedChunk(
            doc_id=p.doc_id,
            chunk_id=p.chunk_id,
            score=round(self.score, 6),
            tier=p.tier,
            source=p.source,
            dense=round(self.dense, 6),
            bm25=round(self.bm25, 6),
            judge=None if self.judge is None else round(self.judge, 4),
        )


@dataclass
class Citation:
    """One cited quote: always an exact substring of the chunk it names."""

    marker: int
    quote: str
    candidate: Candidate

    def public(self, now: datetime) -> CitationOut:
        p = self.candidate.payload
        return CitationOut(
            marker=self.marker,
            doc_id=p.doc_id,
            chunk_id=p.chunk_id,
            quote=self.quote,
            tier=p.tier,
            source=p.source,
            title=p.title,
            section=p.section,
            uri=p.uri,
            source_modified_at=p.source_modified_at,
            ingested_at=p.ingested_at,
            age_days=age_days(p.source_modified_at, now),
        )


def age_days(modified_at: str, now: datetime) -> float:
    """Days since the source last changed, as citations and search hits show it."""
    return round((now - datetime.fromisoformat(modified_at)).total_seconds() / 86400, 1)


# What the query path returns: one typed result that /ask, /search, `ragops ask` and the eval
# runner all read (DESIGN.md §3 fixes the JSON shape).


class RetrievedChunk(BaseModel):
    doc_id: str
    chunk_id: str
    score: float
    tier: str
    source: str
    # The evidence behind `score`: the engine's dense cosine and BM25 score, and the evidence
    # model's logit for the window it read (None where it did not read this chunk).
    dense: float = 0.0
    bm25: float = 0.0
    judge: float | None = None


class ClosestSource(RetrievedChunk):
    """A source shown with a refusal: near the question, but not an answer."""

    title: str
    note: str = "not an answer"


class CitationOut(BaseModel):
    marker: int
    doc_id: str
    chunk_id: str
    quote: str
    tier: str
    source: str
    title: str
    section: str
    uri: str
    source_modified_at: str
    ingested_at: str
    age_days: float


class ProviderAttempt(BaseModel):
    provider: str
    outcome: str  # "ok", "declined", or why its completion was not used


class DroppedSentence(BaseModel):
    sentence: str
    reason: str


class GeneratorInfo(BaseModel):
    """How an answer was produced (DESIGN.md §3). The last three fields extend the contract:
    each provider tried and what came of it, the generated sentences the verifier removed, and
    the chunks kept out of the model's context as prompt injection."""

    kind: str
    provider: str | None = None
    prompt_version: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    fallback_reason: str | None = None
    attempts: list[ProviderAttempt] = Field(default_factory=list)
    dropped_sentences: list[DroppedSentence] = Field(default_factory=list)
    screened_chunks: list[str] = Field(default_factory=list)


class AskResult(BaseModel):
    """The answer to one question with its citations, or a refusal with its reason."""

    question: str
    refused: bool
    refusal_reason: str | None
    refusal_message: str | None
    refusal_detail: str | None
    answer: str | None
    confidence: float | None
    threshold: float
    # The confidence gate's inputs by name, the judge's (`judge_max`, `judge_probability`) among
    # them; a free mapping, so new scores can join it.
    evidence: dict[str, float] | None
    citations: list[CitationOut]
    retrieved: list[RetrievedChunk]
    closest_sources: list[ClosestSource]
    tiers: list[str]
    generator: GeneratorInfo
    latency_ms: dict[str, float]
    trace_id: str


class SearchHit(RetrievedChunk):
    """A reranked chunk with the evidence behind its score and its text."""

    title: str
    section: str
    text: str
    # Where the chunk comes from and how fresh it is, as a citation shows it.
    uri: str
    source_modified_at: str
    ingested_at: str
    expires_at: str
    age_days: float


class SearchResult(BaseModel):
    """Retrieval only: the reranked chunks for one question, no answer."""

    question: str
    tiers: list[str]
    results: list[SearchHit]
    latency_ms: dict[str, float]
