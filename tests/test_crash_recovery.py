"""kill -9 during ingestion, then run again: the store ends as an uninterrupted run leaves it.

The real CLI runs in a child process over its own data dir (embedded store, SQLite ops DB);
the test kills it with SIGKILL at a seeded random moment of its job, re-runs it, and compares
store and catalog with a run that was never interrupted. A scheduler restart must neither lose
nor double schedules.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAGOPS = str(Path(sys.executable).parent / "ragops")
BATCH = 64  # the runner writes (and records progress) a batch of documents at a time
ROWS = 5 * BATCH
# (the batch being written when the kill lands, seed of the moment within it): before the
# first write, early, late and in the last batch, where the job is about to finish.
KILLS = [(0, 11), (1, 23), (3, 37), (4, 41)]


def corpus(path: Path) -> Path:
    rng = random.Random(7)
    words = "ledger invoice harbour lantern quarry meadow orbit violet cobalt ember".split()
    with path.open("w") as handle:
        for i in range(ROWS):
            filler = " ".join(rng.choice(words) for _ in range(30))
            text = (
                f"Record {i} describes item number {i * 7}. {filler}.\n\nIts owner is team {i % 9}."
            )
            handle.write(json.dumps({"id": f"doc-{i:04d}", "text": text}) + "\n")
    return path


def env_for(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RAG_DATA_DIR=str(data_dir),
        RAG_SOURCES_FILE=str(data_dir / "none.toml"),
        RAG_DATABASE_URL="",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def ingest_cmd(path: Path) -> list[str]:
    return [RAGOPS, "ingest", str(path), "--source", "crash", "--tier", "internal", "--json"]


def run_to_end(path: Path, data_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        ingest_cmd(path), env=env_for(data_dir), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def job_rows(data_dir: Path) -> list[tuple[str, str, int, str | None]]:
    with sqlite3.connect(data_dir / "ops.sqlite3", timeout=5) as conn:
        return list(
            conn.execute(
                "SELECT id, status, files_done, error FROM ingest_jobs ORDER BY created_at"
            )
        )


@dataclass
class Snapshot:
    chunks: list[tuple[str, str, str, int]]  # chunk id, doc id, content hash, version
    catalog_ids: list[str]  # every chunk id the catalog's documents claim
    versions: dict[str, int]
    bm25: tuple[int, float]  # the tier's chunk count and token total


def snapshot(data_dir: Path) -> Snapshot:
    from service.container import Services

    services = Services(make_settings(data_dir.parent, data_dir=data_dir))
    try:
        chunks = sorted(
            (p.chunk_id, p.doc_id, p.content_hash, p.version)
            for p in services.store.scroll("internal")
        )
        docs = services.catalog.documents("crash")
        with services.engine.connect() as conn:
            from sqlalchemy import text

            row = conn.execute(
                text("SELECT doc_count, total_length FROM bm25_stats WHERE tier = 'internal'")
            ).one()
        return Snapshot(
            chunks=chunks,
            catalog_ids=sorted(cid for d in docs.values() for cid in d.chunk_ids),
            versions={d.doc_id: d.version for d in docs.values()},
            bm25=(int(row[0]), round(float(row[1]), 3)),
        )
    finally:
        services.close()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Snapshot, float]:
    """The uninterrupted run: its store, and how long its job ran (where kills may land)."""
    from datetime import datetime

    root = tmp_path_factory.mktemp("crash-baseline")
    path = corpus(root / "corpus.jsonl")
    job = run_to_end(path, root / "data")
    assert job["status"] == "succeeded" and job["counts"]["added"] == ROWS
    ran = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    return path, snapshot(root / "data"), ran.total_seconds()


@pytest.mark.parametrize(("batch", "seed"), KILLS)
def test_kill_9_mid_ingestion_then_rerun_matches_an_uninterrupted_run(
    baseline, tmp_path, batch, seed
):
    path, expected, job_seconds = baseline
    data_dir = tmp_path / "data"
    rng = random.Random(seed)
    child = subprocess.Popen(
        ingest_cmd(path), env=env_for(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # Wait until the job has recorded the batches before `batch`, then kill at a seeded moment
    # within the next one. The moment is placed by the job's own progress, not by a wall-clock
    # time: the baseline's timing, measured under another load, only scales the small offset
    # into the batch (at most half a batch's time), so a faster run still dies mid-job.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (data_dir / "ops.sqlite3").exists():
            try:
                rows = job_rows(data_dir)
                if any(st == "running" and done >= batch * BATCH for _, st, done, _ in rows):
                    break
            except sqlite3.OperationalError:
                pass  # the schema is being created
        assert child.poll() is None, child.stderr.read().decode()[-2000:] if child.stderr else ""
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.5) * job_seconds * BATCH / ROWS)
    if child.poll() is not None:
        pytest.fail(f"batch {batch}: the job finished before the kill; shorten the delay")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_id, status, files_done, _ = job_rows(data_dir)[0]
    assert status == "running"  # nobody could mark it: the process died mid-job
    print(f"batch {batch}: killed after {files_done} of {ROWS} documents")

    job = run_to_end(path, data_dir)
    assert job["status"] == "succeeded"
    rows = {job_id: (st, err) for job_id, st, _, err in job_rows(data_dir)}
    assert rows[killed_id][0] == "failed" and "interrupted" in (rows[killed_id][1] or "")

    got = snapshot(data_dir)
    assert len(got.chunks) == len(expected.chunks)
    assert got.chunks == expected.chunks  # same ids, same content, no duplicates
    assert got.catalog_ids == [c[0] for c in got.chunks]  # no orphans either way
    assert got.versions == expected.versions
    assert got.bm25 == expected.bm25  # length totals count every document once


def test_scheduler_restart_neither_loses_nor_doubles_schedules(services_factory, tmp_path):
    from service.host import IngestionHost

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nThe archive room opens on Mondays.\n")
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "".join(
            f'[[source]]\nname = "s{i}"\npath = "docs"\ntier = "internal"\n'
            f'schedule = "every {i + 1}h"\n\n'
            for i in range(3)
        )
    )

    def schedules(services: Any) -> list[tuple[str, str]]:
        with services.engine.connect() as conn:
            from sqlalchemy import text

            return sorted(
                (str(r[0]), str(r[1]))
                for r in conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs"))
            )

    for restart in range(3):
        services = services_factory(sources_file=sources)
        host = IngestionHost(services)
        host.start(schedule=True)
        try:
            ids = [job_id for job_id, _ in schedules(services)]
            assert ids == ["source:s0", "source:s1", "source:s2", "sweep"], f"restart {restart}"
            if restart == 0:
                first = schedules(services)
            else:
                # The persisted next run times survive: a restart does not push them back.
                assert dict(schedules(services))["source:s2"] == dict(first)["source:s2"]
        finally:
            host.stop()
            services.close()
    # A source dropped from the manifest loses its schedule on the next start.
    sources.write_text(sources.read_text().split('[[source]]\nname = "s2"')[0])
    services = services_factory(sources_file=sources)
    host = IngestionHost(services)
    host.start(schedule=True)
    try:
        assert [job_id for job_id, _ in schedules(services)] == ["source:s0", "source:s1", "sweep"]
    finally:
        host.stop()
        services.close()
