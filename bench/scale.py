"""Ingestion throughput, the `/ask` scale sweep, profiles, and lexical search at scale."""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import log, ratio, rss_mb, stats, timed, top_profile
from bench.peers import RankBM25


def ingest_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """bench/ingest's measurement, `--ingest-docs` fitz-gov documents, medians of
    `--ingest-repeats` alternating runs."""
    from bench.ingest import measure

    return measure(args.ingest_docs, args.ingest_repeats)


def scale_sweep(
    args: argparse.Namespace, base_chunks: list[tuple[Any, list[float]]], started: float
) -> dict[str, Any]:
    """bench/latency's method over one growing store (see the module docstring)."""
    from evals.corpora import replicas, upsert_all
    from evals.datasets import halueval_rows
    from rag.retrieval.store import ChunkFilter, StoreQuery
    from rag.types import iso, utc_now
    from service.container import Services

    rows = list(halueval_rows(args.base + args.unanswerable))
    answerable = [r["question"] for r in rows[: min(args.scale_questions, args.base)]]
    unanswerable = [r["question"] for r in rows[args.base : args.base + args.unanswerable]]
    mixed = [q for pair in zip(answerable, unanswerable) for q in pair]
    mixed += answerable[len(unanswerable) :] + unanswerable[len(answerable) :]
    kinds = {q: "answerable" for q in answerable} | {q: "unanswerable" for q in unanswerable}
    sizes = sorted(set(args.sizes) | {args.lexical_size})
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"sizes": [], "lexical": None, "skipped_sizes": [], "profile": None}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        services = Services.scratch(Path(tmp))
        store, bm25, asker = services.store, services.bm25, services.asker
        texts = [p.text for p, _ in base_chunks]
        lengths = [bm25.document_length(t) for t in texts]
        avgdl = sum(lengths) / len(lengths)
        sparse = [bm25.encode_document(t, avgdl) for t in texts]
        base = np.asarray([v for _, v in base_chunks], dtype=np.float32)
        base_payloads = [p for p, _ in base_chunks]
        later = iso(utc_now().replace(year=utc_now().year + 10))
        rss_empty = rss_mb()
        filled = 0
        for size in sizes:
            elapsed = time.perf_counter() - started
            if args.time_budget and elapsed > args.time_budget:
                out["skipped_sizes"].append(size)
                log(f"scale: skipping {size} ({elapsed:.0f} s spent, budget {args.time_budget})")
                continue
            start = time.perf_counter()
            upsert_all(
                store,
                "verified",
                replicas(base_payloads, base, sparse, filled, size, rng, later),
            )
            filled = size
            fill_s = time.perf_counter() - start
            _, optimise_ms = timed(lambda: store.optimize("verified"))
            gc.collect()
            rss = rss_mb()
            tiers = ["verified"]
            for q in answerable[:10]:
                asker.ask(q, tiers)
            times: dict[str, dict[str, list[float]]] = {
                k: {"total": [], "embed": [], "retrieve": [], "judge": [], "engine_bm25": []}
                for k in ("answerable", "unanswerable")
            }
            refused = {"answerable": 0, "unanswerable": 0}
            for q in mixed:
                kind = kinds[q]
                result, ms = timed(lambda q=q, tiers=tiers: asker.ask(q, tiers))
                refused[kind] += result.refused
                for stage in ("embed", "retrieve", "judge"):
                    times[kind][stage].append(result.latency_ms.get(stage, 0.0))
                times[kind]["total"].append(ms)
                live = ChunkFilter(live_at=utc_now())
                _, bm_ms = timed(
                    lambda q=q, live=live: store.query(
                        "verified",
                        StoreQuery(20, sparse=bm25.encode_query(q), where=live, mode="sparse"),
                    )
                )
                times[kind]["engine_bm25"].append(bm_ms)
            both = {
                stage: times["answerable"][stage] + times["unanswerable"][stage]
                for stage in times["answerable"]
            }
            entry = {
                "chunks": store.count("verified"),
                "fill_s": round(fill_s, 1),
                "optimise_s": round(optimise_ms / 1000, 1),
                "rss_mb": round(rss, 1),
                "refused": refused,
                "questions": {k: len(v["total"]) for k, v in times.items()},
                "latency_ms": {
                    kind: {stage: stats(v) for stage, v in t.items()}
                    for kind, t in [*times.items(), ("both", both)]
                },
            }
            out["sizes"].append(entry)
            log(f"scale {size}: {json.dumps(entry['latency_ms']['both']['total'])} rss {rss:.0f}")
            if size == args.lexical_size:
                if args.profile:
                    out["profile"] = profile_asks(asker, mixed[: args.profile], tiers, store, bm25)
                out["lexical"] = lexical_at_scale(args, services, texts, size, answerable)
                gc.collect()
                out["rss_after_lexical_mb"] = round(rss_mb(), 1)
        services.close()
    out["rss_empty_mb"] = round(rss_empty, 1)
    return out


