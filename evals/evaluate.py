"""`ragops eval DATASET`: run a dataset through the service, score retrieval, answers and
refusals (and, with an LLM endpoint, ragas' judged metrics), optionally fit the confidence
model on it. The CLI parses and prints; this is the work."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.calibrate import fit
from evals.metrics import summarize
from evals.ragas_metrics import reference_metrics
from evals.runner import chunk_texts, run_dataset
from service.container import Services


@dataclass(frozen=True)
class Outputs:
    """Where an evaluation writes besides its report: the per-question results (JSONL), the
    report (JSON) and a confidence model fitted on the dataset."""

    results: Path | None = None
    report: Path | None = None
    calibration: Path | None = None


def evaluate(
    services: Services,
    dataset: Path,
    rows: list[dict[str, Any]],
    tiers: list[str],
    outputs: Outputs = Outputs(),
    llm_metrics: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The report of `rows` (read from `dataset`) asked over `tiers`. Raises RuntimeError when
    the LLM judge of `llm_metrics` cannot be reached."""
    results = run_dataset(services.asker, services.store, rows, tiers, progress=progress)
    by_id = {r["id"]: r for r in rows}
    report: dict[str, Any] = {
        "dataset": str(dataset),
        **summarize(results, by_id),
        "ragas": reference_metrics(results, by_id, services.store, tiers),
    }
    if llm_metrics:
        from evals.llm_metrics import llm_metrics as judged_metrics

        contexts = {
            r["id"]: list(
                chunk_texts(services.store, tiers, [c["chunk_id"] for c in r["citations"]]).values()
            )
            for r in results
            if not r["refused"]
        }
        provider = services.settings.llm_providers[0]
        report["llm_metrics"] = judged_metrics(results, contexts, provider, services.embedder)
    if outputs.calibration is not None:
        model = fit([(dataset.stem, results, by_id)])
        model.save(outputs.calibration)
        report["calibration"] = {
            "file": str(outputs.calibration),
            "threshold": model.threshold,
            **model.fitted_on,
        }
    if outputs.results:
        outputs.results.parent.mkdir(parents=True, exist_ok=True)
        outputs.results.write_text("".join(json.dumps(r) + "\n" for r in results))
    if outputs.report:
        outputs.report.parent.mkdir(parents=True, exist_ok=True)
        outputs.report.write_text(json.dumps(report, indent=2) + "\n")
    return report
