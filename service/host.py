"""Scheduled re-indexing and the ingestion worker, hosted by `ragops serve` or `ragops worker`.

- The scheduler (APScheduler 3.11, jobs persisted in the ops DB) only *enqueues*: each
  declared source's schedule fires `enqueue_source`, which queues a job unless that source
  already has one queued or running (one run per source; missed runs coalesce into one).
- Workers claim queued jobs atomically (`JobLog.claim`) and run them with the same
  `Ingestor` the CLI uses. A failing run is recorded with its reason; the schedule goes on.
- The expiry sweep runs on its own interval.

With the embedded store, the API process hosts the scheduler and one worker (the store admits
one process). With a Qdrant server, any number of `ragops worker` processes may run.

Scheduled functions are importable references ("service.host:enqueue_source"), so the
persistent job store holds names, not pickled objects; they reach the live services through
the host registered in this process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from ingestion.runner import Ingestor, IngestRequest, source_location
from rag.durations import parse_duration
from rag.ops.expiry import sweep_expired
from rag.ops.schedules import parse_schedule
from rag.types import utc_now
from service.container import Services
from service.ingest import SourceSpec, fail_interrupted_jobs, load_manifest, make_ingestor

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

log = logging.getLogger(__name__)

_HOST: IngestionHost | None = None


def enqueue_source(name: str) -> str | None:
    """Scheduled entry point: queue a run of a declared source. Returns the job id."""
    if _HOST is None:
        log.warning("scheduled run of %s skipped: no ingestion host in this process", name)
        return None
    return _HOST.enqueue_declared(name, trigger="schedule")


def sweep() -> dict[str, int]:
    """Scheduled entry point: delete expired chunks."""
    if _HOST is None:
        return {}
    return _HOST.sweep()


class IngestionHost:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler = None
        self._ingestor: Ingestor | None = None
        self.specs: dict[str, SourceSpec] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, schedule: bool = True) -> None:
        global _HOST
        _HOST = self
        s = self.services.settings
        if s.sources_file.exists():
            self.specs = {spec.name: spec for spec in load_manifest(s.sources_file, s.tiers)}
        for spec in self.specs.values():
            self.services.catalog.register_source(
                spec.name, spec.tier, spec.request("manifest").location, spec.ttl, spec.schedule
            )
        fail_interrupted_jobs(self.services)
        self._ingestor = make_ingestor(self.services)
        self._thread = threading.Thread(target=self._work, name="ingestion-worker", daemon=True)
        self._thread.start()
        if schedule:
            self._start_scheduler()

    def stop(self) -> None:
        global _HOST
        self._stop.set()
        self._wake.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._thread is not None:
            self._thread.join(timeout=30)
        _HOST = None

    def _start_scheduler(self) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        s = self.services.settings
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.services.engine)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone="UTC",
        )
        scheduler.start(paused=True)
        wanted: dict[str, tuple[str, BaseTrigger, list[str], str]] = {
            f"source:{spec.name}": (
                "service.host:enqueue_source",
                parse_schedule(spec.schedule),
                [spec.name],
                f"re-index {spec.name} ({spec.schedule})",
            )
            for spec in self.specs.values()
            if spec.schedule
        }
        sweep_every = parse_duration(s.sweep_interval).total_seconds()
        wanted["sweep"] = (
            "service.host:sweep",
            IntervalTrigger(seconds=sweep_every, timezone="UTC"),
            [],
            "expiry sweep",
        )
        for job in scheduler.get_jobs():
            if job.id not in wanted:  # a source removed from the manifest
                job.remove()
        for job_id, (func, trigger, args, name) in wanted.items():
            kept = scheduler.get_job(job_id)
            # An unchanged schedule keeps its persisted next run: re-adding it would restart
            # its interval, and a service restarted more often than that would never re-index.
            # A job persisted under an older function reference (before `ingestion.host` became
            # `service.host`) is re-added with the current one.
            unchanged = kept is not None and kept.func_ref == func
            if unchanged and str(kept.trigger) == str(trigger) and list(kept.args) == args:
                continue
            scheduler.add_job(func, trigger, args=args, id=job_id, name=name, replace_existing=True)
        scheduler.resume()
        self._scheduler = scheduler
        for job in scheduler.get_jobs():
            log.info("scheduled %s: next run %s", job.name, job.next_run_time)

    # -- work -----------------------------------------------------------------------------
    def enqueue_declared(self, name: str, trigger: str) -> str | None:
        spec = self.specs.get(name)
        if spec is None:
            log.warning("source %s is no longer declared; skipping", name)
            return None
        return self.enqueue(spec.request(trigger)).job_id

    def enqueue(self, request: IngestRequest):  # type: ignore[no-untyped-def]
        """Queue a job (validated now), or return the source's job already queued/running."""
        assert self._ingestor is not None
        active = self.services.jobs.active(request.source)
        if active is not None:
            log.info(
                "source %s already has job %s (%s)", request.source, active.job_id, active.status
            )
            return active
        try:
            job = self._ingestor.submit(request)
        except ValueError as exc:
            # A scheduled source that cannot run (path gone...) shows up in the reports.
            self.services.catalog.record_run(request.source, "-", utc_now(), error=str(exc))
            raise
        self._wake.set()
        return job

    def _work(self) -> None:
        poll = self.services.settings.worker_poll_seconds
        while not self._stop.is_set():
            job = None
            try:
                job = self.services.jobs.claim(self.worker_id)
                if job is not None:
                    request = IngestRequest(
                        job.source, job.tier, source_location(job.path), job.ttl, job.trigger
                    )
                    assert self._ingestor is not None
                    self._ingestor.run(request, job)
            except Exception:  # the worker must outlive any single job
                log.exception("ingestion worker error (job %s)", job.job_id if job else "-")
            if job is None:
                self._wake.wait(poll)
                self._wake.clear()

    def sweep(self) -> dict[str, int]:
        deleted = sweep_expired(self.services.store, self.services.catalog, utc_now())
        if any(deleted.values()):
            log.info("expiry sweep deleted %s", deleted)
        return deleted
