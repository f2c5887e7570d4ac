"""Ingestion throughput next to the embedding model's raw encode() throughput, same run.

    python -m bench.ingest [--docs 800] [--repeats 3]

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
from typing import Any

from evals.corpora import fitz_gov_documents, write_jsonl


def measure(docs: int, repeats: int) -> dict[str, Any]:
    """Ingest `docs` fitz-gov documents end to end, then encode() exactly the chunk texts it
    produced, `repeats` times alternating; medians."""
    from ingestion.runner import IngestRequest
    from service.container import Services
    from service.ingest import make_ingestor

    rows = list(itertools.islice(fitz_gov_documents(), docs))
    kb = sum(len(r["text"].encode("utf-8")) for r in rows) / 1024
    ingest_s: list[float] = []
    encode_s: list[float] = []
    chunks = 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_jsonl(rows, Path(tmp) / "corpus.jsonl")
        for run in range(repeats):
            services = Services.scratch(Path(tmp) / f"run{run}")
            embedder = services.embedder
            embedder.embed_texts(["warm up the model"])
            ingestor = make_ingestor(services)
            start = time.perf_counter()
            job = ingestor.run(IngestRequest("bench", "internal", corpus, "30d", "bench"))
            ingest_s.append(time.perf_counter() - start)
            if job.status != "succeeded" or job.counts["failed"]:
                raise RuntimeError(f"ingestion failed: {job.to_dict()}")
            texts = [p.text for p in services.store.scroll("internal")]
            chunks = len(texts)
            start = time.perf_counter()
            embedder.embed_texts(texts)
            encode_s.append(time.perf_counter() - start)
            services.close()
    ing, enc = statistics.median(ingest_s), statistics.median(encode_s)
    return {
        "documents": len(rows),
        "kb": round(kb, 1),
        "chunks": chunks,
        "repeats": repeats,
        "ingest": {"kb_s": round(kb / ing, 2), "chunks_s": round(chunks / ing, 2), "s": ing},
        "encode": {"kb_s": round(kb / enc, 2), "chunks_s": round(chunks / enc, 2), "s": enc},
        "ratio": round(enc / ing, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=800, help="fitz-gov documents to ingest")
    parser.add_argument("--repeats", type=int, default=3, help="runs; medians are reported")
    args = parser.parse_args()
    m = measure(args.docs, args.repeats)
    ing, enc = m["ingest"], m["encode"]
    print(f"corpus: {m['documents']} fitz-gov documents, {m['kb']:.0f} KB, {m['chunks']} chunks")
    print(
        f"ingestion (end to end): {ing['kb_s']:8.1f} KB/s  {ing['chunks_s']:8.1f} chunks/s  "
        f"({ing['s']:.2f} s)"
    )
    print(
        f"raw encode() of chunks: {enc['kb_s']:8.1f} KB/s  {enc['chunks_s']:8.1f} chunks/s  "
        f"({enc['s']:.2f} s)"
    )
    print(
        f"ratio ingest/encode:    {m['ratio']:.2f}   (median of {args.repeats} runs; goal >= 0.5)"
    )
    print(f"command: python -m bench.ingest --docs {args.docs} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
