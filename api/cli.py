"""`ragops` command line. Every command takes --json and then prints one JSON document.

Exit codes: 0 the command ran (an ingestion job with per-file failures still ran), 1 a job or
operation failed, 2 bad arguments.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from rag.settings import Settings

out = Console()
err = Console(stderr=True)


def _emit(as_json: bool, data: Any, human: Any = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif human is not None:
        out.print(human)


def _services() -> Any:
    from rag.pipeline import Services

    return Services(Settings())


@contextmanager
def _session(server_fallback: bool = False) -> Iterator[Any]:
    """Services for one command: a store error ends it with a plain message, never a trace.
    With `server_fallback`, a store held by a running server is re-raised for the caller to
    ask that server instead."""
    from rag.store import StoreError, StoreLockedError

    services = _services()
    try:
        yield services
    except StoreLockedError as exc:
        if server_fallback:
            raise
        _fail(str(exc))
    except StoreError as exc:
        _fail(str(exc))
    finally:
        services.close()


def _server_call(
    settings: Settings, method: str, path: str, locked: str, expect: int = 200, **kwargs: Any
) -> Any:
    """Ask the `ragops serve` that holds the embedded store to do the work over HTTP."""
    import httpx

    base = f"http://{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.request(method, base + path, headers=headers, timeout=120, **kwargs)
    except httpx.HTTPError:
        _fail(f"{locked} (no server answered at {base} to take the work)")
    if response.status_code != expect:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        _fail(f"the server at {base} holds the store and answered {response.status_code}: {detail}")
    return response.json()


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    sys.exit(code)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """ragops: answers with citations from trusted sources, or an honest refusal."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--source", help="Source name (default: the folder or file name).")
@click.option("--tier", help="Trust tier (default: the least trusted configured tier).")
@click.option("--ttl", help="Time to live of the chunks, e.g. 30d, 12h (default RAG_DEFAULT_TTL).")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def ingest(
    path: Path | None, source: str | None, tier: str | None, ttl: str | None, as_json: bool
) -> None:
    """Ingest PATH (a folder or a .jsonl corpus); without PATH, every declared source."""
    from ingestion.runner import IngestRequest
    from ingestion.service import fail_interrupted_jobs, load_manifest, make_ingestor
    from rag.durations import parse_duration
    from rag.store import StoreError, StoreLockedError

    settings = Settings()
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
        if source or tier or ttl:
            raise click.UsageError("--source/--tier/--ttl need a PATH")
        try:
            requests = [
                s.request("cli") for s in load_manifest(settings.sources_file, settings.tiers)
            ]
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"cannot read the source manifest: {exc}") from exc
    else:
        if not path.exists():
            raise click.BadParameter(f"{str(path)!r} does not exist", param_hint="PATH")
        name = source or (path.stem if path.is_file() else path.resolve().name)
        requests = [
            IngestRequest(name, tier or settings.tiers[-1], path, ttl or settings.default_ttl)
        ]

    services = _services()
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
        results = [_hand_to_server(settings, r, str(exc)) for r in requests]
    except StoreError as exc:
        _fail(str(exc))
        return
    finally:
        services.close()
    if as_json:
        _emit(True, results[0] if len(results) == 1 else results)
    else:
        for job in results:
            _print_job(job)
    if any(job["status"] == "failed" for job in results):
        sys.exit(1)


def _hand_to_server(settings: Settings, request: Any, locked: str) -> dict[str, Any]:
    """Submit the job to the `ragops serve` that holds the store, and follow it to the end."""
    import time

    body = {
        "source": request.source,
        "path": str(request.path.resolve()),
        "tier": request.tier,
        "ttl": request.ttl,
    }
    job = _server_call(settings, "POST", "/ingest/jobs", locked, expect=202, json=body)
    err.print(
        f"the store is held by the server at {settings.host}:{settings.port}; "
        f"it runs job {job['job_id']}"
    )
    while job["status"] not in ("succeeded", "failed"):
        time.sleep(0.5)
        job = _server_call(settings, "GET", f"/ingest/jobs/{job['job_id']}", locked)
    return dict(job)


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
    with _session() as services:
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
    _emit(as_json, [j.to_dict(with_files=False) for j in records], table)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def sources(as_json: bool) -> None:
    """List sources: tier, documents, chunks, last refresh."""
    from rag.types import iso

    with _session() as services:
        counts = services.catalog.document_counts()
        states = services.catalog.sources()
    rows = []
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
    _emit(as_json, rows, table)


