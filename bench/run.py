"""Benchmarks side by side with what users would pick instead: one command, one run, one table.

    python -m bench                 # the full run (`make bench`); ~30-40 min on 2 cores
    python -m bench --quick         # a small smoke run (tests/test_bench.py), ~1 min

Writes `bench/results/bench-<date>.md` and `.json` (date, machine, git commit, the exact
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
   around `rag.retrieval.embedding`'s embedder: no model download) + `BM25Retriever` + a
   `QueryFusionRetriever` (num_queries=1: no LLM; mode reciprocal_rerank; top 10 everywhere so
   that @10 metrics exist; other settings default, `use_async` included).
2. Answer or refuse on the `val` split: ours (`evals.metrics.summarize` over `run_dataset`);
   LlamaIndex answering with its top node unless the top fused score is below a cutoff chosen
   on the `calib` split rows (maximising the mean over the two sets of balanced accuracy; on
   HaluEval, all answerable, that is the answer rate).
3. Ingestion throughput next to raw `encode()` of the same chunks (bench/ingest's logic).
4. Scale sweep of `/ask` (bench/latency's method): the chunks of the first `--base`
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
import datetime as dt
import gc
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    ASK,
    BM25,
    HYBRID,
    LLAMA,
    RANK_BM25,
    RERANK,
    RESULTS_DIR,
    git_commit,
    log,
    machine,
    ratio,
    timed,
)
from bench.peers import LlamaPipeline, RankBM25, choose_cutoff, llama_answers
from bench.quality import build_sets, compare, ingest
from bench.report import markdown, targets
from bench.scale import base_chunks, ingest_throughput, scale_sweep


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
    command = "python -m bench" + "".join(" " + shlex.quote(a) for a in argv_list)
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
            "PyStemmer<3, rag.retrieval.bm25 runs on PyStemmer 3.x (same stemmer API)",
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
    from service.container import Services

    workdir: Path = args.workdir
    sets = build_sets(workdir, args)
    services = Services.scratch(workdir)
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
