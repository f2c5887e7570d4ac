"""The CI quality gate: small fixed dev-split sets through the real pipeline, vs a baseline.

    python -m evals.gate                 # run and compare with evals/baseline.json
    python -m evals.gate --write-baseline

Sets: the first 200 HaluEval QA dev rows and a fixed, category-balanced subset of the
fitz-gov dev cases (with only the documents they name); the answer verifier on the same
HaluEval rows (right vs hallucinated answers against their passages); the golden set over the
sample corpora (`evals.golden`: facts, paraphrases, unanswerable questions and near misses,
forbidden tiers, expired evidence); the product-register set (`evals.register`: policies,
timetables and FAQs of the kind users feed the product). A metric fails the gate
when it drops below its baseline by more than the tolerance; latency is reported, never gated
(noisy).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from evals.datasets import GATE_FITZ_CASES, GATE_HALUEVAL_ROWS, build_fitzgov, build_halueval

BASELINE = Path(__file__).with_name("baseline.json")
TOLERANCE = 0.02
GATED = {
    "halueval": [
        "retrieval.recall@5",
        "retrieval.mrr@10",
        "answers.answer_rate",
        "answers.citation_validity",
        "answers.contains_reference",
    ],
    "fitzgov": [
        "refusal.recall",
        "answers.answer_rate",
        "answers.answered_citing_relevant",
        "answers.citation_validity",
    ],
    # The answer verifier of generated answers (evals.verifier) on the same 200 rows.
    # Its sample-corpus claims are prose of the product's own kind, where the model alone fails.
    "verifier": [
        "hallucinated_rejected",
        "right_accepted",
        "sample_claims.supported_accepted",
        "sample_claims.unsupported_rejected",
    ],
    "golden": [
        "behaviour.behaved",
        "retrieval.mrr@10",
        "answers.answer_rate",
        "answers.answered_citing_relevant",
        "answers.citation_validity",
        "refusal.recall",
        "ragas.non_llm_context_recall",
    ],
    # The product-register set (evals.register): policies, timetables and FAQs, both splits.
    "register": [
        f"{split}.{kind}.rate"
        for split in ("dev", "test")
        for kind in ("direct", "paraphrase", "near_miss", "never")
    ]
    + ["quotes_valid"],
}


def _get(report: dict[str, Any], dotted: str) -> float:
    value: Any = report
    for part in dotted.split("."):
        value = value[part]
    return float(value or 0.0)


def run_gate(workdir: Path) -> dict[str, dict[str, Any]]:
    """Ingest both sets into one fresh data dir and evaluate each; returns the reports."""
    from evals.golden import run_golden
    from evals.metrics import summarize
    from evals.register import run_register
    from evals.runner import read_dataset, run_dataset
    from evals.verifier import sample_claim_figures, split_rows, verifier_figures
    from ingestion.runner import IngestRequest
    from rag.answering.verify import shared_verifier
    from service.container import Services
    from service.ingest import make_ingestor

    sets = {
        "halueval": build_halueval(workdir / "halueval", GATE_HALUEVAL_ROWS),
        "fitzgov": build_fitzgov(workdir / "fitzgov", GATE_FITZ_CASES),
    }
    services = Services.scratch(workdir)
    try:
        ingestor = make_ingestor(services)
        for name, (corpus, _) in sets.items():
            job = ingestor.run(IngestRequest(name, "verified", corpus, "3650d", "gate"))
            if job.status != "succeeded" or job.counts["failed"]:
                raise RuntimeError(f"ingesting {name} failed: {job.to_dict()}")
        reports = {}
        for name, (_, dataset) in sets.items():
            rows = read_dataset(dataset)
            results = run_dataset(services.asker, services.store, rows, ["verified"])
            reports[name] = summarize(results, {r["id"]: r for r in rows})
        verifier = shared_verifier()
        reports["verifier"] = verifier_figures(split_rows("gate"), verifier)
        reports["verifier"]["sample_claims"] = sample_claim_figures(verifier)
    finally:
        services.close()
    reports["golden"] = run_golden(workdir / "golden")
    reports["register"] = run_register(workdir / "register")[0]
    return reports


def regressions(reports: dict[str, dict[str, Any]], baseline: dict[str, Any]) -> list[str]:
    """One message per gated metric of the given reports that fell below its baseline."""
    failures = []
    for name, metrics in GATED.items():
        if name not in reports:
            continue
        for metric in metrics:
            now, then = _get(reports[name], metric), float(baseline[name][metric])
            if now < then - TOLERANCE:
                failures.append(f"{name} {metric}: {now:.4f} < baseline {then:.4f} - {TOLERANCE}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-baseline", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reports = run_gate(Path(tmp))
    print(json.dumps(reports, indent=2))
    if args.write_baseline:
        baseline = {n: {m: _get(reports[n], m) for m in ms} for n, ms in GATED.items()}
        BASELINE.write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"baseline written to {BASELINE}")
        return
    failures = regressions(reports, json.loads(BASELINE.read_text()))
    print("\n".join(failures) if failures else "gate: no regression against the baseline")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
