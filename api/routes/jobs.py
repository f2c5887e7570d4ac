"""Ingestion jobs: start one now (202), follow its progress, list recent ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, model_validator

from api.auth import PrincipalDep
from api.deps import ServicesDep
from ingestion.git import GitRepo, is_git_location
from ingestion.runner import IngestRequest, default_source_name
from ingestion.web import WebSite, is_web_location, normalise
from rag.durations import parse_duration
from rag.settings import Settings
from service.host import IngestionHost

router = APIRouter(prefix="/ingest/jobs", tags=["ingestion"])


class JobCreate(BaseModel):
    """Either a declared `source`, or a `path` with its `tier` (and optional ttl, name). A
    `path` that is a git URL (`git+https://…`, `git+file://…`) names a repository, read at
    `ref` under `subpath` and cited by `link`."""

    source: str | None = Field(default=None, max_length=200)
    path: str | None = Field(default=None, max_length=4096)
    tier: str | None = Field(default=None, max_length=64)
    ttl: str | None = None
    ref: str | None = Field(default=None, max_length=200)
    subpath: str | None = Field(default=None, max_length=1000)
    link: str | None = Field(default=None, max_length=1000)
    max_pages: int | None = Field(default=None, ge=1, le=100_000, description="web sources")
    max_depth: int | None = Field(default=None, ge=0, le=50, description="web sources")

    @model_validator(mode="after")
    def _source_or_path(self) -> JobCreate:
        if not self.source and not self.path:
            raise ValueError("give a declared `source`, or a `path` with a `tier`")
        if self.path and not self.tier:
            raise ValueError("`tier` is required with `path`")
        if self.path and any(ord(ch) < 32 for ch in self.path):
            raise ValueError("`path` must not contain control characters")
        if self.ttl is not None:
            parse_duration(self.ttl)
        return self


def _allowed_location(body: JobCreate, settings: Settings) -> Path | GitRepo | WebSite:
    """The job's folder, repository or site, if the ingest roots allow it (403 otherwise): the
    API must not read arbitrary folders of the server or fetch arbitrary addresses."""
    assert body.path is not None
    if is_web_location(body.path):
        try:
            site = WebSite.parse(body.path)
            site = WebSite(
                site.url, body.max_pages or site.max_pages, body.max_depth or site.max_depth
            )
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        if not any(normalise(site.url).startswith(normalise(p)) for p in settings.ingest_urls):
            raise HTTPException(
                403,
                f"URL {site.url!r} is outside the allowed URL prefixes "
                f"({', '.join(settings.ingest_urls) or 'none'}; set RAG_INGEST_ROOTS)",
            )
        return site
    if "://" in body.path and not is_git_location(body.path):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "a source is a folder, a .jsonl file, an http(s):// site or a git+ repository URL",
        )
    if is_git_location(body.path):
        try:
            given = GitRepo.parse(body.path)
            repo = GitRepo(
                given.url,
                body.ref or given.ref,
                body.subpath if body.subpath is not None else given.subpath,
                body.link or given.link,
            )
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        local = repo.local_path
        if local is not None and _under(local.resolve(), settings.ingest_folders):
            return repo
        if any(repo.url.startswith(prefix) for prefix in settings.ingest_urls):
            return repo
        raise HTTPException(
            403,
            f"repository {repo.url!r} is outside the allowed ingest roots and URL prefixes "
            f"({', '.join(settings.ingest_roots)}; set RAG_INGEST_ROOTS)",
        )
    try:
        path = Path(body.path).expanduser().resolve()
    except RuntimeError as exc:  # "~someone" with no such user
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"cannot expand path {body.path!r}: {exc}"
        ) from exc
    if not _under(path, settings.ingest_folders):
        raise HTTPException(
            403,
            f"path {body.path!r} is outside the allowed ingest roots "
            f"({', '.join(map(str, settings.ingest_folders))}; set RAG_INGEST_ROOTS)",
        )
    return path


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _host(request: Request) -> IngestionHost:
    host: IngestionHost = request.app.state.host
    return host


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def create_job(
    body: JobCreate, request: Request, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Queue an ingestion job now; returns its id (poll GET /ingest/jobs/{id}).

    A key writes only into tiers it may read: a key for community content must not be able
    to put text into the verified tier, where it would be served as trusted."""
    host = _host(request)
    settings = services.settings
    if body.path is None:
        spec = host.specs.get(body.source or "")
        if spec is None or spec.tier not in principal.tiers:  # another tier's: as if none
            visible = [n for n, s in host.specs.items() if s.tier in principal.tiers]
            known = ", ".join(sorted(visible)) or "none"
            raise HTTPException(404, f"unknown source {body.source!r}; declared sources: {known}")
        ingest = (
            spec.request("api")
            if body.ttl is None
            else IngestRequest(spec.name, spec.tier, spec.path, body.ttl, "api")
        )
    else:
        if body.tier in settings.tiers and body.tier not in principal.tiers:
            raise HTTPException(
                403,
                f"this key may not write into tier {body.tier!r} "
                f"(it may read and write: {', '.join(principal.tiers) or 'no tier'})",
            )
        location = _allowed_location(body, settings)
        name = body.source or default_source_name(location)
        ttl = body.ttl or settings.default_ttl
        ingest = IngestRequest(name, body.tier or "", location, ttl, "api")
    try:
        job = host.enqueue(ingest)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return job.to_dict(with_files=False)


@router.get("")
def read_jobs(
    services: ServicesDep, principal: PrincipalDep, limit: int = 20
) -> list[dict[str, Any]]:
    """Recent jobs of the tiers the key may read, newest first."""
    limit = max(1, min(limit, 500))
    recent = services.jobs.recent(limit=limit, tiers=principal.tiers)
    return [j.to_dict(with_files=False) for j in recent]


@router.get("/{job_id}")
def read_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    """One job: status, progress, counts and per-file results with reasons."""
    job = services.jobs.get(job_id)
    if job is None or job.tier not in principal.tiers:  # another tier's job: as if none
        raise HTTPException(404, f"no ingestion job {job_id!r}")
    return job.to_dict()
