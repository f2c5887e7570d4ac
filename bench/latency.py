"""/ask latency (extractive path, embedded store) at 10k and 100k chunks.

    python -m bench.latency [--sizes 10000 100000] [--questions 200] [--base 2000]
                                  [--unanswerable 100]

The store is filled with real HaluEval passages: `--base` of them are embedded with the real
model, then replicated with small perturbations of their dense vectors (new ids, same BM25
vectors) up to each size, and optimised (HNSW built) as a long-running index would be. Each
question runs through `AskPipeline.ask` exactly as `/ask` does (query log included). Questions
are the first `--questions` HaluEval dev rows (their passages are in the store: answerable) and
`--unanswerable` rows after the `--base` passages (theirs are not: mostly refused, and the judge
reads every candidate it may, where an answer stops it early). Printed per set and for both
together: p50/p95 of the whole ask, of the query embedding alone and of the judge.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from evals.corpora import replicas, upsert_all
from evals.datasets import halueval_rows
from evals.metrics import percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--base", type=int, default=2000, help="passages embedded for real")
    parser.add_argument(
        "--unanswerable", type=int, default=100, help="questions whose passage is not stored"
    )
    args = parser.parse_args()

    from rag.types import ChunkPayload, content_hash, iso, utc_now
    from service.container import Services

    rows = list(halueval_rows(max(args.base + args.unanswerable, args.questions)))
    texts = [r["knowledge"] for r in rows[: args.base]]
    sets = {
        "answerable": [r["question"] for r in rows[: args.questions]],
        "unanswerable": [r["question"] for r in rows[args.base : args.base + args.unanswerable]],
    }
    rng = np.random.default_rng(0)
    print(
        f"command: python -m bench.latency --sizes {' '.join(map(str, args.sizes))} "
        f"--questions {args.questions} --base {args.base} --unanswerable {args.unanswerable}"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            services = Services.scratch(Path(tmp))
            embedder, store, bm25 = services.embedder, services.store, services.bm25
            base_vecs = embedder.embed_texts(texts)
            lengths = [bm25.document_length(t) for t in texts]
            avgdl = sum(lengths) / len(lengths)
            sparse = [bm25.encode_document(t, avgdl) for t in texts]
            now, later = utc_now(), utc_now().replace(year=utc_now().year + 10)
            base = [
                ChunkPayload(
                    doc_id=f"halueval-{i}",
                    chunk_id="",  # each copy gets its own
                    chunk_index=0,
                    source="bench",
                    tier="verified",
                    uri=f"bench://halueval-{i}",
                    title=f"halueval-{i}",
                    section="",
                    text=text,
                    char_start=0,
                    char_end=len(text),
                    source_modified_at=iso(now),
                    ingested_at=iso(now),
                    expires_at=iso(later),
                    content_hash=(h := content_hash(text)),
                    doc_hash=h,
                    version=1,
                    token_count=lengths[i],
                )
                for i, text in enumerate(texts)
            ]
            upsert_all(
                store, "verified", replicas(base, base_vecs, sparse, 0, size, rng, iso(later))
            )
            start = time.perf_counter()
            store.optimize("verified")
            optimise_s = time.perf_counter() - start
            asker = services.asker
            tiers = list(services.settings.tiers)
            for q in sets["answerable"][:10]:  # warm caches and the model
                asker.ask(q, tiers)
            print(
                f"{size:>7d} chunks (optimise {optimise_s:5.1f} s), judge reads up to top "
                f"{asker.judge_depth}:"
            )
            every: dict[str, list[float]] = {"total": [], "embed": [], "judge": []}
            for name, questions in sets.items():
                times: dict[str, list[float]] = {"total": [], "embed": [], "judge": []}
                refused = 0
                for q in questions:
                    result = asker.ask(q, tiers)
                    refused += result.refused
                    for stage, values in times.items():
                        values.append(result.latency_ms.get(stage, 0.0))
                for stage, values in times.items():
                    every[stage] += values
                _report(f"{name} ({refused}/{len(questions)} refused)", times)
            _report("both", every)
            services.close()


def _report(label: str, times: dict[str, list[float]]) -> None:
    def p(stage: str, q: int) -> float:
        return percentile(times[stage], q) if times[stage] else 0.0

    print(
        f"  {label:<28s} /ask p50 {p('total', 50):6.1f} ms  p95 {p('total', 95):6.1f} ms"
        f" | query embedding p50 {p('embed', 50):5.1f}  p95 {p('embed', 95):5.1f}"
        f" | judge p50 {p('judge', 50):5.1f}  p95 {p('judge', 95):5.1f}"
    )


if __name__ == "__main__":
    main()
