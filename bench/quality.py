"""Retrieval quality and answer-or-refuse, every system on the same rows, interleaved."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    ASK,
    BM25,
    DENSE,
    HYBRID,
    LLAMA,
    RANK_BM25,
    RERANK,
    SETS,
    SYSTEMS,
    log,
    stats,
    timed,
)
from bench.peers import LlamaPipeline, RankBM25, llama_row
from evals.metrics import doc_ranking, ranking_quality, summarize


def quality(rankings: list[list[str]], relevant: list[set[str]]) -> dict[str, float | None]:
    if not rankings:
        return {"recall@5": None, "mrr@10": None, "ndcg@10": None}
    return {k: round(v, 4) for k, v in ranking_quality(rankings, relevant).items()}


class TimedAsker:
    """AskPipeline with the wall time of each ask (query log included) kept aside."""

    def __init__(self, asker: Any) -> None:
        self.asker = asker
        self.last_ms = 0.0

    def ask(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self.asker.ask(*args, **kwargs)
        self.last_ms = (time.perf_counter() - start) * 1000
        return result


def build_sets(workdir: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from evals.datasets import build_fitzgov, build_halueval, judge_split
    from evals.runner import read_dataset

    built = {
        "halueval": build_halueval(workdir / "halueval", args.halueval_docs),
        "fitzgov": build_fitzgov(workdir / "fitzgov", args.fitz_cases),
    }
    sets = {}
    for name, (corpus, dataset) in built.items():
        rows = read_dataset(dataset)
        split = {s: [r for r in rows if judge_split(name, r["id"]) == s] for s in ("calib", "val")}
        if args.questions:
            split = {s: v[: args.questions] for s, v in split.items()}
        docs: dict[str, dict[str, Any]] = {}
        for line in corpus.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            docs.setdefault(row["id"], row)  # ids repeat in fitz-gov: the first wins, as ingested
        sets[name] = {
            "corpus": corpus,
            "docs": list(docs.values()),
            "calib": split["calib"],
            "val": split["val"],
            "tier": SETS[name],
        }
    return sets


def ingest(services: Any, sets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from ingestion.runner import IngestRequest
    from service.ingest import make_ingestor

    ingestor = make_ingestor(services)
    out = {}
    for name, s in sets.items():
        start = time.perf_counter()
        job = ingestor.run(IngestRequest(name, s["tier"], s["corpus"], "3650d", "bench"))
        seconds = time.perf_counter() - start
        if job.status != "succeeded":
            raise RuntimeError(f"ingesting {name} failed: {job.to_dict()}")
        out[name] = {
            "documents": len(s["docs"]),
            "chunks": services.store.count(s["tier"]),
            "seconds": round(seconds, 1),
        }
        log(f"ingested {name}: {out[name]}")
    return out


def compare(
    name: str, s: dict[str, Any], services: Any, lexical: RankBM25, llama: LlamaPipeline
) -> dict[str, Any]:
    """Every system on the val rows, interleaved; LlamaIndex also on calib (its cutoff)."""
    from evals.runner import run_dataset
    from rag.retrieval.store import ChunkFilter, StoreQuery
    from rag.retrieval.terms import QueryTerms
    from rag.types import utc_now

    tier, store, retriever = s["tier"], services.store, services.retriever
    reranker, bm25, embedder = services.asker.reranker, services.bm25, services.embedder
    asker = TimedAsker(services.asker)
    rows = s["val"]

    def engine(question: str, mode: str) -> list[dict[str, Any]]:
        live = ChunkFilter(live_at=utc_now())
        if mode == "sparse":
            query = StoreQuery(20, sparse=bm25.encode_query(question), where=live, mode=mode)
        else:
            query = StoreQuery(20, embedder.embed_query(question).tolist(), where=live, mode=mode)
        hits = store.query(tier, query)
        return [{"doc_id": h.payload.doc_id} for h in hits]

    ranking: dict[str, list[list[str]]] = {k: [] for k in SYSTEMS if k != ASK}
    latency: dict[str, list[float]] = {k: [] for k in SYSTEMS}
    results: list[dict[str, Any]] = []
    llama_val: list[dict[str, Any]] = []

    def run_hybrid(q: str) -> None:
        found, ms = timed(lambda: retriever.retrieve(q, [tier], services.asker.candidates))
        ranked, rerank_ms = timed(lambda: reranker.rerank(QueryTerms.of(q), list(found)))
        ranking[HYBRID].append(doc_ranking([c.brief().model_dump() for c in found]))
        ranking[RERANK].append(doc_ranking([c.brief().model_dump() for c in ranked]))
        latency[HYBRID].append(ms)
        latency[RERANK].append(ms + rerank_ms)

    def run_llama(row: dict[str, Any]) -> None:
        nodes, ms = timed(lambda: llama.search(row["question"]))
        latency[LLAMA].append(ms)
        ranking[LLAMA].append(doc_ranking(llama.hits(nodes)))
        llama_val.append(llama_row(row, nodes, llama))

    def run_ask(row: dict[str, Any]) -> None:
        results.extend(run_dataset(asker, store, [row], [tier], top_k=10))  # type: ignore[arg-type]
        latency[ASK].append(asker.last_ms)

    def simple(system: str, fn: Callable[[], list[Any]]) -> Callable[[dict[str, Any]], None]:
        def go(row: dict[str, Any]) -> None:
            out, ms = timed(fn)
            latency[system].append(ms)
            ranking[system].append(out if system == RANK_BM25 else doc_ranking(out))

        return go

    for row in rows[:3]:  # warm every path (model, ONNX sessions, caches); not measured
        q = row["question"]
        lexical.search(q), llama.search(q), engine(q, "sparse"), engine(q, "dense")
        retriever.retrieve(q, [tier], 20), services.asker.ask(q, [tier])
    for i, row in enumerate(rows):
        q = row["question"]
        steps: list[Callable[[dict[str, Any]], None]] = [
            simple(RANK_BM25, lambda q=q: lexical.search(q)),
            run_llama,
            simple(BM25, lambda q=q: engine(q, "sparse")),
            simple(DENSE, lambda q=q: engine(q, "dense")),
            lambda _row, q=q: run_hybrid(q),
            run_ask,
        ]
        for k in range(len(steps)):  # rotate the order per question
            steps[(i + k) % len(steps)](row)
    calib = [llama_row(r, llama.search(r["question"]), llama) for r in s["calib"]]

    dataset = {r["id"]: r for r in rows}
    answerable = [i for i, r in enumerate(rows) if r["answerable"]]
    relevant = [set(rows[i]["relevant_doc_ids"]) for i in answerable]
    report = summarize(results, dataset) if results else {}
    systems = {}
    for system in SYSTEMS:
        if system == ASK:
            q = {k: report.get("retrieval", {}).get(k) for k in ("recall@5", "mrr@10", "ndcg@10")}
        else:
            q = quality([ranking[system][i] for i in answerable], relevant)
        systems[system] = {**q, "latency_ms": stats(latency[system])}
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "calib_questions": len(calib),
        "systems": systems,
        "ours_answers": report,
        "llama_val": llama_val,
        "llama_calib": calib,
    }
