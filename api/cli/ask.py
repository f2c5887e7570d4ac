"""`ragops ask` and `ragops feedback`."""

from __future__ import annotations

import click

from api.cli.client import server_call
from api.cli.common import emit, main, out, process, session


@main.command()
@click.argument("question")
@click.option("--tier", "tiers", multiple=True, help="Only these tiers (repeatable).")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--json", "as_json", is_flag=True)
def ask(question: str, tiers: tuple[str, ...], top_k: int, as_json: bool) -> None:
    """Answer QUESTION with citations, or refuse with a reason."""
    from rag.ops.auth import TierError, resolve_tiers
    from rag.retrieval.store import StoreLockedError
    from rag.types import AskResult

    settings = process().settings
    if not question.strip():
        raise click.BadParameter("the question must not be empty", param_hint="QUESTION")
    try:
        chosen = resolve_tiers(settings.tiers, settings.tiers, list(tiers) or None)
    except TierError as exc:
        raise click.BadParameter(str(exc), param_hint="--tier") from exc
    try:
        with session(server_fallback=True) as services:
            result = services.asker.ask(question.strip(), chosen, top_k=top_k)
    except StoreLockedError as exc:
        body = {"question": question.strip(), "tiers": chosen, "top_k": top_k}
        result = AskResult.model_validate(
            server_call(settings, "POST", "/ask", str(exc), json=body)
        )
    if as_json:
        emit(True, result.model_dump(mode="json"))
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
    from rag.ops.feedback import FeedbackError, Rating

    services = process().services
    try:
        stored = services.feedback.rate(
            Rating(trace_id, rating, comment, correct_doc_id, key_name="cli"), None
        )
    except FeedbackError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        services.close()
    emit(as_json, stored.to_dict(), f"rated {trace_id}: {rating}")
