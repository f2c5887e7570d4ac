"""What every benchmark section shares: the systems compared, the targets, timing, statistics,
the machine and commit a run is recorded with. Importing it sets the offline environment
(see `bench.run`)."""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.metrics import percentile

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
