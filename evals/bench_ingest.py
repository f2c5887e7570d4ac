"""Ingestion throughput next to the embedding model's raw encode() throughput, same run.

    python -m evals.bench_ingest [--docs 800] [--repeats 3]

Ingestion = load JSONL -> chunk by meaning -> embed -> BM25 -> write to the embedded store and
ops DB, end to end through `Ingestor.run`. Raw = `model.encode()` over exactly the chunk texts
that ingestion produced. The ratio (ingest chunks/s ÷ raw chunks/s) is the figure of merit:
1.0 would mean ingestion costs no more than embedding its output once.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from evals.corpora import fitz_gov_documents, write_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=800, help="fitz-gov documents to ingest")
    parser.add_argument("--repeats", type=int, default=3, help="runs; medians are reported")
    args = parser.parse_args()

    from ingestion.runner import IngestRequest
    from ingestion.service import make_ingestor
    from rag.pipeline import Services
    from rag.settings import Settings

    rows = list(itertools.islice(fitz_gov_documents(), args.docs))
    kb = sum(len(r["text"].encode("utf-8")) for r in rows) / 1024
    ingest_s: list[float] = []
    encode_s: list[float] = []
    chunks = 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_jsonl(rows, Path(tmp) / "corpus.jsonl")
        for run in range(args.repeats):
            services = Services(Settings(data_dir=Path(tmp) / f"data{run}"))
            embedder = services.embedder
            embedder.embed_texts(["warm up the model"])
            ingestor = make_ingestor(services)
            start = time.perf_counter()
            job = ingestor.run(IngestRequest("bench", "internal", corpus, "30d", "bench"))
            ingest_s.append(time.perf_counter() - start)
            assert job.status == "succeeded" and job.counts["failed"] == 0, job.to_dict()
            texts = [p.text for p in services.store.scroll("internal")]
            chunks = len(texts)
            start = time.perf_counter()
            embedder.embed_texts(texts)
            encode_s.append(time.perf_counter() - start)
            services.close()

    ing, enc = statistics.median(ingest_s), statistics.median(encode_s)
    print(f"corpus: {len(rows)} fitz-gov documents, {kb:.0f} KB, {chunks} chunks")
    print(
        f"ingestion (end to end): {kb / ing:8.1f} KB/s  {chunks / ing:8.1f} chunks/s  ({ing:.2f} s)"
    )
    print(
        f"raw encode() of chunks: {kb / enc:8.1f} KB/s  {chunks / enc:8.1f} chunks/s  ({enc:.2f} s)"
    )
    print(f"ratio ingest/encode:    {enc / ing:.2f}   (median of {args.repeats} runs; goal >= 0.5)")
    print(f"command: python -m evals.bench_ingest --docs {args.docs} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
