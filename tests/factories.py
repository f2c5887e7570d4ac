"""Hand-made payloads and candidates for tests that need no model and no store."""

from __future__ import annotations

from datetime import timedelta

from rag.types import Candidate, ChunkPayload, chunk_id_for, content_hash, iso, utc_now


def chunk_payload(
    doc_id: str,
    text: str,
    *,
    index: int = 0,
    tier: str = "verified",
    source: str = "src",
    expires_in: timedelta = timedelta(days=1),
) -> ChunkPayload:
    now = utc_now()
    h = content_hash(text)
    return ChunkPayload(
        doc_id=doc_id,
        chunk_id=chunk_id_for(source, doc_id, index, h),
        chunk_index=index,
        source=source,
        tier=tier,
        uri=f"file:///{doc_id}",
        title=doc_id,
        section="",
        text=text,
        char_start=0,
        char_end=len(text),
        source_modified_at=iso(now),
        ingested_at=iso(now),
        expires_at=iso(now + expires_in),
        content_hash=h,
        doc_hash=h,
        version=1,
        token_count=len(text.split()),
    )


def candidate(
    text: str,
    doc_id: str = "doc.md",
    *,
    dense: float = 0.5,
    bm25: float = 1.0,
    trust: float = 1.0,
    score: float = 1.0,
    judge: float | None = None,
    window: tuple[int, int] | None = None,
    tier: str = "verified",
) -> Candidate:
    """A retrieved chunk of `text`, with the evidence scores a reranker reads (and, optionally,
    the answerability judge's logit for a window of it)."""
    payload = chunk_payload(doc_id, text, tier=tier)
    return Candidate(
        payload,
        fused=score,
        dense=dense,
        bm25=bm25,
        trust=trust,
        score=score,
        judge=judge,
        window=window,
    )
