"""Store faults after start-up, through the real API over the real stores.

The embedded store's directory missing, read-only, on a full disk, or locked by another
process, and the Qdrant server unreachable. For each: `/ask` and `/search` answer 503
`{"detail", "reason"}` (no stack trace), `/healthz` answers 503 `{"status": "degraded",
"reason", "detail", "store"}`, an ingestion job fails with the reason and writes nothing; once
the fault clears, the same process serves again with no manual step, and the store and the
ops database agree (the same chunk ids on both sides, no orphans).

Every fault is a real one:
- missing: the store directory renamed away (and back);
- read-only: a read-only bind mount over the store directory (as root, permissions do not
  stop writes; a non-root run uses chmod instead);
- disk full: the store on a 128 MiB tmpfs, filled to the last byte by another file;
- locked: the store directory replaced by a copy (a restore from backup) that another process
  opens before the service does;
- unreachable: a qdrant-client URL on a closed loopback port; "reachable again" is a small
  stand-in Qdrant REST server started on that port (`QdrantStandIn`: no Qdrant server binary
  can be had here, DESIGN.md §4), backed by qdrant-client's local mode.
The mounts need root with CAP_SYS_ADMIN (CI and the development machines have it). Without
it, the full disk is injected at the OS boundary instead (`os.statvfs` reports no space left)
and the read-only case uses chmod when not root, else is skipped.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from conftest import REPO, finished_job, free_port, make_settings
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient, models

from api.main import create_app
from rag.retrieval.store import ChunkFilter
from rag.retrieval.store.edge import EdgeStore
from service.container import Services

pytestmark = pytest.mark.integration

TIERS = ["verified", "internal"]
CANTEEN_Q = {"question": "What soup does the canteen serve on Mondays?"}
GYM_Q = {"question": "When does the gym open in the morning?"}

# Another process that opens the embedded store and holds it until its stdin closes.
HOLD = """
import sys
from pathlib import Path
from rag.retrieval.store.edge import EdgeStore
store = EdgeStore(Path(sys.argv[1]), sys.argv[2:], 384)
print("holding", flush=True)
sys.stdin.read()
store.close()
"""


# -- helpers ------------------------------------------------------------------------------
def _ok(*cmd: str) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def can_mount() -> bool:
    where = Path(tempfile.mkdtemp(prefix="ragops-mount-probe-"))
    try:
        if not _ok("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)):
            return False
        return _ok("umount", str(where))
    finally:
        where.rmdir()


class Mounts:
    """Mounts made by a test, undone at its end whatever happened."""

    def __init__(self) -> None:
        self.active: list[Path] = []

    def tmpfs(self, where: Path, size: str) -> None:
        assert _ok("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        self.active.append(where)

    def read_only(self, where: Path) -> None:
        assert _ok("mount", "--bind", str(where), str(where))
        self.active.append(where)
        assert _ok("mount", "-o", "remount,bind,ro", str(where))

    def unmount(self, where: Path) -> None:
        for _ in range(50):
            if _ok("umount", str(where)):
                break
            time.sleep(0.1)
        else:
            assert _ok("umount", "-l", str(where)), f"cannot unmount {where}"
        self.active.remove(where)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    made = Mounts()
    yield made
    for where in reversed(list(made.active)):
        made.unmount(where)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def hold_store(edge: Path, processes: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(edge), *TIERS],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    processes.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def fill_disk(filler: Path) -> None:
    """Write `filler` until the filesystem has no byte left."""
    block = b"\0" * (1 << 20)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    assert os.statvfs(filler.parent).f_bavail == 0


@pytest.fixture
def corpora(tmp_path: Path) -> dict[str, Path]:
    canteen = tmp_path / "canteen"
    canteen.mkdir()
    (canteen / "menu.md").write_text("# Canteen\n\nThe canteen serves lentil soup on Mondays.\n")
    gym = tmp_path / "gym"
    gym.mkdir()
    (gym / "hours.md").write_text("# Gym\n\nThe gym opens at six in the morning.\n")
    return {"canteen": canteen, "gym": gym}


def settings_for(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "tiers": TIERS,
        "scheduler_enabled": False,
        "ingest_roots": [tmp_path],
        "worker_poll_seconds": 0.2,
        "store_min_free_mb": 4,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


def ingest(client: TestClient, folder: Path, source: str) -> dict[str, Any]:
    """Queue a job over HTTP and wait for the service's worker to finish it."""
    created = client.post(
        "/ingest/jobs", json={"path": str(folder), "tier": "internal", "source": source}
    )
    assert created.status_code == 202, created.text
    return finished_job(client, created.json()["job_id"], timeout_s=60)


