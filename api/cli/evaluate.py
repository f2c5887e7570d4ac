"""`ragops eval`: run a dataset through the service (`evals.runner.evaluate`), or write one from
ratings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from api.cli.common import emit, err, fail, main, process, session


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

    from rag.ops.feedback import dataset_row
    from rag.types import utc_now

    services = process().services
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
    emit(
        as_json,
        data,
        f"{len(rows)} rows written to {out_path} from {len(rated)} ratings"
        + (
            f" ({skipped} skipped: 'wrong' or 'should_answer' without --correct-doc-id)"
            if skipped
            else ""
        ),
    )


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
    from rich.progress import Progress

    from evals.evaluate import Outputs, evaluate
    from evals.runner import read_dataset
    from rag.ops.auth import TierError, resolve_tiers

    settings = process().settings
    try:
        rows = read_dataset(dataset)
        chosen = resolve_tiers(settings.tiers, settings.tiers, list(tiers) or None)
    except (ValueError, TierError) as exc:
        raise click.UsageError(str(exc)) from exc
    if with_llm_metrics and not settings.llm_providers:
        raise click.UsageError("--llm-metrics needs an LLM endpoint: set RAG_LLM_PROVIDERS")
    outputs = Outputs(results=out_path, report=report_path, calibration=calibrate_to)
    with session() as services, Progress(console=err, transient=True) as bar:
        task = bar.add_task("asking", total=len(rows))
        try:
            report = evaluate(
                services,
                dataset,
                rows,
                chosen,
                outputs,
                llm_metrics=with_llm_metrics,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        except RuntimeError as exc:
            fail(str(exc))
    emit(as_json, report, json.dumps(report, indent=2))