def profile_asks(
    asker: Any, questions: list[str], tiers: list[str], store: Any, bm25: Any
) -> dict[str, list[str]]:
    """cProfile's top entries over asks, and over engine BM25 queries (after the timed loop)."""
    from rag.retrieval.store import ChunkFilter, StoreQuery
    from rag.types import utc_now

    profiler = cProfile.Profile()
    profiler.enable()
    for q in questions:
        asker.ask(q, tiers)
    profiler.disable()
    lexical = cProfile.Profile()
    lexical.enable()
    for q in questions:
        live = ChunkFilter(live_at=utc_now())
        store.query(
            "verified", StoreQuery(20, sparse=bm25.encode_query(q), where=live, mode="sparse")
        )
    lexical.disable()
    return {"ask": top_profile(profiler), "engine_bm25": top_profile(lexical)}


def lexical_at_scale(
    args: argparse.Namespace, services: Any, texts: list[str], size: int, questions: list[str]
) -> dict[str, Any]:
    """rank-bm25 over the same `size` texts as the store (one document per chunk), interleaved
    with our engine BM25 on the same questions."""
    from rag.retrieval.store import ChunkFilter, StoreQuery
    from rag.types import utc_now

    store, bm25 = services.store, services.bm25
    start = time.perf_counter()
    ids = [f"d{n}" for n in range(size)]
    lexical = RankBM25(ids, [texts[n % len(texts)] for n in range(size)])
    build_s = time.perf_counter() - start
    queries = questions[: args.lexical_queries]
    theirs, ours = [], []
    for i, q in enumerate(queries):
        live = ChunkFilter(live_at=utc_now())

        def run_ours(q: str = q, live: ChunkFilter = live) -> Any:
            return store.query(
                "verified", StoreQuery(10, sparse=bm25.encode_query(q), where=live, mode="sparse")
            )

        def run_theirs(q: str = q) -> Any:
            return lexical.search(q)

        pair = [(run_theirs, theirs), (run_ours, ours)]
        for fn, sink in pair if i % 2 == 0 else pair[::-1]:
            sink.append(timed(fn)[1])
    a, b = stats(theirs), stats(ours)
    return {
        "documents": size,
        "queries": len(queries),
        "rank_bm25_build_s": round(build_s, 1),
        "rank_bm25_ms": a,
        "engine_bm25_ms": b,
        "speedup_p50": ratio(a["p50"], b["p50"]),
        "speedup_p95": ratio(a["p95"], b["p95"]),
    }


def base_chunks(services: Any, passages: int) -> list[tuple[Any, list[float]]]:
    """The ingested chunks of the first `passages` HaluEval passages, with their vectors."""
    from rag.retrieval.store import ChunkFilter

    ids = [f"halueval-{i}" for i in range(passages)]
    payloads = sorted(
        services.store.scroll("verified", ChunkFilter(doc_ids=ids)),
        key=lambda p: (int(p.doc_id.rsplit("-", 1)[1]), p.chunk_index),
    )
    vectors = services.store.dense_vectors("verified", [p.chunk_id for p in payloads])
    return [(p, vectors[p.chunk_id]) for p in payloads]