def expect_degraded(client: TestClient, reason: str, words: str) -> None:
    health = client.get("/healthz")
    assert health.status_code == 503, health.text
    body = health.json()
    assert body["status"] == "degraded" and body["reason"] == reason, body
    assert words in body["detail"], body
    for path in ("/ask", "/search", "/ask?stream=true"):
        answer = client.post(path, json=CANTEEN_Q)
        assert answer.status_code == 503, (path, answer.text)
        assert answer.json()["reason"] == reason and words in answer.json()["detail"]
        assert "Traceback" not in answer.text and 'File "' not in answer.text


def expect_serving(client: TestClient, services: Services) -> None:
    """Healthy, answering, and the store holds exactly the chunks the ops DB records."""
    health = client.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    answer = client.post("/ask", json=CANTEEN_Q)
    assert answer.status_code == 200, answer.text
    assert answer.json()["refused"] is False
    assert {c["doc_id"] for c in answer.json()["citations"]} == {"menu.md"}
    recorded = {c for doc in services.catalog.all_documents() for c in doc.chunk_ids}
    stored = {p.chunk_id for tier in TIERS for p in services.store.scroll(tier)}
    assert stored == recorded
    per_tier = {t: 0 for t in TIERS}
    for doc in services.catalog.all_documents():
        per_tier[doc.tier] += len(doc.chunk_ids)
    assert health.json()["chunks"] == per_tier


# -- embedded store faults ----------------------------------------------------------------
@dataclass
class Fault:
    reason: str  # the `reason` code the API reports
    words: str  # words the message must hold
    inject: Callable[[], object]
    clear: Callable[[], object]
    settings: dict[str, object]


def missing(tmp_path: Path, mounts: Mounts, procs: list[subprocess.Popen[str]]) -> Fault:
    edge = tmp_path / "data" / "qdrant-edge"
    away = edge.with_name("qdrant-edge.moved")
    return Fault(
        "store_missing", "is missing", lambda: edge.rename(away), lambda: away.rename(edge), {}
    )


def read_only(tmp_path: Path, mounts: Mounts, procs: list[subprocess.Popen[str]]) -> Fault:
    edge = tmp_path / "data" / "qdrant-edge"
    if can_mount():
        return Fault(
            "store_read_only",
            "cannot be written",
            lambda: mounts.read_only(edge),
            lambda: mounts.unmount(edge),
            {},
        )
    if os.geteuid() != 0:
        return Fault(
            "store_read_only",
            "cannot be written",
            lambda: edge.chmod(0o555),
            lambda: edge.chmod(0o755),
            {},
        )
    pytest.skip("root without CAP_SYS_ADMIN: no way to make a directory read-only for root")


def disk_full(tmp_path: Path, mounts: Mounts, procs: list[subprocess.Popen[str]]) -> Fault:
    volume = tmp_path / "volume"
    volume.mkdir()
    # The ops DB stays off the full volume: this is the store's fault, not the database's.
    place = {
        "data_dir": volume / "data",
        "database_url": f"sqlite:///{tmp_path / 'ops.sqlite3'}",
    }
    if can_mount():
        mounts.tmpfs(volume, "128m")
        filler = volume / "filler"
        return Fault("store_full", "is full", lambda: fill_disk(filler), filler.unlink, place)
    # Injected at the OS boundary (no mount possible here): the filesystem reports no space
    # left, as statvfs does on a full disk.
    real = os.statvfs

    def no_space(path: Any) -> os.statvfs_result:
        s = real(path)
        return os.statvfs_result((s.f_bsize, s.f_frsize, s.f_blocks, 0, 0, *tuple(s)[5:]))

    patch = mock.patch.object(os, "statvfs", no_space)
    return Fault("store_full", "is full", patch.start, patch.stop, place)


def locked(tmp_path: Path, mounts: Mounts, procs: list[subprocess.Popen[str]]) -> Fault:
    edge = tmp_path / "data" / "qdrant-edge"

    def inject() -> None:
        # The directory is restored from a copy under the running service, and a second
        # process (say `ragops ingest`) opens it first.
        copy = edge.with_name("qdrant-edge.restored")
        shutil.copytree(edge, copy)
        edge.rename(edge.with_name("qdrant-edge.old"))
        copy.rename(edge)
        hold_store(edge, procs)

    def clear() -> None:
        holder = procs[-1]
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0

    return Fault("store_locked", "open in another process", inject, clear, {})


