"""The golden set over the sample corpora (`evals/datasets/golden.jsonl`), written by reading them.

    python -m evals.golden                  # ingest the samples into a temp dir, print the report

Kinds of question: facts and paraphrases of them (answered, citing the right document);
questions the samples never answer and near misses sharing most words with a real answer;
questions whose only evidence is in a tier the asker's key may not read (`tiers`); and questions
whose only evidence has expired (`golden_expired/`, ingested with a one-second TTL and left
unswept, so the query-time filter is what keeps it out). Every row must behave
(`evals.metrics.behaved`); the figures join the CI gate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

DATASETS = Path(__file__).with_name("datasets")
GOLDEN = DATASETS / "golden.jsonl"
EXPIRING = DATASETS / "golden_expired"
SOURCES = Path(__file__).resolve().parent.parent / "corpora" / "sources.toml"
EXPIRING_TTL_S = 1


def run_golden(workdir: Path, **settings: Any) -> dict[str, Any]:
    """Ingest the declared samples plus the expiring source into `workdir`, ask every golden
    question with its tiers, and summarise. `settings` override Settings (tests degrade it)."""
    from evals.metrics import summarize
    from evals.ragas_metrics import reference_metrics
    from evals.runner import read_dataset, run_dataset
    from ingestion.runner import IngestRequest
    from rag.retrieval.store import ChunkFilter
    from rag.types import utc_now
    from service.container import Services
    from service.ingest import load_manifest, make_ingestor

    services = Services.scratch(workdir, sources_file=SOURCES, **settings)
    config = services.settings
    try:
        ingestor = make_ingestor(services)
        requests = [s.request("golden") for s in load_manifest(SOURCES, config.tiers)]
        requests.append(IngestRequest("golden-expired", "internal", EXPIRING, f"{EXPIRING_TTL_S}s"))
        for request in requests:
            job = ingestor.run(request)
            if job.status != "succeeded" or job.counts["failed"]:
                raise RuntimeError(f"ingesting {request.source} failed: {job.to_dict()}")
        time.sleep(EXPIRING_TTL_S + 0.5)
        expired = services.store.count("internal", ChunkFilter(expired_at=utc_now()))
        if not expired:
            raise RuntimeError("the expiring evidence is not in the store: nothing to test")
        rows = read_dataset(GOLDEN)
        results = run_dataset(services.asker, services.store, rows, config.tiers)
        by_id = {r["id"]: r for r in rows}
        report = summarize(results, by_id)
        report["ragas"] = reference_metrics(results, by_id, services.store, config.tiers)
        report["expired_chunks_in_store"] = expired
        return report
    finally:
        services.close()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_golden(Path(tmp))
    print(json.dumps(report, indent=2))
    print("command: python -m evals.golden")


if __name__ == "__main__":
    main()
