"""Wiring for ingestion on top of the shared services, plus the source manifest."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ingestion.chunking import SemanticChunker
from ingestion.git import GitRepo, is_git_location
from ingestion.loaders import LoadLimits
from ingestion.runner import Ingestor, IngestRequest
from ingestion.web import FetchPolicy, WebSite, is_web_location
from rag.durations import parse_duration
from rag.ops.schedules import parse_schedule
from rag.types import utc_now
from service.container import Services

log = logging.getLogger(__name__)


def make_ingestor(services: Services) -> Ingestor:
    s = services.settings

    def chunker() -> SemanticChunker:
        return SemanticChunker(
            services.embedder,
            max_tokens=s.chunk_max_tokens,
            min_tokens=s.chunk_min_tokens,
            breakpoint_percentile=s.chunk_breakpoint_percentile,
        )

    return Ingestor(
        services.store,
        services.catalog,
        services.jobs,
        chunker,
        bm25=services.bm25,
        limits=LoadLimits(
            max_bytes=s.max_file_bytes,
            ocr_max_pixels=s.ocr_max_pixels,
            ocr_max_pages=s.ocr_max_pages,
            ocr_timeout_s=s.ocr_timeout_s,
            ocr_min_confidence=s.ocr_min_confidence,
            sheet_max_cells=s.sheet_max_cells,
        ),
        git_dir=s.data_dir / "git",
        fetch=FetchPolicy(
            prefixes=(),
            private_networks=tuple(s.fetch_private_networks),
            timeout_s=s.fetch_timeout_s,
            delay_s=s.fetch_delay_s,
        ),
    )


def fail_interrupted_jobs(services: Services) -> int:
    """Mark jobs left "running" by a worker that died (kill -9, power loss) as failed, so the
    job table tells the truth and the source's next run may start and converge.

    Call it once this process holds the store. With the embedded store that makes it the only
    possible worker, so every running job was interrupted; with a server store other workers
    may be alive, and only jobs whose heartbeat went silent are failed.
    """
    s = services.settings
    embedded = s.store_backend == "edge"
    stale_before = None if embedded else utc_now() - parse_duration(s.job_stale_after)
    failed = services.jobs.fail_stale(stale_before)
    if failed:
        log.warning("marked %d interrupted ingestion job(s) as failed", failed)
    return failed


@dataclass(frozen=True)
class SourceSpec:
    """A declared source from the manifest (corpora/sources.toml)."""

    name: str
    path: Path | GitRepo | WebSite
    tier: str
    ttl: str
    schedule: str | None

    def request(self, trigger: str) -> IngestRequest:
        return IngestRequest(self.name, self.tier, self.path, self.ttl, trigger)


def load_manifest(path: Path, tiers: list[str]) -> list[SourceSpec]:
    """Parse and check the manifest; paths are relative to the manifest's folder. A `path`
    that is a git URL (`git+https://…`) names a repository, read at `ref` (default HEAD),
    under `subpath`, cited by `link` (`{commit}`, `{path}`)."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    specs: list[SourceSpec] = []
    for i, entry in enumerate(data.get("source", []), start=1):
        missing = [k for k in ("name", "path", "tier") if not entry.get(k)]
        if missing:
            raise ValueError(f"{path}: source #{i} lacks {', '.join(missing)}")
        if entry["tier"] not in tiers:
            raise ValueError(f"{path}: source {entry['name']!r} has unknown tier {entry['tier']!r}")
        ttl = str(entry.get("ttl", "30d"))
        try:
            parse_duration(ttl)
            if entry.get("schedule"):
                parse_schedule(str(entry["schedule"]))
        except ValueError as exc:
            raise ValueError(f"{path}: source {entry['name']!r}: {exc}") from exc
        location: Path | GitRepo | WebSite
        try:
            if is_web_location(str(entry["path"])):
                location = WebSite(
                    str(entry["path"]),
                    int(entry.get("max_pages", 200)),
                    int(entry.get("max_depth", 3)),
                )
            elif is_git_location(str(entry["path"])):
                location = GitRepo(
                    str(entry["path"]),
                    str(entry.get("ref", "HEAD")),
                    str(entry.get("subpath", "")),
                    entry.get("link"),
                )
            else:
                location = (path.parent / entry["path"]).resolve()
        except ValueError as exc:
            raise ValueError(f"{path}: source {entry['name']!r}: {exc}") from exc
        specs.append(
            SourceSpec(
                name=str(entry["name"]),
                path=location,
                tier=str(entry["tier"]),
                ttl=ttl,
                schedule=entry.get("schedule"),
            )
        )
    return specs
