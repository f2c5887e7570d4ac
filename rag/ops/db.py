"""The ops database: jobs, per-file results, document state, BM25 statistics, sources.

SQLAlchemy Core over SQLite (default, a file in the data dir) or PostgreSQL (by URL).
Schema changes are a plain ordered list of migrations; `schema_version` records what ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

jobs = Table(
    "ingest_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source", String(200), nullable=False, index=True),
    Column("tier", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("ttl", String(32), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("files_total", Integer, nullable=False, default=0),
    Column("files_done", Integer, nullable=False, default=0),
    Column("counts", JSON, nullable=False),
    Column("chunks_written", Integer, nullable=False, default=0),
    Column("error", Text),
    # Added in migration 3: which worker runs the job, and when it last showed progress.
    Column("claimed_by", String(100)),
    Column("heartbeat_at", DateTime(timezone=True)),
)

job_files = Table(
    "ingest_job_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("chunks", Integer, nullable=False, default=0),
)

documents = Table(
    "documents",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("doc_id", String(1000), primary_key=True),
    Column("tier", String(64), nullable=False, index=True),
    Column("uri", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("chunk_ids", JSON, nullable=False),
    Column("token_total", Integer, nullable=False),
    Column("source_modified_at", DateTime(timezone=True), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # Migration 6: what a web page's next fetch sends and remembers (ETag, Last-Modified, links).
    Column("fetch_state", JSON),
)

bm25_stats = Table(
    "bm25_stats",
    metadata,
    Column("tier", String(64), primary_key=True),
    Column("doc_count", Integer, nullable=False),
    Column("total_length", Float, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("tier", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("ttl", String(32), nullable=False),
    Column("schedule", String(100)),
    Column("last_job_id", String(36)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_failure_at", DateTime(timezone=True)),
    Column("last_error", Text),
    # Migration 6: where the last complete run left off (a git source: the commit it read).
    Column("cursor", String(100)),
)


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("tiers", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

query_log = Table(
    "query_log",
    metadata,
    Column("trace_id", String(36), primary_key=True),
    Column("asked_at", DateTime(timezone=True), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("key_name", String(200)),
    Column("allowed_tiers", JSON, nullable=False),
    Column("queried_tiers", JSON, nullable=False),
    Column("outcome", String(16), nullable=False, index=True),
    Column("refusal_reason", String(64)),
    Column("confidence", Float),
    Column("retrieved", JSON, nullable=False),
    Column("reranked", JSON, nullable=False),
    Column("cited", JSON, nullable=False),
    Column("latency_ms", JSON, nullable=False),
    # Added in migration 4: the answer's generator block (provider, prompt version, cost).
    Column("generator", JSON),
)


# Added in migration 5: operators' ratings of answers (`POST /feedback`, `ragops feedback`).
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(36), nullable=False, index=True),
    Column("rating", String(16), nullable=False),
    Column("comment", Text),
    Column("correct_doc_id", String(1000)),
    Column("key_name", String(200)),
    Column("rated_at", DateTime(timezone=True), nullable=False, index=True),
)


def _v1_initial(conn: Connection) -> None:
    for table in (jobs, job_files, documents, bm25_stats, sources):
        table.create(conn, checkfirst=True)


def _v2_keys_and_query_log(conn: Connection) -> None:
    for table in (api_keys, query_log):
        table.create(conn, checkfirst=True)


def _v3_job_claims(conn: Connection) -> None:
    # Databases created before v3 lack the columns; fresh ones got them from v1's table.
    present = {c["name"] for c in inspect(conn).get_columns("ingest_jobs")}
    if "claimed_by" not in present:
        conn.execute(text("ALTER TABLE ingest_jobs ADD COLUMN claimed_by VARCHAR(100)"))
    if "heartbeat_at" not in present:
        kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
        conn.execute(text(f"ALTER TABLE ingest_jobs ADD COLUMN heartbeat_at {kind}"))


def _v4_query_generator(conn: Connection) -> None:
    present = {c["name"] for c in inspect(conn).get_columns("query_log")}
    if "generator" not in present:
        conn.execute(text("ALTER TABLE query_log ADD COLUMN generator JSON"))


def _v5_feedback(conn: Connection) -> None:
    feedback.create(conn, checkfirst=True)


def _v6_git_and_web_sources(conn: Connection) -> None:
    # Databases created before v6 lack the columns; fresh ones got them from v1's tables.
    if "cursor" not in {c["name"] for c in inspect(conn).get_columns("sources")}:
        conn.execute(text("ALTER TABLE sources ADD COLUMN cursor VARCHAR(100)"))
    if "fetch_state" not in {c["name"] for c in inspect(conn).get_columns("documents")}:
        conn.execute(text("ALTER TABLE documents ADD COLUMN fetch_state JSON"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_initial,
    _v2_keys_and_query_log,
    _v3_job_claims,
    _v4_query_generator,
    _v5_feedback,
    _v6_git_and_web_sources,
]


def migrate(engine: Engine) -> int:
    """Apply pending migrations in order; returns the schema version now in force."""
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        done = {row[0] for row in conn.execute(select(schema_version.c.version))}
        for number, step in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            step(conn)
            conn.execute(
                schema_version.insert().values(version=number, applied_at=datetime.now(UTC))
            )
    return len(MIGRATIONS)


def connect(url: str) -> Engine:
    """An engine with migrations applied. SQLite gets WAL mode so readers don't block writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


T = TypeVar("T")


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def record(cls: type[T], row: Mapping[Any, Any], **values: Any) -> T:
    """A dataclass from a database row, field by field name, datetimes as UTC (`as_utc`);
    `values` give the fields whose column has another name or needs reading."""
    taken: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            taken[f.name] = values[f.name]
        elif f.name in row:
            value = row[f.name]
            taken[f.name] = as_utc(value) if isinstance(value, datetime) else value
    return cls(**taken)
