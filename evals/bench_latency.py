"""/ask latency (extractive path, embedded store) at 10k and 100k chunks.

    python -m evals.bench_latency [--sizes 10000 100000] [--questions 200] [--base 2000]

The store is filled with real HaluEval passages: `--base` of them are embedded with the real
model, then replicated with small perturbations of their dense vectors (new ids, same BM25
vectors) up to each size, and optimised (HNSW built) as a long-running index would be. Each
question runs through `AskPipeline.ask` exactly as `/ask` does (query log included). Printed:
p50/p95 of the whole ask, of the query embedding alone and of the judge's batched call.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from evals.datasets import halueval_rows
from evals.metrics import percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--base", type=int, default=2000, help="passages embedded for real")
    args = parser.parse_args()

    from rag.pipeline import Services
    from rag.settings import Settings
    from rag.types import ChunkPayload, ChunkPoint, chunk_id_for, content_hash, iso, utc_now

    rows = list(halueval_rows(max(args.base, args.questions)))
    texts = [r["knowledge"] for r in rows[: args.base]]
    questions = [r["question"] for r in rows[: args.questions]]
    rng = np.random.default_rng(0)
    print(
        f"command: python -m evals.bench_latency --sizes {' '.join(map(str, args.sizes))} "
        f"--questions {args.questions} --base {args.base}"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            services = Services(Settings(data_dir=Path(tmp)))
            embedder, store, bm25 = services.embedder, services.store, services.bm25
            base_vecs = embedder.embed_texts(texts)
            lengths = [bm25.document_length(t) for t in texts]
            avgdl = sum(lengths) / len(lengths)
            sparse = [bm25.encode_document(t, avgdl) for t in texts]
            now, later = utc_now(), utc_now().replace(year=utc_now().year + 10)
            batch: list[ChunkPoint] = []
            for n in range(size):
                i = n % len(texts)
                vec = base_vecs[i] + (
                    rng.normal(0, 0.02, base_vecs.shape[1]) if n >= len(texts) else 0
                )
                vec = vec / np.linalg.norm(vec)
                doc_id = f"halueval-{i}-copy{n // len(texts)}"
                h = content_hash(texts[i])
                payload = ChunkPayload(
                    doc_id=doc_id,
                    chunk_id=chunk_id_for("bench", doc_id, 0, h),
                    chunk_index=0,
                    source="bench",
                    tier="verified",
                    uri=f"bench://{doc_id}",
                    title=doc_id,
                    section="",
                    text=texts[i],
                    char_start=0,
                    char_end=len(texts[i]),
                    source_modified_at=iso(now),
                    ingested_at=iso(now),
                    expires_at=iso(later),
                    content_hash=h,
                    doc_hash=h,
                    version=1,
                    token_count=lengths[i],
                )
                batch.append(ChunkPoint(payload, vec.tolist(), sparse[i]))
                if len(batch) == 1000:
                    store.upsert("verified", batch)
                    batch = []
            store.upsert("verified", batch)
            start = time.perf_counter()
            store.optimize("verified")
            optimise_s = time.perf_counter() - start
            asker = services.asker
            tiers = list(services.settings.tiers)
            for q in questions[:10]:  # warm caches and the model
                asker.ask(q, tiers)
            total, embed, judge = [], [], []
            for q in questions:
                result = asker.ask(q, tiers)
                total.append(result.latency_ms["total"])
                embed.append(result.latency_ms["embed"])
                judge.append(result.latency_ms.get("judge", 0.0))
            print(
                f"{size:>7d} chunks (optimise {optimise_s:5.1f} s): "
                f"/ask p50 {percentile(total, 50):6.1f} ms"
                f"  p95 {percentile(total, 95):6.1f} ms | query embedding p50 "
                f"{percentile(embed, 50):5.1f} ms  p95 {percentile(embed, 95):5.1f} ms"
                f" | judge (top {asker.judge_depth}) p50 {percentile(judge, 50):5.1f} ms"
                f"  p95 {percentile(judge, 95):5.1f} ms"
            )
            services.close()


if __name__ == "__main__":
    main()