@main.command()
@click.argument("question")
@click.option("--tier", "tiers", multiple=True, help="Only these tiers (repeatable).")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--json", "as_json", is_flag=True)
def ask(question: str, tiers: tuple[str, ...], top_k: int, as_json: bool) -> None:
    """Answer QUESTION with citations, or refuse with a reason."""
    from rag.auth import TierError, resolve_tiers
    from rag.store import StoreLockedError
    from rag.types import AskResult

    settings = Settings()
    if not question.strip():
        raise click.BadParameter("the question must not be empty", param_hint="QUESTION")
    try:
        chosen = resolve_tiers(settings.tiers, settings.tiers, list(tiers) or None)
    except TierError as exc:
        raise click.BadParameter(str(exc), param_hint="--tier") from exc
    try:
        with _session(server_fallback=True) as services:
            result = services.asker.ask(question.strip(), chosen, top_k=top_k)
    except StoreLockedError as exc:
        body = {"question": question.strip(), "tiers": chosen, "top_k": top_k}
        result = AskResult.model_validate(
            _server_call(settings, "POST", "/ask", str(exc), json=body)
        )
    if as_json:
        _emit(True, result.model_dump(mode="json"))
        return
    if result.refused:
        out.print(f"[yellow]Refused[/yellow] ({result.refusal_reason}): {result.refusal_message}")
        if result.refusal_detail:
            out.print(f"  {result.refusal_detail}")
        if result.closest_sources:
            out.print("Closest sources (not an answer):")
            for s in result.closest_sources:
                out.print(f"  - {s.title} [{s.tier}, {s.source}] {s.doc_id}")
    else:
        out.print(result.answer)
        out.print()
        for c in result.citations:
            out.print(
                f"[{c.marker}] {c.title} — {c.doc_id} "
                f"([bold]{c.tier}[/bold], source {c.source}, {c.age_days} days old)"
            )
    g = result.generator
    made_by = g.kind if g.provider is None else f"{g.kind} via {g.provider} ({g.prompt_version})"
    if g.fallback_reason:
        made_by += f"; fell back: {g.fallback_reason}"
    out.print(f"[dim]confidence {result.confidence}  {made_by}  trace {result.trace_id}[/dim]")


@main.group()
def keys() -> None:
    """API keys (each scoped to trust tiers)."""


