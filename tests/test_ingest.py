"""Incremental, idempotent ingestion through the real store, model and ops database."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ingestion.runner import IngestRequest
from rag.retrieval.store import ChunkFilter
from rag.types import utc_now
from service.ingest import make_ingestor

pytestmark = pytest.mark.integration


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(
        root / "guides/setup.md",
        "# Setup\n\nInstall the agent with the installer. Then reboot the laptop.\n",
    )
    write(
        root / "guides/vpn.md",
        "# VPN\n\nThe VPN profile is called corp-tcp. It reconnects every twelve hours.\n",
    )
    write(root / "faq.txt", "The cafeteria opens at eight. Lunch is served until two.\n")
    return root


def snapshot(store, tier):
    return sorted((p.chunk_id, p.doc_id, p.text, p.version) for p in store.scroll(tier))


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_ingest_rerun_edit_delete(services_factory, docs_dir, db_url, backend):
    services = services_factory(database_url=db_url, store_backend=backend)
    ingestor = make_ingestor(services)
    request = IngestRequest("handbook", "internal", docs_dir, "90d")

    job = ingestor.run(request)
    assert job.status == "succeeded"
    assert job.counts == {"added": 3, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    first = snapshot(services.store, "internal")
    assert len(first) == job.chunks_written > 0
    assert {d for _, d, _, _ in first} == {"guides/setup.md", "guides/vpn.md", "faq.txt"}

    # Re-running changes nothing: same ids, same count, no duplicates, nothing re-embedded.
    again = ingestor.run(request)
    assert again.counts["unchanged"] == 3 and again.chunks_written == 0
    assert snapshot(services.store, "internal") == first

    # Edit one file, delete another.
    write(
        docs_dir / "guides/vpn.md",
        "# VPN\n\nThe VPN profile is now called corp-udp. It reconnects every eight hours.\n",
    )
    (docs_dir / "faq.txt").unlink()
    third = ingestor.run(request)
    assert third.counts == {"added": 0, "updated": 1, "unchanged": 1, "deleted": 1, "failed": 0}
    after = snapshot(services.store, "internal")
    texts = " ".join(t for _, _, t, _ in after)
    assert "corp-udp" in texts and "corp-tcp" not in texts and "cafeteria" not in texts
    assert {v for _, d, _, v in after if d == "guides/vpn.md"} == {2}
    states = services.catalog.documents("handbook")
    assert set(states) == {"guides/setup.md", "guides/vpn.md"}
    assert states["guides/vpn.md"].version == 2
    assert sorted(states["guides/vpn.md"].chunk_ids) == sorted(
        c for c, d, _, _ in after if d == "guides/vpn.md"
    )

    # The job history is in the ops database with per-file results.
    recorded = services.jobs.get(third.job_id)
    assert recorded is not None and recorded.status == "succeeded"
    assert {(f.path, f.status) for f in recorded.files} == {
        ("guides/setup.md", "unchanged"),
        ("guides/vpn.md", "updated"),
        ("faq.txt", "deleted"),
    }


def test_bad_files_fail_alone(services_factory, docs_dir, sqlite_url):
    write(docs_dir / "empty.md", "")
    write(docs_dir / "tool.exe", b"MZ\x00\x00")
    write(docs_dir / "broken.pdf", b"%PDF-1.4 garbage")
    write(docs_dir / "junk.txt", bytes(range(256)) * 10)
    services = services_factory(database_url=sqlite_url)
    job = make_ingestor(services).run(IngestRequest("handbook", "internal", docs_dir, "30d"))
    assert job.status == "succeeded"
    assert job.counts["added"] == 3 and job.counts["failed"] == 4
    reasons = {f.path: f.reason for f in job.files if f.status == "failed"}
    assert reasons["empty.md"] == "empty file"
    assert "unsupported file type '.exe'" in reasons["tool.exe"]
    assert "cannot parse pdf" in reasons["broken.pdf"]
    assert "binary content" in reasons["junk.txt"]
    assert {p.doc_id for p in services.store.scroll("internal")} == {
        "guides/setup.md",
        "guides/vpn.md",
        "faq.txt",
    }


def test_file_that_breaks_keeps_its_last_good_version(services_factory, docs_dir, sqlite_url):
    services = services_factory(database_url=sqlite_url)
    ingestor = make_ingestor(services)
    request = IngestRequest("handbook", "internal", docs_dir, "30d")
    ingestor.run(request)
    write(docs_dir / "faq.txt", bytes(range(256)) * 10)
    job = ingestor.run(request)
    assert job.counts["failed"] == 1 and job.counts["deleted"] == 0
    assert "faq.txt" in {p.doc_id for p in services.store.scroll("internal")}


def test_jsonl_corpus_with_bad_lines(services_factory, tmp_path, sqlite_url):
    corpus = tmp_path / "kb.jsonl"
    corpus.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "id": "kb/1",
                        "text": "Printers print double-sided by default.",
                        "modified_at": "2026-03-01T00:00:00Z",
                    }
                ),
                "not json at all",
                json.dumps({"id": "kb/3", "title": "no text"}),
                json.dumps(
                    {
                        "id": "kb/4",
                        "text": "Bike room opens at six.",
                        "metadata": {"team": "facilities"},
                    }
                ),
            ]
        )
    )
    services = services_factory(database_url=sqlite_url)
    job = make_ingestor(services).run(IngestRequest("kb", "community", corpus, "7d"))
    assert job.counts["added"] == 2 and job.counts["failed"] == 2
    failed = sorted(f.reason for f in job.files if f.status == "failed")
    assert failed[0].startswith("line 2: not valid JSON")
    assert failed[1] == "line 3: missing required field(s) text"
    payloads = {p.doc_id: p for p in services.store.scroll("community")}
    assert payloads["kb/1"].source_modified_at == "2026-03-01T00:00:00+00:00"
    assert payloads["kb/1"].tier == "community" and payloads["kb/1"].source == "kb"


def test_payload_is_tagged(services_factory, docs_dir, sqlite_url):
    services = services_factory(database_url=sqlite_url)
    os.utime(docs_dir / "faq.txt", (time.time(), 1_700_000_000))
    make_ingestor(services).run(IngestRequest("handbook", "internal", docs_dir, "2d"))
    p = next(p for p in services.store.scroll("internal") if p.doc_id == "faq.txt")
    assert p.source == "handbook" and p.tier == "internal" and p.version == 1
    assert p.source_modified_at.startswith("2023-11-14")
    from datetime import datetime

    ingested = datetime.fromisoformat(p.ingested_at)
    expires = datetime.fromisoformat(p.expires_at)
    assert (expires - ingested).days == 2
    assert p.title == "faq" and p.uri.startswith("file://")
    assert p.text == "The cafeteria opens at eight. Lunch is served until two."


def test_rerun_refreshes_expiry_of_unchanged_documents(services_factory, docs_dir, sqlite_url):
    services = services_factory(database_url=sqlite_url)
    ingestor = make_ingestor(services)
    ingestor.run(IngestRequest("handbook", "internal", docs_dir, "1s"))
    time.sleep(1.5)
    assert services.store.count("internal", ChunkFilter(live_at=utc_now())) == 0
    job = ingestor.run(IngestRequest("handbook", "internal", docs_dir, "1d"))
    assert job.counts["unchanged"] == 3
    assert services.store.count("internal", ChunkFilter(live_at=utc_now())) == services.store.count(
        "internal"
    )


def test_validation_rejects_bad_requests(services_factory, docs_dir, sqlite_url):
    ingestor = make_ingestor(services_factory(database_url=sqlite_url))
    with pytest.raises(ValueError, match="unknown tier 'secret'; allowed tiers: verified"):
        ingestor.validate(IngestRequest("s", "secret", docs_dir, "1d"))
    with pytest.raises(ValueError, match="invalid duration"):
        ingestor.validate(IngestRequest("s", "internal", docs_dir, "forever"))
    with pytest.raises(ValueError, match="does not exist"):
        ingestor.validate(IngestRequest("s", "internal", docs_dir / "nope", "1d"))
    ingestor.run(IngestRequest("s", "internal", docs_dir, "1d"))
    with pytest.raises(ValueError, match="keeps its tier"):
        ingestor.validate(IngestRequest("s", "verified", docs_dir, "1d"))


def test_duplicate_ids_in_a_corpus_keep_the_first(services_factory, tmp_path, sqlite_url):
    corpus = tmp_path / "dup.jsonl"
    corpus.write_text(
        json.dumps({"id": "x", "text": "First version of x."})
        + "\n"
        + json.dumps({"id": "y", "text": "Why not."})
        + "\n"
        + json.dumps({"id": "x", "text": "Second version of x."})
        + "\n"
    )
    services = services_factory(database_url=sqlite_url)
    job = make_ingestor(services).run(IngestRequest("dup", "community", corpus, "7d"))
    assert job.status == "succeeded"
    assert job.counts["added"] == 2 and job.counts["failed"] == 1
    assert [f.reason for f in job.files if f.status == "failed"] == [
        "duplicate document id 'x' (first at line 1)"
    ]
    texts = {p.doc_id: p.text for p in services.store.scroll("community")}
    assert texts["x"] == "First version of x."
