"""`ragops report freshness|hits`: the operator reports, as tables or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from api.cli.client import server_call
from api.cli.common import emit, main, out, process, session

if TYPE_CHECKING:
    from rag.ops.report_models import FreshnessReport, HitsReport


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

    from rag.ops.report_models import FreshnessReport, HitsReport
    from rag.ops.reports import freshness_report, hits_report
    from rag.retrieval.store import StoreLockedError
    from rag.types import utc_now

    now = utc_now()
    data: FreshnessReport | HitsReport
    try:
        with session(server_fallback=True) as services:
            if kind == "freshness":
                data = freshness_report(services.catalog, services.jobs, services.store, now)
            else:
                since = now - timedelta(days=days)
                data = hits_report(services.engine, services.catalog, since, now)
    except StoreLockedError as exc:
        params = {"days": days} if kind == "hits" else {}
        body = server_call(process().settings, "GET", f"/reports/{kind}", str(exc), params=params)
        model = FreshnessReport if kind == "freshness" else HitsReport
        data = model.model_validate(body)
    if as_json:
        emit(True, data.model_dump(mode="json"))
    elif isinstance(data, FreshnessReport):
        _print_freshness(data)
    else:
        _print_hits(data, days)


def _print_freshness(data: FreshnessReport) -> None:
    table = Table(
        "source",
        "tier",
        "kind",
        "docs",
        "chunks",
        "newest",
        "last refresh",
        "read/not read/failed",
        "next run",
        "status",
        "expiring 24h",
        "expired unswept",
        "flagged",
        "low OCR",
        title="Freshness",
    )
    for s in data.sources:
        table.add_row(
            s.source,
            s.tier,
            s.kind + (f" {s.commit[:10]}" if s.commit else ""),
            str(s.documents),
            str(s.chunks),
            (s.newest_source_date or "-")[:10],
            (s.last_success_at or "never")[:16],
            f"{r.read}/{r.not_read}/{r.failed}" if (r := s.last_read) else "-",
            (s.next_run_at or "-")[:16],
            "[red]overdue[/red]" if s.overdue else "[green]ok[/green]",
            str(s.chunks_expiring_24h),
            str(s.chunks_expired_unswept),
            f"[red]{s.chunks_flagged}[/red]" if s.chunks_flagged else "0",
            f"[yellow]{s.chunks_ocr_flagged}[/yellow]" if s.chunks_ocr_flagged else "0",
        )
    out.print(table)
    for s in data.sources:
        for f in s.last_failures:
            out.print(f"[red]failed[/red] {s.source}/{f.path}: {f.reason}")
        for chunk in s.flagged:
            out.print(f"[red]flagged[/red] {s.source}/{chunk.doc_id}: {chunk.reason}")
        for page in s.ocr_flagged:
            confidence = "unknown" if page.confidence is None else f"{page.confidence:.2f}"
            out.print(
                f"[yellow]low OCR confidence[/yellow] {s.source}/{page.doc_id} {page.page}: "
                + confidence
            )
        if s.last_error:
            out.print(f"[red]{s.source} last error:[/red] {s.last_error}")


def _print_hits(data: HitsReport, days: int) -> None:
    rate = data.answer_rate
    out.print(
        f"[bold]{data.asks}[/bold] asks in {days} days: {data.answered} answered, "
        f"{data.refused} refused" + (f" (answer rate {rate:.0%})" if rate is not None else "")
    )
    if data.refusals_by_reason:
        out.print("refusals: " + ", ".join(f"{k} {v}" for k, v in data.refusals_by_reason.items()))
    tiers = Table("tier", "asks", "hits", "hit rate", title="Per tier")
    for t in data.tiers:
        tiers.add_row(
            t.tier,
            str(t.asks),
            str(t.hits),
            f"{t.hit_rate:.0%}" if t.hit_rate is not None else "-",
        )
    out.print(tiers)
    gaps = Table("question", "asked", "reason", title="Knowledge gaps")
    for g in data.knowledge_gaps:
        gaps.add_row(g.question, str(g.asked), g.refusal_reason or "")
    out.print(gaps)
    ratings = data.ratings
    if ratings.total:
        out.print(
            "ratings: " + ", ".join(f"{k} {v}" for k, v in ratings.by_rating.model_dump().items())
        )
        for m in ratings.should_answer:
            out.print(f"[yellow]refused, rated should answer[/yellow] {m.question}")
    generators = Table(
        "kind",
        "provider",
        "prompt",
        "asks",
        "fallbacks",
        "tokens in/out",
        "cost",
        title=f"Answer generators (cost {data.cost_total:.4f})",
    )
    for gen in data.generators:
        generators.add_row(
            gen.kind,
            gen.provider or "-",
            gen.prompt_version or "-",
            str(gen.asks),
            str(gen.fallbacks),
            f"{gen.tokens_in}/{gen.tokens_out}",
            f"{gen.cost:.4f}",
        )
    out.print(generators)
    latency = Table("stage", "p50 ms", "p95 ms", title="Latency per stage")
    for stage, v in data.latency_ms.items():
        latency.add_row(stage, _ms(v.p50), _ms(v.p95))
    out.print(latency)
    out.print(f"never retrieved: {data.never_retrieved.count} documents")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