@keys.command("create")
@click.option("--tiers", required=True, help="Comma-separated tiers this key may read.")
@click.option("--name", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def keys_create(tiers: str, name: str, as_json: bool) -> None:
    """Create a key; it is shown once and stored hashed."""
    settings = Settings()
    chosen = [t.strip() for t in tiers.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in settings.tiers]
    if not chosen or unknown:
        raise click.BadParameter(
            f"unknown tier(s) {', '.join(unknown) or '(none given)'}; "
            f"allowed: {', '.join(settings.tiers)}",
            param_hint="--tiers",
        )
    created = _services().keys.create(name, chosen)
    data = {"key": created.key, "name": created.name, "tiers": created.tiers}
    _emit(as_json, data, f"key for {name} ({', '.join(chosen)}), shown once:\n{created.key}")


class _DatasetGroup(click.Group):
    """`ragops eval DATASET ...` runs a dataset (the `run` command, named or not);
    `ragops eval export ...` writes one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group("eval", cls=_DatasetGroup)
def eval_group() -> None:
    """Evaluate the service on a dataset (`ragops eval DATASET`), or write one from ratings
    (`ragops eval export --from-feedback OUT.jsonl`)."""


@eval_group.command("export")
@click.argument("out_path", metavar="OUT.jsonl", type=click.Path(path_type=Path))
@click.option(
    "--from-feedback",
    "from_feedback",
    is_flag=True,
    required=True,
    help="Rated asks (`ragops feedback`, `POST /feedback`) as dataset rows.",
)
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@click.option(
    "--include-comments", is_flag=True, help="Keep the raters' comments (they may hold PII)."
)
@click.option("--json", "as_json", is_flag=True)
def eval_export(
    out_path: Path, from_feedback: bool, days: int, include_comments: bool, as_json: bool
) -> None:
    """Write rated asks of the last DAYS as an eval dataset that `ragops eval` runs."""
    from datetime import timedelta

    from rag.feedback import dataset_row
    from rag.types import utc_now

    services = _services()
    try:
        rated = list(services.feedback.rated(utc_now() - timedelta(days=days)))
    finally:
        services.close()
    rows: dict[str, dict[str, Any]] = {}
    skipped = 0
    for r in rated:  # oldest first: an ask rated twice keeps its latest rating
        row = dataset_row(r, include_comments)
        if row is None:
            skipped += 1
        else:
            rows[row["id"]] = row
    out_path.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    data = {"path": str(out_path), "rows": len(rows), "skipped": skipped, "ratings": len(rated)}
    _emit(
        as_json,
        data,
        f"{len(rows)} rows written to {out_path} from {len(rated)} ratings"
        + (
            f" ({skipped} skipped: 'wrong' or 'should_answer' without --correct-doc-id)"
            if skipped
            else ""
        ),
    )


@main.command()
@click.argument("trace_id")
@click.option(
    "--rating",
    required=True,
    type=click.Choice(["good", "wrong", "should_refuse", "should_answer"]),
)
@click.option("--comment", help="What was wrong, in the rater's words.")
@click.option("--correct-doc-id", help="The document that holds the right answer.")
@click.option("--json", "as_json", is_flag=True)
def feedback(
    trace_id: str, rating: str, comment: str | None, correct_doc_id: str | None, as_json: bool
) -> None:
    """Rate an answer by the trace id its response carried."""
    from rag.feedback import FeedbackError, Rating

    services = _services()
    try:
        stored = services.feedback.rate(
            Rating(trace_id, rating, comment, correct_doc_id, key_name="cli"), None
        )
    except FeedbackError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        services.close()
    _emit(as_json, stored.to_dict(), f"rated {trace_id}: {rating}")


@eval_group.command("run")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", type=click.Path(path_type=Path), help="RESULTS.jsonl")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="REPORT.json")
@click.option("--tier", "tiers", multiple=True, help="Only these tiers (default: all).")
@click.option(
    "--calibrate",
    "calibrate_to",
    type=click.Path(path_type=Path),
    help="Fit the confidence model on this dataset and write it to this file.",
)
@click.option(
    "--llm-metrics",
    "with_llm_metrics",
    is_flag=True,
    help="Also score ragas faithfulness and answer relevancy, judged by the first provider of "
    "RAG_LLM_PROVIDERS.",
)
@click.option("--json", "as_json", is_flag=True)
def eval_(
    dataset: Path,
    out_path: Path | None,
    report_path: Path | None,
    tiers: tuple[str, ...],
    calibrate_to: Path | None,
    with_llm_metrics: bool,
    as_json: bool,
) -> None:
    """Run DATASET.jsonl through the real pipeline and score retrieval, answers, refusals."""
    from evals.metrics import summarize
    from evals.ragas_metrics import reference_metrics
    from evals.runner import calibrate, chunk_texts, read_dataset, run_dataset
    from rag.auth import TierError, resolve_tiers

    settings = Settings()
    try:
        rows = read_dataset(dataset)
        chosen = resolve_tiers(settings.tiers, settings.tiers, list(tiers) or None)
    except (ValueError, TierError) as exc:
        raise click.UsageError(str(exc)) from exc
    if with_llm_metrics and not settings.llm_providers:
        raise click.UsageError("--llm-metrics needs an LLM endpoint: set RAG_LLM_PROVIDERS")
    from rich.progress import Progress

    with _session() as services, Progress(console=err, transient=True) as bar:
        task = bar.add_task("asking", total=len(rows))
        results = run_dataset(
            services.asker,
            services.store,
            rows,
            chosen,
            progress=lambda done, total: bar.update(task, completed=done),
        )
        by_id = {r["id"]: r for r in rows}
        ragas = reference_metrics(results, by_id, services.store, chosen)
        judged: dict[str, Any] | None = None
        if with_llm_metrics:
            from evals.llm_metrics import llm_metrics

            contexts = {
                r["id"]: list(
                    chunk_texts(
                        services.store, chosen, [c["chunk_id"] for c in r["citations"]]
                    ).values()
                )
                for r in results
                if not r["refused"]
            }
            try:
                judged = llm_metrics(
                    results, contexts, settings.llm_providers[0], services.embedder
                )
            except RuntimeError as exc:
                _fail(str(exc))
    report: dict[str, Any] = {
        "dataset": str(dataset),
        **summarize(results, by_id),
        "ragas": ragas,
    }
    if judged is not None:
        report["llm_metrics"] = judged
    if calibrate_to is not None:
        model = calibrate(results, by_id, dataset.stem)
        model.save(calibrate_to)
        report["calibration"] = {
            "file": str(calibrate_to),
            "threshold": model.threshold,
            **model.fitted_on,
        }
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("".join(json.dumps(r) + "\n" for r in results))
    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    _emit(as_json, report, json.dumps(report, indent=2))


@main.command()
@click.argument("kind", type=click.Choice(["freshness", "hits"]))
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 365),
    help="Window for the hits report.",
)
@click.option("--json", "as_json", is_flag=True)
def report(kind: str, days: int, as_json: bool) -> None:
    """Operator reports: freshness (per source and tier) or hits (the query log)."""
    from datetime import timedelta

    from rag.reports import freshness_report, hits_report
    from rag.store import StoreLockedError
    from rag.types import utc_now

    now = utc_now()
    try:
        with _session(server_fallback=True) as services:
            if kind == "freshness":
                data = freshness_report(services.catalog, services.jobs, services.store, now)
            else:
                since = now - timedelta(days=days)
                data = hits_report(services.engine, services.catalog, since, now)
    except StoreLockedError as exc:
        params = {"days": days} if kind == "hits" else {}
        data = _server_call(Settings(), "GET", f"/reports/{kind}", str(exc), params=params)
    if as_json:
        _emit(True, data)
    elif kind == "freshness":
        _print_freshness(data)
    else:
        _print_hits(data, days)


def _print_freshness(data: dict[str, Any]) -> None:
    table = Table(
        "source",
        "tier",
        "docs",
        "chunks",
        "newest",
        "last refresh",
        "next run",
        "status",
        "expiring 24h",
        "expired unswept",
        "flagged",
        "low OCR",
        title="Freshness",
    )
    for s in data["sources"]:
        table.add_row(
            s["source"],
            s["tier"],
            str(s["documents"]),
            str(s["chunks"]),
            (s["newest_source_date"] or "-")[:10],
            (s["last_success_at"] or "never")[:16],
            (s["next_run_at"] or "-")[:16],
            "[red]overdue[/red]" if s["overdue"] else "[green]ok[/green]",
            str(s["chunks_expiring_24h"]),
            str(s["chunks_expired_unswept"]),
            f"[red]{s['chunks_flagged']}[/red]" if s["chunks_flagged"] else "0",
            f"[yellow]{s['chunks_ocr_flagged']}[/yellow]" if s["chunks_ocr_flagged"] else "0",
        )
    out.print(table)
    for s in data["sources"]:
        for f in s["last_failures"]:
            out.print(f"[red]failed[/red] {s['source']}/{f['path']}: {f['reason']}")
        for f in s["flagged"]:
            out.print(f"[red]flagged[/red] {s['source']}/{f['doc_id']}: {f['reason']}")
        for f in s["ocr_flagged"]:
            out.print(
                f"[yellow]low OCR confidence[/yellow] {s['source']}/{f['doc_id']} {f['page']}: "
                f"{f['confidence']:.2f}"
            )
        if s["last_error"]:
            out.print(f"[red]{s['source']} last error:[/red] {s['last_error']}")


def _print_hits(data: dict[str, Any], days: int) -> None:
    rate = data["answer_rate"]
    out.print(
        f"[bold]{data['asks']}[/bold] asks in {days} days: {data['answered']} answered, "
        f"{data['refused']} refused" + (f" (answer rate {rate:.0%})" if rate is not None else "")
    )
    if data["refusals_by_reason"]:
        out.print(
            "refusals: " + ", ".join(f"{k} {v}" for k, v in data["refusals_by_reason"].items())
        )
    tiers = Table("tier", "asks", "hits", "hit rate", title="Per tier")
    for t in data["tiers"]:
        tiers.add_row(
            t["tier"],
            str(t["asks"]),
            str(t["hits"]),
            f"{t['hit_rate']:.0%}" if t["hit_rate"] is not None else "-",
        )
    out.print(tiers)
    gaps = Table("question", "asked", "reason", title="Knowledge gaps")
    for g in data["knowledge_gaps"]:
        gaps.add_row(g["question"], str(g["asked"]), g["refusal_reason"] or "")
    out.print(gaps)
    ratings = data["ratings"]
    if ratings["total"]:
        out.print("ratings: " + ", ".join(f"{k} {v}" for k, v in ratings["by_rating"].items()))
        for m in ratings["should_answer"]:
            out.print(f"[yellow]refused, rated should answer[/yellow] {m['question']}")
    generators = Table(
        "kind",
        "provider",
        "prompt",
        "asks",
        "fallbacks",
        "tokens in/out",
        "cost",
        title=f"Answer generators (cost {data['cost_total']:.4f})",
    )
    for g in data["generators"]:
        generators.add_row(
            g["kind"],
            g["provider"] or "-",
            g["prompt_version"] or "-",
            str(g["asks"]),
            str(g["fallbacks"]),
            f"{g['tokens_in']}/{g['tokens_out']}",
            f"{g['cost']:.4f}",
        )
    out.print(generators)
    latency = Table("stage", "p50 ms", "p95 ms", title="Latency per stage")
    for stage, v in data["latency_ms"].items():
        latency.add_row(stage, _ms(v["p50"]), _ms(v["p95"]))
    out.print(latency)
    out.print(f"never retrieved: {data['never_retrieved']['count']} documents")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@main.command()
@click.option("--no-schedule", is_flag=True, help="Only run queued jobs; do not schedule.")
def worker(no_schedule: bool) -> None:
    """Run the scheduler and an ingestion worker (for a Qdrant server backend)."""
    import signal
    import threading

    from ingestion.host import IngestionHost
    from rag.store import StoreError

    services = _services()
    host = IngestionHost(services)
    try:
        host.start(schedule=not no_schedule)
    except StoreError as exc:
        _fail(str(exc))
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


@main.command()
@click.option("--host", default=None, help="Bind address (default RAG_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default RAG_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Start the HTTP API."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


if __name__ == "__main__":
    main()