@pytest.mark.parametrize("make_fault", [missing, read_only, disk_full, locked])
def test_embedded_store_fault_is_a_503_and_clears_by_itself(
    tmp_path, corpora, embedder, mounts, processes, make_fault
):
    fault = make_fault(tmp_path, mounts, processes)
    settings = settings_for(tmp_path, **fault.settings)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        assert ingest(client, corpora["canteen"], "canteen")["status"] == "succeeded"
        expect_serving(client, services)

        fault.inject()
        expect_degraded(client, fault.reason, fault.words)
        job = ingest(client, corpora["gym"], "gym")
        assert job["status"] == "failed", job
        assert fault.words in job["error"] and "Traceback" not in job["error"]
        assert job["chunks_written"] == 0
        expect_degraded(client, fault.reason, fault.words)  # the process is still up

        fault.clear()
        # The same process, no restart: serving again, and nothing of the failed job anywhere.
        expect_serving(client, services)
        assert services.catalog.documents("gym") == {}
        assert services.store.count("internal", ChunkFilter(source="gym")) == 0
        # The job that failed runs now.
        assert ingest(client, corpora["gym"], "gym")["status"] == "succeeded"
        expect_serving(client, services)
        hits = client.post("/search", json=GYM_Q).json()["results"]
        assert hits[0]["doc_id"] == "hours.md"


