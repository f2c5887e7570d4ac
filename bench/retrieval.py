"""Retrieval quality side by side: BM25 alone, dense alone, hybrid (RRF, DBSF), hybrid + rerank.

    python -m evals.datasets halueval --out evals/out/halueval
    RAG_DATA_DIR=evals/out/halueval/data ragops ingest evals/out/halueval/corpus.jsonl \\
        --source halueval --tier verified --ttl 3650d
    RAG_DATA_DIR=evals/out/halueval/data python -m bench.retrieval \\
        evals/out/halueval/dataset.jsonl [--grid]

Runs the real retriever and rerankers over the store in RAG_DATA_DIR; prints recall@5,
MRR@10 and nDCG@10 (document level) for every configuration from one run. `--grid` also sweeps
the evidence reranker's weights (development split only) to choose its defaults.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

from evals.metrics import doc_ranking, percentile, ranking_quality
from evals.runner import read_dataset
from rag.retrieval.terms import QueryTerms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--grid", action="store_true", help="sweep evidence reranker weights")
    args = parser.parse_args()

    from rag.retrieval.rerank import EvidenceReranker, NoReranker
    from service.container import Services

    rows = [r for r in read_dataset(args.dataset) if r["answerable"]]
    rows = rows[: args.limit] if args.limit else rows
    relevant = [set(r["relevant_doc_ids"]) for r in rows]
    services = Services()
    retriever = services.retriever
    tiers = list(services.settings.tiers)
    pools: dict[str, list[Any]] = {"sparse": [], "dense": [], "rrf": [], "dbsf": []}
    embed_ms: list[float] = []
    for row in rows:
        start = time.perf_counter()
        vectors = retriever.encode(row["question"])
        embed_ms.append((time.perf_counter() - start) * 1000)
        pools["sparse"].append(retriever.retrieve(row["question"], tiers, 20, vectors, "sparse"))
        pools["dense"].append(retriever.retrieve(row["question"], tiers, 20, vectors, "dense"))
        retriever.fusion = "rrf"
        pools["rrf"].append(retriever.retrieve(row["question"], tiers, 20, vectors))
        retriever.fusion = "dbsf"
        pools["dbsf"].append(retriever.retrieve(row["question"], tiers, 20, vectors))

    def ranked(pool: list[Any], reranker: Any, questions: list[str]) -> list[list[str]]:
        return [
            doc_ranking(
                [c.brief().model_dump() for c in reranker.rerank(QueryTerms.of(q), list(cands))]
            )
            for q, cands in zip(questions, pool)
        ]

    questions = [r["question"] for r in rows]
    table = {
        "BM25 alone": ranked(pools["sparse"], NoReranker(), questions),
        "dense alone": ranked(pools["dense"], NoReranker(), questions),
        "hybrid RRF": ranked(pools["rrf"], NoReranker(), questions),
        "hybrid DBSF": ranked(pools["dbsf"], NoReranker(), questions),
        "hybrid RRF + evidence rerank": ranked(pools["rrf"], EvidenceReranker(), questions),
        "hybrid DBSF + evidence rerank": ranked(pools["dbsf"], EvidenceReranker(), questions),
    }
    print(f"dataset: {args.dataset} ({len(rows)} answerable questions)")
    print(f"{'configuration':34s} {'recall@5':>9s} {'MRR@10':>8s} {'nDCG@10':>8s}")
    for name, rankings in table.items():
        m = ranking_quality(rankings, relevant)
        print(f"{name:34s} {m['recall@5']:9.4f} {m['mrr@10']:8.4f} {m['ndcg@10']:8.4f}")
    print(
        f"query embedding alone: p50 {percentile(embed_ms, 50):.1f} ms, "
        f"p95 {percentile(embed_ms, 95):.1f} ms"
    )
    if args.grid:
        print("\nevidence reranker grid (dense, bm25, coverage) on hybrid RRF candidates:")
        results = []
        for d, b, c in itertools.product([0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [0.0, 0.25, 0.5, 1.0]):
            rankings = ranked(pools["rrf"], EvidenceReranker(d, b, c), questions)
            m = ranking_quality(rankings, relevant)
            results.append((m["mrr@10"], m["recall@5"], d, b, c))
        for mrr, rec, d, b, c in sorted(results, reverse=True)[:8]:
            print(f"  dense={d} bm25={b} coverage={c}: recall@5 {rec:.4f} MRR@10 {mrr:.4f}")
    print(
        f"command: python -m bench.retrieval {args.dataset}"
        + (f" --limit {args.limit}" if args.limit else "")
        + (" --grid" if args.grid else "")
    )
    services.close()


if __name__ == "__main__":
    main()
