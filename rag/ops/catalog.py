"""What is indexed, per source: document hashes and versions, BM25 length statistics, sources.

Ingestion uses it to skip unchanged documents and to find deleted ones; reports read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from rag.ops.db import bm25_stats, documents, record, sources


@dataclass
class DocumentState:
    source: str
    doc_id: str
    tier: str
    uri: str
    content_hash: str
    version: int
    chunk_ids: list[str]
    token_total: int
    source_modified_at: datetime
    ingested_at: datetime
    verified_at: datetime
    expires_at: datetime
    # A web page's validators and links, for the next run's conditional request.
    fetch_state: dict[str, Any] | None = None


def source_kind(location: str) -> str:
    """What a recorded source location names: a git repository (`git+https://…`), a web site
    (`https://…`), a JSONL corpus or a folder. The one place that tells them apart: ingestion
    and the reports both ask it."""
    if location.startswith("git+"):
        return "git"
    if location.startswith(("http://", "https://")):
        return "web"
    return "jsonl" if location.endswith(".jsonl") else "folder"


@dataclass
class SourceState:
    name: str
    tier: str
    path: str
    ttl: str
    schedule: str | None
    last_job_id: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    cursor: str | None = None  # where the last complete run left off (a git source's commit)

    @property
    def kind(self) -> str:
        return source_kind(self.path)


def _doc_from_row(row: Any) -> DocumentState:
    return record(DocumentState, row, chunk_ids=list(row["chunk_ids"]))


class Catalog:
    """`cat = Catalog(engine); cat.documents("handbook")` -> {doc_id: DocumentState}"""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # documents -----------------------------------------------------------------------------
    def documents(self, source: str) -> dict[str, DocumentState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(documents).where(documents.c.source == source)).mappings()
            return {r["doc_id"]: _doc_from_row(r) for r in rows}

    def all_documents(self) -> list[DocumentState]:
        with self.engine.connect() as conn:
            return [_doc_from_row(r) for r in conn.execute(select(documents)).mappings()]

    def expired_documents(self, now: datetime) -> list[DocumentState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(documents).where(documents.c.expires_at <= now)).mappings()
            return [_doc_from_row(r) for r in rows]

    def save_document(self, doc: DocumentState, previous: DocumentState | None) -> None:
        """Insert or replace one document's state and adjust its tier's BM25 length totals in
        the same transaction, so a process killed at any point never counts a document twice."""
        values = {
            "source": doc.source,
            "doc_id": doc.doc_id,
            "tier": doc.tier,
            "uri": doc.uri,
            "content_hash": doc.content_hash,
            "version": doc.version,
            "chunk_ids": doc.chunk_ids,
            "token_total": doc.token_total,
            "source_modified_at": doc.source_modified_at,
            "ingested_at": doc.ingested_at,
            "verified_at": doc.verified_at,
            "expires_at": doc.expires_at,
            "fetch_state": doc.fetch_state,
        }
        key = (documents.c.source == doc.source) & (documents.c.doc_id == doc.doc_id)
        with self.engine.begin() as conn:
            if previous is None:
                conn.execute(insert(documents).values(**values))
            else:
                conn.execute(update(documents).where(key).values(**values))
            _add_lengths(
                conn,
                doc.tier,
                len(doc.chunk_ids) - (len(previous.chunk_ids) if previous else 0),
                doc.token_total - (previous.token_total if previous else 0),
            )

    def touch_documents(
        self, source: str, doc_ids: list[str], verified_at: datetime, expires_at: datetime
    ) -> None:
        """Unchanged documents re-verified by a run: their TTL restarts from now."""
        if not doc_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(documents)
                .where((documents.c.source == source) & documents.c.doc_id.in_(doc_ids))
                .values(verified_at=verified_at, expires_at=expires_at)
            )

    def set_fetch_state(self, source: str, doc_id: str, state: dict[str, Any]) -> None:
        """A page fetched again whose content had not changed: its new validators."""
        with self.engine.begin() as conn:
            conn.execute(
                update(documents)
                .where((documents.c.source == source) & (documents.c.doc_id == doc_id))
                .values(fetch_state=state)
            )

    def delete_document(self, doc: DocumentState) -> None:
        """Forget a document and take its chunks out of its tier's length totals, atomically."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(documents).where(
                    (documents.c.source == doc.source) & (documents.c.doc_id == doc.doc_id)
                )
            )
            _add_lengths(conn, doc.tier, -len(doc.chunk_ids), -doc.token_total)

    def avgdl(self, tier: str, pending_chunks: int = 0, pending_tokens: float = 0) -> float:
        """The tier's average chunk length in tokens, counting a batch about to be written."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(bm25_stats.c.doc_count, bm25_stats.c.total_length).where(
                    bm25_stats.c.tier == tier
                )
            ).first()
        chunks = (row[0] if row else 0) + pending_chunks
        tokens = (float(row[1]) if row else 0.0) + pending_tokens
        return tokens / chunks if chunks > 0 else 0.0

    # sources -------------------------------------------------------------------------------
    def register_source(
        self, name: str, tier: str, path: str, ttl: str, schedule: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(func.count()).select_from(sources).where(sources.c.name == name)
            ).scalar_one()
            values: dict[str, Any] = {"tier": tier, "path": path, "ttl": ttl}
            if schedule is not None:  # an ad-hoc run must not erase a declared schedule
                values["schedule"] = schedule
            if exists:
                conn.execute(update(sources).where(sources.c.name == name).values(**values))
            else:
                conn.execute(insert(sources).values(name=name, **values))

    def record_run(
        self,
        name: str,
        job_id: str,
        at: datetime,
        error: str | None = None,
        cursor: str | None = None,
    ) -> None:
        """A run's outcome; `cursor`, when given, is where the next run may start from."""
        values: dict[str, Any] = {"last_job_id": job_id}
        if cursor is not None:
            values["cursor"] = cursor
        if error is None:
            values["last_success_at"] = at
        else:
            values.update(last_failure_at=at, last_error=error)
        with self.engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.name == name).values(**values))

    def source(self, name: str) -> SourceState | None:
        return next((s for s in self.sources() if s.name == name), None)

    def sources(self) -> list[SourceState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sources).order_by(sources.c.name)).mappings()
            return [record(SourceState, r) for r in rows]

    def document_counts(self) -> dict[str, tuple[int, int]]:
        """source -> (documents, chunks)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(documents.c.source, documents.c.chunk_ids))
            out: dict[str, tuple[int, int]] = {}
            for source, chunk_ids in rows:
                docs, chunks = out.get(source, (0, 0))
                out[source] = (docs + 1, chunks + len(chunk_ids))
            return out


def _add_lengths(conn: Connection, tier: str, chunks: int, tokens: float) -> None:
    _ensure_stats(conn, tier)
    conn.execute(
        update(bm25_stats)
        .where(bm25_stats.c.tier == tier)
        .values(
            doc_count=bm25_stats.c.doc_count + chunks,
            total_length=bm25_stats.c.total_length + tokens,
        )
    )


def _ensure_stats(conn: Connection, tier: str) -> None:
    exists = conn.execute(
        select(func.count()).select_from(bm25_stats).where(bm25_stats.c.tier == tier)
    ).scalar_one()
    if not exists:
        conn.execute(insert(bm25_stats).values(tier=tier, doc_count=0, total_length=0.0))
