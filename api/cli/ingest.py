"""Ingestion: `ragops ingest`, `jobs`, `sources`, and the `worker` that runs queued jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from api.cli.client import hand_to_server
from api.cli.common import emit, err, fail, main, out, process, session


@main.command()
@click.argument("path", required=False)
@click.option("--source", help="Source name (default: the folder, file or repository name).")
@click.option("--tier", help="Trust tier (default: the least trusted configured tier).")
@click.option("--ttl", help="Time to live of the chunks, e.g. 30d, 12h (default RAG_DEFAULT_TTL).")
@click.option("--ref", help="Git sources: the branch, tag or commit to read (default HEAD).")
@click.option("--path", "subpath", help="Git sources: only files under this folder.")
@click.option("--link", help="Git sources: citation link, e.g. https://host/r/blob/{commit}/{path}")
@click.option("--max-pages", type=click.IntRange(1, 100_000), help="Web sources (default 200).")
@click.option("--max-depth", type=click.IntRange(0, 50), help="Web sources: links (default 3).")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def ingest(
    path: str | None,
    source: str | None,
    tier: str | None,
    ttl: str | None,
    ref: str | None,
    subpath: str | None,
    link: str | None,
    max_pages: int | None,
    max_depth: int | None,
    as_json: bool,
) -> None:
    """Ingest PATH (a folder, a .jsonl corpus, a web site or sitemap: https://…, or a git
    repository: git+https://… or git+file://…); without PATH, every declared source."""
    from ingestion.runner import IngestRequest, default_source_name
    from rag.durations import parse_duration
    from rag.retrieval.store import StoreError, StoreLockedError
    from service.ingest import fail_interrupted_jobs, load_manifest, make_ingestor

    settings = process().settings
    if tier is not None and tier not in settings.tiers:
        raise click.BadParameter(
            f"unknown tier {tier!r}; allowed: {', '.join(settings.tiers)}", param_hint="--tier"
        )
    if ttl is not None:
        try:
            parse_duration(ttl)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    if path is None:
        if source or tier or ttl or ref or subpath or link or max_pages or max_depth:
            raise click.UsageError("--source/--tier/--ttl and the source options need a PATH")
        try:
            requests = [
                s.request("cli") for s in load_manifest(settings.sources_file, settings.tiers)
            ]
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"cannot read the source manifest: {exc}") from exc
    else:
        location = _location(path, ref, subpath, link, max_pages, max_depth)
        requests = [
            IngestRequest(
                source or default_source_name(location),
                tier or settings.tiers[-1],
                location,
                ttl or settings.default_ttl,
            )
        ]

    services = process().services
    try:
        ingestor = make_ingestor(services)  # opens the store: this process now holds it
        fail_interrupted_jobs(services)
        for request in requests:
            try:
                ingestor.validate(request)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from exc
        results = [_run_with_progress(ingestor, r).to_dict() for r in requests]
    except StoreLockedError as exc:
        # The embedded store is held by a running server: give it the jobs instead.
        services.close()
        results = [hand_to_server(settings, r, str(exc)) for r in requests]
    except StoreError as exc:
        fail(str(exc))
        return
    finally:
        services.close()
    if as_json:
        emit(True, results[0] if len(results) == 1 else results)
    else:
        for job in results:
            _print_job(job)
    if any(job["status"] == "failed" for job in results):
        sys.exit(1)


def _location(
    path: str,
    ref: str | None,
    subpath: str | None,
    link: str | None,
    max_pages: int | None,
    max_depth: int | None,
) -> Any:
    """PATH and its options as an ingestion request's path: a git repository, a web site or
    a folder (or .jsonl file) that exists."""
    from ingestion.git import GitRepo, is_git_location
    from ingestion.web import WebSite, is_web_location

    try:
        if is_web_location(path):
            return WebSite(path, max_pages or 200, 3 if max_depth is None else max_depth)
        if is_git_location(path):
            return GitRepo(path, ref or "HEAD", subpath or "", link)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from exc
    if ref or subpath or link or max_pages or max_depth:
        raise click.UsageError("--ref/--path/--link are for git sources, --max-* for web ones")
    if not Path(path).exists():
        raise click.BadParameter(f"{path!r} does not exist", param_hint="PATH")
    return Path(path)


