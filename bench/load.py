"""Loopback load on the real service: `/ask` at several concurrency levels.

    python -m bench.load [--levels 1,4,16,64] [--seconds 60] [--warmup 3]
                         [--variant NAME=RAG_X=1,RAG_Y=2 ...] [--data-dir DIR] [--json OUT.json]

The sample corpora (corpora/sources.toml) are ingested into a temporary data dir (or `--data-dir`
is used as it is), and `ragops serve` is started on a free loopback port over a copy of it, one
server per `--variant` (its extra `RAG_*` settings; default one variant with none). Each level
runs every variant back to back (so that noise on a shared machine falls on both alike): that
many closed-loop clients post the golden questions about the samples (answerable and not, in a
fixed shuffled order) for `--seconds`, after `--warmup` seconds that are not counted. Printed per
level and variant: asks/s, latency p50/p95/p99, errors (non-2xx or exceptions), refusals, the
server's RSS (sampled every `--rss-every` seconds: at the start, end and maximum of the level)
the CPU the server and this client used (in cores; the server's also per ask) and the machine's
load average (on a shared machine, other work takes cores from the server: compare variants
within one run, and CPU per ask across runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from evals.metrics import percentile

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "evals" / "datasets" / "golden.jsonl"
SOURCES = REPO / "corpora" / "sources.toml"
BASE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # The scheduler would re-index the sources on their own clock in the middle of a level.
    "RAG_SCHEDULER_ENABLED": "false",
    "RAG_SOURCES_FILE": str(SOURCES),
}


@dataclass
class Level:
    variant: str
    concurrency: int
    seconds: float
    asks: int = 0
    errors: int = 0
    refused: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    server_cpu_cores: float = 0.0
    server_cpu_ms_per_ask: float = 0.0
    client_cpu_cores: float = 0.0
    load_avg_1m: float = 0.0  # the machine's, at the end of the level: others' work included
    error_samples: list[str] = field(default_factory=list)


def questions() -> list[dict[str, Any]]:
    """The golden questions about the samples, answerable and unanswerable interleaved in a
    fixed order."""
    rows = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
    random.Random(0).shuffle(rows)
    return [{"question": r["question"], "answerable": bool(r["answerable"])} for r in rows]


def ingest(data_dir: Path) -> None:
    env = {**os.environ, **BASE_ENV, "RAG_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-m", "api.cli", "ingest", "--json"]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ingesting the samples failed:\n{done.stderr[-2000:]}")
    jobs = json.loads(done.stdout)
    jobs = jobs if isinstance(jobs, list) else [jobs]
    chunks = sum(int(j.get("chunks_written", 0)) for j in jobs)
    print(f"ingested {len(jobs)} sources, {chunks} chunks into {data_dir}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`ragops serve` over its own data dir, with extra settings in its environment."""

    def __init__(self, name: str, data_dir: Path, extra: dict[str, str], log: Path) -> None:
        self.name, self.extra = name, extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **BASE_ENV, "RAG_DATA_DIR": str(data_dir), **extra}
        cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)]
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server {self.name} exited: see {self._log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"server {self.name} not ready after {timeout_s:.0f} s")

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


