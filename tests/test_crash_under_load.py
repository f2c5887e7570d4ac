"""kill -9 of `ragops serve` while 16 asks are in flight and an ingestion job runs, then a
restart, over real processes, at several moments: the store opens without repair by hand,
every document the job recorded as ingested is searchable whole, the interrupted job is
reported failed with a reason (never left running), and the query log has every ask a client
got an answer for (it may lose only the asks in flight)."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port, make_settings
from test_crash_recovery import RAGOPS, corpus, env_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IN_FLIGHT = 16
QUESTIONS = [
    "What does record 12 describe?",
    "Who owns record 40?",
    "When do the Alpha servers restart?",
    "What is the capital of France?",
]


def start_server(data_dir: Path, root: Path, port: int) -> subprocess.Popen[bytes]:
    env = env_for(data_dir) | {"RAG_INGEST_ROOTS": str(root), "RAG_SCHEDULER_ENABLED": "false"}
    server = subprocess.Popen(
        [RAGOPS, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited while starting"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise AssertionError("the server did not become healthy")


def asker(base: str, stop: threading.Event, answered: list[str], lock: threading.Lock) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        i = 0
        while not stop.is_set():
            try:
                response = client.post("/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
            except httpx.HTTPError:  # the server was killed under us: this ask was in flight
                time.sleep(0.05)
                continue
            i += 1
            if response.status_code == 200:
                with lock:
                    answered.append(response.json()["trace_id"])


@pytest.mark.parametrize("seed", [3, 5, 8])
def test_kill_9_under_load_while_ingesting_then_restart(tmp_path, seed):
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    first = tmp_path / "first"
    first.mkdir()
    (first / "alpha.md").write_text("# Alpha\n\nAlpha servers restart every Sunday at 03:00.\n")
    big = corpus(tmp_path / "big.jsonl")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, tmp_path, port)
    stop, lock, answered = threading.Event(), threading.Lock(), []
    threads: list[threading.Thread] = []
    try:
        done = httpx.post(
            f"{base}/ingest/jobs", json={"path": str(first), "tier": "internal"}, timeout=30
        ).json()
        deadline = time.monotonic() + 120
        while done["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            done = httpx.get(f"{base}/ingest/jobs/{done['job_id']}", timeout=30).json()
        assert done["status"] == "succeeded", done
        threads = [
            threading.Thread(target=asker, args=(base, stop, answered, lock), daemon=True)
            for _ in range(IN_FLIGHT)
        ]
        for thread in threads:
            thread.start()
        job = httpx.post(
            f"{base}/ingest/jobs", json={"path": str(big), "tier": "internal"}, timeout=30
        ).json()
        time.sleep(rng.uniform(1.0, 8.0))  # a different moment of the job each time
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        if server.poll() is None:
            server.kill()
    assert answered, "no ask was answered before the kill"

    server = start_server(data_dir, tmp_path, port)  # opens the store with no repair by hand
    try:
        after = httpx.get(f"{base}/ingest/jobs/{job['job_id']}", timeout=30).json()
        assert after["status"] in ("succeeded", "failed"), after  # never left "running"
        if after["status"] == "failed":
            assert after["error"], after
        asked = httpx.post(f"{base}/ask", json={"question": QUESTIONS[2]}, timeout=60).json()
        assert not asked["refused"] and asked["citations"][0]["doc_id"] == "alpha.md"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    from service.container import Services

    services = Services(make_settings(tmp_path, data_dir=data_dir))
    try:
        store, catalog = services.store, services.catalog
        from rag.retrieval.store import ChunkFilter

        # Every document the catalog records as ingested has all of its chunks in the store.
        for source in ("first", "big"):
            for doc in catalog.documents(source).values():
                where = ChunkFilter(source=source, doc_ids=[doc.doc_id])
                assert store.count("internal", where) == len(doc.chunk_ids), doc.doc_id
        # Every ask a client got an answer for is in the query log.
        missing = [t for t in answered if services.query_log.get(t) is None]
        assert not missing, f"{len(missing)} of {len(answered)} answered asks are not logged"
        print(f"seed {seed}: {len(answered)} asks answered before the kill; job {after['status']}")
    finally:
        services.close()