def serve(tmp_path: Path, data: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `ragops serve` over `data` until it exits; its output and how long it took."""
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data),
        "RAG_DATABASE_URL": f"sqlite:///{tmp_path / 'serve-ops.sqlite3'}",
        "RAG_TIERS": json.dumps(TIERS),
        "RAG_PORT": str(free_port()),
        "RAG_SOURCES_FILE": str(tmp_path / "none.toml"),
        "RAG_SCHEDULER_ENABLED": "false",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, time.monotonic() - started


def test_serve_fails_fast_when_another_process_holds_the_store(tmp_path, processes):
    """At start-up a locked store is not a fault to ride out: `ragops serve` exits at once and
    says why (any other command hands its work to the server that holds the store)."""
    data = tmp_path / "data"
    hold_store(data / "qdrant-edge", processes)
    proc, took = serve(tmp_path, data)
    assert proc.returncode > 0, proc.returncode
    assert "is open in another process" in proc.stdout + proc.stderr
    assert took < 60


def test_serve_on_a_full_disk_exits_with_the_reason_not_a_crash(tmp_path, mounts):
    """Loading a shard allocates its index files through memory maps: on a full disk that was
    SIGBUS (the process killed, nothing said). Now start-up refuses with the reason."""
    if not can_mount():
        pytest.skip("needs CAP_SYS_ADMIN to mount a size-limited tmpfs")
    volume = tmp_path / "volume"
    volume.mkdir()
    mounts.tmpfs(volume, "128m")
    data = volume / "data"
    EdgeStore(data / "qdrant-edge", TIERS, 384).close()  # a store from an earlier run
    fill_disk(volume / "filler")
    proc, took = serve(tmp_path, data)
    assert proc.returncode > 0, (proc.returncode, proc.stderr[-2000:])  # < 0: killed by SIGBUS
    assert "the disk holding the embedded store" in proc.stderr and "is full" in proc.stderr
    assert took < 60


# -- Qdrant server unreachable ------------------------------------------------------------
UPDATED = {"operation_id": 0, "status": "completed"}


class QdrantStandIn:
    """A Qdrant REST server on a loopback port for the calls the store makes, backed by
    qdrant-client's local mode: the real qdrant-client HTTP path talks to it (it passes the
    store contract suite). `stop()` closes the port, `start()` opens it again with the data."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = QdrantClient(location=":memory:")
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                try:
                    status, payload = 200, stand_in.dispatch(self.command, self.path, body)
                except Exception as exc:
                    status, payload = 400, {"status": {"error": repr(exc)}, "time": 0.0}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                # One request per connection: once stopped, nothing answers on a kept-alive one.
                self.send_header("connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def dispatch(self, method: str, target: str, body: dict[str, Any]) -> Any:
        parts = [p for p in urlsplit(target).path.split("/") if p]
        if not parts:
            return {"title": "qdrant (test stand-in)", "version": "1.20.0"}
        return {"result": self._collections(method, parts[1:], body), "status": "ok", "time": 0}

    def _collections(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
        local = self.local
        if not parts:
            return {"collections": [{"name": c.name} for c in local.get_collections().collections]}
        name, call = parts[0], (method, "/".join(parts[1:]))
        if call == ("GET", "exists"):
            return {"exists": local.collection_exists(name)}
        if call == ("PUT", ""):
            spec = models.CreateCollection.model_validate(body)
            return local.create_collection(
                name, vectors_config=spec.vectors, sparse_vectors_config=spec.sparse_vectors
            )
        if call == ("PUT", "index"):
            return UPDATED  # local mode keeps no payload indexes
        if call == ("PUT", "points"):
            local.upsert(name, points=models.PointsList.model_validate(body).points)
            return UPDATED
        if call == ("POST", "points/delete"):
            local.delete(name, points_selector=models.FilterSelector.model_validate(body))
            return UPDATED
        if call == ("POST", "points/payload"):
            change = models.SetPayload.model_validate(body)
            assert change.filter is not None
            local.set_payload(
                name, payload=change.payload, points=models.FilterSelector(filter=change.filter)
            )
            return UPDATED
        if call == ("POST", "points/count"):
            count = models.CountRequest.model_validate(body)
            return {"count": local.count(name, count.filter, exact=bool(count.exact)).count}
        if call == ("POST", "points/scroll"):
            scroll = models.ScrollRequest.model_validate(body)
            records, offset = local.scroll(
                name,
                scroll_filter=scroll.filter,
                limit=scroll.limit or 10,
                offset=scroll.offset,
                with_payload=scroll.with_payload or False,
                with_vectors=scroll.with_vector or False,
            )
            points = [r.model_dump(mode="json") for r in records]
            return {"points": points, "next_page_offset": offset}
        if call == ("POST", "points"):
            ask = models.PointRequest.model_validate(body)
            records = local.retrieve(
                name,
                ids=ask.ids,
                with_payload=ask.with_payload or False,
                with_vectors=ask.with_vector or False,
            )
            return [r.model_dump(mode="json") for r in records]
        if call == ("POST", "points/query"):
            return self._query(name, models.QueryRequest.model_validate(body))
        if call == ("POST", "points/query/batch"):
            batch = models.QueryRequestBatch.model_validate(body)
            return [self._query(name, query) for query in batch.searches]
        raise ValueError(f"the stand-in does not serve {method} /collections/{'/'.join(parts)}")

    def _query(self, name: str, query: models.QueryRequest) -> Any:
        found = self.local.query_points(
            name,
            query=query.query,
            using=query.using,
            prefetch=query.prefetch,
            query_filter=query.filter,
            limit=query.limit or 10,
            with_payload=query.with_payload or False,
            with_vectors=query.with_vector or False,
        )
        return found.model_dump(mode="json")


def test_unreachable_qdrant_server_degrades_and_recovers(tmp_path, corpora, embedder):
    port = free_port()  # nothing listens: connections are refused
    settings = settings_for(tmp_path, store_backend="qdrant", qdrant_url=f"http://127.0.0.1:{port}")
    server = QdrantStandIn(port)
    try:
        # Unreachable at start-up: the service starts, degraded, instead of crashing.
        with TestClient(create_app(settings)) as client:
            services: Services = client.app.state.services  # type: ignore[attr-defined]
            words = f"cannot reach the Qdrant server at http://127.0.0.1:{port}"
            expect_degraded(client, "store_unreachable", words)
            job = ingest(client, corpora["canteen"], "canteen")
            assert job["status"] == "failed" and words in job["error"], job
            assert services.catalog.all_documents() == []

            server.start()  # the server comes up: collections are made, the job runs
            assert ingest(client, corpora["canteen"], "canteen")["status"] == "succeeded"
            expect_serving(client, services)

            server.stop()  # and goes away again at runtime
            expect_degraded(client, "store_unreachable", words)
            job = ingest(client, corpora["gym"], "gym")
            assert job["status"] == "failed" and words in job["error"], job

            server.start()  # back, with its data: the same process serves again
            expect_serving(client, services)
            assert services.catalog.documents("gym") == {}
            assert ingest(client, corpora["gym"], "gym")["status"] == "succeeded"
            expect_serving(client, services)
            hits = client.post("/search", json=GYM_Q).json()["results"]
            assert hits[0]["doc_id"] == "hours.md"
    finally:
        server.stop()