async def run_level(
    server: Server,
    client: httpx.AsyncClient,
    rows: list[dict[str, Any]],
    concurrency: int,
    seconds: float,
    warmup: float,
    rss_every: float,
) -> Level:
    level = Level(server.name, concurrency, seconds)
    latencies: list[float] = []
    rss: list[float] = []
    counting = False
    next_row = 0
    stop_at = time.perf_counter() + warmup + seconds

    async def worker() -> None:
        nonlocal next_row
        while time.perf_counter() < stop_at:
            row = rows[next_row % len(rows)]
            next_row += 1
            start = time.perf_counter()
            error = None
            refused = False
            try:
                response = await client.post(
                    f"{server.url}/ask", json={"question": row["question"]}
                )
                if response.status_code >= 300:
                    error = f"HTTP {response.status_code}: {response.text[:200]}"
                else:
                    refused = bool(response.json().get("refused"))
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not counting:
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            level.refused += refused
            if error is not None:
                level.errors += 1
                if len(level.error_samples) < 5:
                    level.error_samples.append(error)

    async def sample_rss() -> None:
        while True:
            rss.append(server.rss_mb())
            await asyncio.sleep(rss_every)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    counting = True
    me = psutil.Process()
    cpu0 = me.cpu_times()
    server_cpu0 = server.cpu_s()
    t0 = time.perf_counter()
    sampler = asyncio.create_task(sample_rss())
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - t0
    sampler.cancel()
    rss.append(server.rss_mb())
    cpu1 = me.cpu_times()
    level.server_cpu_cores = round((server.cpu_s() - server_cpu0) / elapsed, 2)
    level.client_cpu_cores = round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed, 2)
    level.load_avg_1m = round(os.getloadavg()[0], 1)
    level.asks = len(latencies)
    level.server_cpu_ms_per_ask = round(level.server_cpu_cores * elapsed * 1000 / level.asks, 1)
    level.rps = round(len(latencies) / elapsed, 1)
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        setattr(level, name, round(percentile(latencies, q), 1))
    level.rss_mb = {"start": round(rss[0], 1), "end": round(rss[-1], 1), "max": round(max(rss), 1)}
    return level


def print_level(level: Level) -> None:
    rss = level.rss_mb
    print(
        f"c={level.concurrency:<3d} {level.variant:<10s} {level.rps:7.1f} asks/s "
        f"p50 {level.p50_ms:6.1f}  p95 {level.p95_ms:6.1f}  p99 {level.p99_ms:6.1f} ms  "
        f"errors {level.errors:<3d} refused {level.refused / max(level.asks, 1):4.0%}  "
        f"RSS MB start {rss['start']:.0f} end {rss['end']:.0f} max {rss['max']:.0f}  "
        f"cores server {level.server_cpu_cores:.2f} ({level.server_cpu_ms_per_ask:.1f} ms/ask) "
        f"client {level.client_cpu_cores:.2f}  load {level.load_avg_1m:.1f}",
        flush=True,
    )
    for sample in level.error_samples:
        print(f"    error: {sample}", flush=True)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, settings = text.partition("=")
    extra: dict[str, str] = {}
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"variant settings are NAME=VALUE: {item!r}")
        extra[key] = value
    return name, extra


async def drive(servers: list[Server], args: argparse.Namespace) -> list[Level]:
    rows = questions()
    results: list[Level] = []
    top = max(args.levels)
    limits = httpx.Limits(max_connections=top, max_keepalive_connections=top)
    timeout = httpx.Timeout(args.timeout)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        for server in servers:  # the first asks load what is still lazy
            for row in rows[:10]:
                await client.post(f"{server.url}/ask", json={"question": row["question"]})
        for concurrency in args.levels:
            for server in servers:
                level = await run_level(
                    server, client, rows, concurrency, args.seconds, args.warmup, args.rss_every
                )
                print_level(level)
                results.append(level)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64]
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds per level")
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        help="NAME=RAG_X=1,RAG_Y=2: one server with these settings (repeatable)",
    )
    parser.add_argument("--data-dir", type=Path, help="an ingested data dir (default: ingest)")
    parser.add_argument("--rss-every", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--json", type=Path, help="write every level's figures here")
    args = parser.parse_args()
    variants: list[tuple[str, dict[str, str]]] = args.variant or [("default", {})]

    command = "python -m bench.load " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"command: {command}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ragops-load-") as tmp:
        source = args.data_dir
        if source is None:
            source = Path(tmp) / "samples"
            ingest(source)
        servers: list[Server] = []
        try:
            for name, extra in variants:
                data_dir = Path(tmp) / f"data-{name}"
                # One data dir per server: the embedded store admits one process per shard.
                shutil.copytree(source, data_dir)
                servers.append(Server(name, data_dir, extra, Path(tmp) / f"{name}.log"))
            for server in servers:
                server.wait_ready()
                print(f"server {server.name}: {server.url} {server.extra}", flush=True)
            results = asyncio.run(drive(servers, args))
        finally:
            for server in servers:
                server.stop()
    if args.json:
        report = {
            "command": command,
            "cpus": os.cpu_count(),
            "levels": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
