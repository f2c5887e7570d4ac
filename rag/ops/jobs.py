"""Ingestion job records in the ops database: status, counts and per-file results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from rag.ops.db import as_utc, job_files, jobs, record
from rag.ops.metrics import DOCUMENTS_INGESTED, JOB_FAILURES
from rag.types import iso, utc_now

FILE_STATUSES = ("added", "updated", "unchanged", "deleted", "failed")
# The reason of an "unchanged" file whose content was not even read, the source's own signal
# having said so (a web page's 304, a git file outside the diff): the freshness report counts
# these apart from what a run downloaded.
NOT_READ = "not read: "


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(FILE_STATUSES, 0)


@dataclass
class FileResult:
    path: str
    status: str
    reason: str | None = None
    chunks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "reason": self.reason}


@dataclass
class JobRecord:
    job_id: str
    source: str
    tier: str
    path: str
    ttl: str
    trigger: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    files_total: int = 0
    files_done: int = 0
    counts: dict[str, int] = field(default_factory=empty_counts)
    chunks_written: int = 0
    error: str | None = None
    files: list[FileResult] = field(default_factory=list)

    def to_dict(self, with_files: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "source": self.source,
            "tier": self.tier,
            "path": self.path,
            "ttl": self.ttl,
            "trigger": self.trigger,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at) if self.started_at else None,
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "progress": {"files_done": self.files_done, "files_total": self.files_total},
            "counts": dict(self.counts),
            "chunks_written": self.chunks_written,
            "error": self.error,
        }
        if with_files:
            out["files"] = [f.to_dict() for f in self.files]
        return out


class JobLog:
    """`log = JobLog(engine); job = log.create("handbook", "internal", "/docs", "90d", "cli")`"""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, source: str, tier: str, path: str, ttl: str, trigger: str, queued: bool = True
    ) -> JobRecord:
        """A new job: queued for any worker to claim, or (`queued=False`) already running in
        the caller, so that no worker can claim it and run it a second time alongside."""
        now = utc_now()
        job = JobRecord(
            job_id=str(uuid.uuid4()),
            source=source,
            tier=tier,
            path=path,
            ttl=ttl,
            trigger=trigger,
            status="queued" if queued else "running",
            created_at=now,
            started_at=None if queued else now,
        )
        with self.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job.job_id,
                    source=source,
                    tier=tier,
                    path=path,
                    ttl=ttl,
                    trigger=trigger,
                    status=job.status,
                    created_at=job.created_at,
                    started_at=job.started_at,
                    heartbeat_at=job.started_at,
                    counts=job.counts,
                    files_total=0,
                    files_done=0,
                    chunks_written=0,
                )
            )
        return job

    def start(self, job: JobRecord, files_total: int) -> None:
        job.status, job.started_at, job.files_total = "running", utc_now(), files_total
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job.job_id)
                .values(
                    status=job.status,
                    started_at=job.started_at,
                    files_total=files_total,
                    heartbeat_at=job.started_at,
                )
            )

    def active(self, source: str) -> JobRecord | None:
        """The source's queued or running job, if any (one run per source at a time)."""
        query = (
            select(jobs)
            .where((jobs.c.source == source) & jobs.c.status.in_(("queued", "running")))
            .order_by(jobs.c.created_at)
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _job_from_row(row) if row else None

    def claim(self, worker: str) -> JobRecord | None:
        """Take the oldest queued job for this worker, atomically: two workers never get the
        same job (a row lock on PostgreSQL, and a conditional update everywhere)."""
        with self.engine.begin() as conn:
            query = (
                select(jobs.c.id)
                .where(jobs.c.status == "queued")
                .order_by(jobs.c.created_at)
                .limit(1)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job_id = conn.execute(query).scalar()
            if job_id is None:
                return None
            now = utc_now()
            claimed = conn.execute(
                update(jobs)
                .where((jobs.c.id == job_id) & (jobs.c.status == "queued"))
                .values(status="running", claimed_by=worker, started_at=now, heartbeat_at=now)
            ).rowcount
        return self.get(job_id) if claimed == 1 else None

    def fail_stale(self, older_than: datetime | None = None) -> int:
        """Mark running jobs whose worker went silent (before `older_than`; all when None)
        as failed, so the next run of their source can start and converge."""
        condition = jobs.c.status == "running"
        if older_than is not None:
            condition = condition & (jobs.c.heartbeat_at < older_than)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(jobs)
                    .where(condition)
                    .values(
                        status="failed",
                        finished_at=utc_now(),
                        error="interrupted: the worker stopped during the job",
                    )
                ).rowcount
            )

    def record_file(self, job: JobRecord, result: FileResult) -> None:
        """Store one file's outcome and the job's running totals in one transaction."""
        job.files.append(result)
        job.counts[result.status] += 1
        DOCUMENTS_INGESTED.labels(result.status).inc()
        job.chunks_written += result.chunks
        if result.status != "deleted":
            job.files_done += 1
        with self.engine.begin() as conn:
            conn.execute(
                job_files.insert().values(
                    job_id=job.job_id,
                    path=result.path,
                    status=result.status,
                    reason=result.reason,
                    chunks=result.chunks,
                )
            )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job.job_id)
                .values(
                    counts=dict(job.counts),
                    chunks_written=job.chunks_written,
                    files_done=job.files_done,
                    heartbeat_at=utc_now(),
                )
            )

    def finish(self, job: JobRecord, status: str, error: str | None = None) -> None:
        job.status, job.finished_at, job.error = status, utc_now(), error
        if status == "failed":
            JOB_FAILURES.inc()
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job.job_id)
                .values(status=status, finished_at=job.finished_at, error=error)
            )

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if row is None:
                return None
            files = conn.execute(
                select(job_files).where(job_files.c.job_id == job_id).order_by(job_files.c.id)
            ).mappings()
            job = _job_from_row(row)
            job.files = [
                FileResult(f["path"], f["status"], f["reason"], f["chunks"]) for f in files
            ]
        return job

    def recent(
        self, limit: int = 20, source: str | None = None, tiers: list[str] | None = None
    ) -> list[JobRecord]:
        """Newest first; only `source`'s, and only jobs of `tiers`, when given."""
        query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if source:
            query = query.where(jobs.c.source == source)
        if tiers is not None:
            query = query.where(jobs.c.tier.in_(tiers))
        with self.engine.connect() as conn:
            return [_job_from_row(r) for r in conn.execute(query).mappings()]


def _job_from_row(row: Any) -> JobRecord:
    return record(
        JobRecord,
        row,
        job_id=row["id"],
        created_at=as_utc(row["created_at"]) or utc_now(),
        counts={**empty_counts(), **(row["counts"] or {})},
    )