def _run_with_progress(ingestor: Any, request: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{request.source}[/bold] ({request.tier})"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name[-50:])

        return ingestor.run(request, progress=progress)


def _print_job(job: dict[str, Any]) -> None:
    colour = "green" if job["status"] == "succeeded" else "red"
    out.print(
        f"[bold]{job['source']}[/bold] -> tier [bold]{job['tier']}[/bold]: "
        f"[{colour}]{job['status']}[/{colour}]  (job {job['job_id']})"
    )
    keys = ("added", "updated", "unchanged", "deleted", "failed")
    table = Table(*keys, "chunks written", show_header=True, header_style="bold")
    table.add_row(*(str(job["counts"][k]) for k in keys), str(job["chunks_written"]))
    out.print(table)
    for f in job.get("files", []):
        if f["status"] == "failed":
            out.print(f"  [red]failed[/red] {f['path']}: {f['reason']}")
    if job["error"]:
        out.print(f"  [red]job error:[/red] {job['error']}")


@main.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--source", help="Only jobs of this source.")
@click.option("--json", "as_json", is_flag=True)
def jobs(limit: int, source: str | None, as_json: bool) -> None:
    """List recent ingestion jobs."""
    with session() as services:
        records = services.jobs.recent(limit=limit, source=source)
    table = Table(
        "job",
        "source",
        "tier",
        "status",
        "started",
        "added",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "chunks",
    )
    for j in records:
        table.add_row(
            j.job_id[:8],
            j.source,
            j.tier,
            j.status,
            j.started_at.strftime("%Y-%m-%d %H:%M") if j.started_at else "-",
            *(str(j.counts[k]) for k in ("added", "updated", "unchanged", "deleted", "failed")),
            str(j.chunks_written),
        )
    emit(as_json, [j.to_dict(with_files=False) for j in records], table)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def sources(as_json: bool) -> None:
    """List sources: tier, documents, chunks, last refresh."""
    from rag.types import iso

    with session() as services:
        counts = services.catalog.document_counts()
        states = services.catalog.sources()
    rows: list[dict[str, Any]] = []
    for s in states:
        docs, chunks = counts.get(s.name, (0, 0))
        rows.append(
            {
                "name": s.name,
                "tier": s.tier,
                "path": s.path,
                "ttl": s.ttl,
                "schedule": s.schedule,
                "documents": docs,
                "chunks": chunks,
                "last_success_at": iso(s.last_success_at) if s.last_success_at else None,
                "last_failure_at": iso(s.last_failure_at) if s.last_failure_at else None,
                "last_error": s.last_error,
            }
        )
    table = Table("source", "tier", "docs", "chunks", "ttl", "last refresh", "path")
    for r in rows:
        table.add_row(
            r["name"],
            r["tier"],
            str(r["documents"]),
            str(r["chunks"]),
            r["ttl"],
            r["last_success_at"] or "never",
            r["path"],
        )
    emit(as_json, rows, table)


@main.command()
@click.option("--no-schedule", is_flag=True, help="Only run queued jobs; do not schedule.")
def worker(no_schedule: bool) -> None:
    """Run the scheduler and an ingestion worker (for a Qdrant server backend)."""
    import signal
    import threading

    from rag.retrieval.store import StoreError
    from service.host import IngestionHost

    services = process().services
    host = IngestionHost(services)
    try:
        host.start(schedule=not no_schedule)
    except StoreError as exc:
        fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err.print(f"worker {host.worker_id} running; Ctrl-C to stop")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
        services.close()
