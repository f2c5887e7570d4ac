"""Engine calls of hybrid retrieval: the candidates' evidence scores in one batched call without
payloads (today) against one query each with payloads (before), on the embedded store.

    python -m bench.store_calls [--chunks 10000] [--tiers 4] [--queries 300]

Random unit vectors and random BM25 terms stand in for real chunks (the engine's work does not
depend on what the words mean); every tier holds `--chunks` points, optimised (HNSW built).
Prints the median and p95 of `HybridRetriever.retrieve` over all tiers both ways, and their
ratio, plus the engine calls per ask.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from evals.metrics import percentile
from rag.retrieval.bm25 import BM25Encoder
from rag.retrieval.hybrid import HybridRetriever, QueryVectors
from rag.retrieval.store import ChunkFilter, StoreQuery, VectorStore, open_store
from rag.types import Candidate, ChunkPayload, ChunkPoint, SparseVector, chunk_id_for, iso, utc_now

DIM = 384
WORDS = [f"term{i}" for i in range(3000)]


def fill(store: VectorStore, tier: str, n: int, rng: random.Random) -> None:
    bm25, now = BM25Encoder(), utc_now()
    batch: list[ChunkPoint] = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(40))
        vec = np.array([rng.gauss(0, 1) for _ in range(DIM)])
        payload = ChunkPayload(
            doc_id=f"d{i}", chunk_id=chunk_id_for(tier, f"d{i}", 0, str(i)), chunk_index=0,
            source=tier, tier=tier, uri="", title="", section="", text=text, char_start=0,
            char_end=len(text), source_modified_at=iso(now), ingested_at=iso(now),
            expires_at="2999-01-01T00:00:00+00:00", content_hash=str(i), doc_hash=str(i),
            version=1, token_count=40,
        )  # fmt: skip
        batch.append(
            ChunkPoint(
                payload, (vec / np.linalg.norm(vec)).tolist(), bm25.encode_document(text, 40.0)
            )
        )
        if len(batch) == 1000:
            store.upsert(tier, batch)
            batch = []
    store.upsert(tier, batch)
    store.optimize(tier)


class OneByOne(HybridRetriever):
    """The way before: two more queries per tier, each reading every candidate's payload."""

    def _attach_scores(
        self, tier: str, candidates: list[Candidate], dense: list[float], sparse: SparseVector
    ) -> None:
        only = ChunkFilter(chunk_ids=[c.chunk_id for c in candidates])
        n = len(candidates)
        d = {
            h.chunk_id: h.score
            for h in self.store.query(tier, StoreQuery(n, dense, where=only, mode="dense"))
        }
        b = {
            h.chunk_id: h.score
            for h in self.store.query(tier, StoreQuery(n, sparse=sparse, where=only, mode="sparse"))
        }
        for c in candidates:
            c.dense, c.bm25 = d.get(c.chunk_id, 0.0), b.get(c.chunk_id, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--tiers", type=int, default=4)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(5)
    tiers = [f"t{i}" for i in range(args.tiers)]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store("edge", tiers, DIM, edge_dir=Path(tmp))
        for tier in tiers:
            fill(store, tier, args.chunks, rng)
        bm25 = BM25Encoder()
        asks = []
        for _ in range(args.queries):
            vec = np.array([rng.gauss(0, 1) for _ in range(DIM)])
            words = " ".join(rng.choice(WORDS) for _ in range(6))
            asks.append(QueryVectors(vec / np.linalg.norm(vec), bm25.encode_query(words)))
        retrievers = {
            "one_by_one": OneByOne(store, None, bm25),  # type: ignore[arg-type]  # vectors given
            "batched": HybridRetriever(store, None, bm25),  # type: ignore[arg-type]
        }
        times: dict[str, list[float]] = {name: [] for name in retrievers}
        for i, vectors in enumerate(asks * 2):  # the first pass warms the caches
            order = list(retrievers.items())
            for name, retriever in order if i % 2 else order[::-1]:  # interleaved: same noise
                start = time.perf_counter()
                retriever.retrieve("", tiers, 20, vectors)
                if i >= len(asks):
                    times[name].append((time.perf_counter() - start) * 1000)
        out: dict[str, object] = {
            name: {"p50_ms": round(percentile(t, 50), 3), "p95_ms": round(percentile(t, 95), 3)}
            for name, t in times.items()
        }
        store.close()
    out["engine_calls_per_ask"] = {"one_by_one": 3 * args.tiers, "batched": 2 * args.tiers}
    p50 = {name: percentile(t, 50) for name, t in times.items()}
    out["p50_ratio_batched_to_one_by_one"] = round(p50["batched"] / p50["one_by_one"], 3)
    flags = f"--chunks {args.chunks} --tiers {args.tiers} --queries {args.queries}"
    out["command"] = f"python -m bench.store_calls {flags}"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
