"""The dashboard in a real headless Chromium: the figures it shows match the JSON reports.

Runs when Debian's `chromium` is installed (`make test` installs it when missing); the
screenshot is saved under the test's tmp dir for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from html import unescape

import httpx
import pytest
import uvicorn
from conftest import REPO, free_port, make_settings

from api.main import create_app
from service.ingest import load_manifest, make_ingestor

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def server(tmp_path, embedder):  # type: ignore[no-untyped-def]
    settings = make_settings(
        tmp_path, sources_file=REPO / "corpora/sources.toml", scheduler_enabled=False
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    services = app.state.services
    ingestor = make_ingestor(services)
    for spec in load_manifest(settings.sources_file, settings.tiers):
        ingestor.run(spec.request("test"))
    for q in (
        "How long must passwords be?",
        "What is the capital of France?",
        "What is the capital of France",
        "When does the release freeze start?",
    ):
        httpx.post(f"{base}/ask", json={"question": q}, timeout=30)
    yield base
    srv.should_exit = True
    thread.join(timeout=10)


def test_dashboard_figures_match_reports(server, tmp_path):
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"{server}/dashboard"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    shown = {
        name: unescape(value) for name, value in re.findall(r'data-figure="([^"]+)">([^<]*)<', dom)
    }
    hits = httpx.get(f"{server}/reports/hits").json()
    fresh = httpx.get(f"{server}/reports/freshness").json()
    assert shown["asks"] == str(hits["asks"]) == "4"
    assert shown["answered"] == str(hits["answered"])
    assert shown["refused"] == str(hits["refused"]) == "2"
    assert shown["answer_rate"] == f"{hits['answer_rate']:.1%}"
    assert shown["overdue_count"] == str(len(fresh["overdue_sources"]))
    assert shown["never_retrieved"] == str(hits["never_retrieved"]["count"])
    for source in fresh["sources"]:
        name = source["source"]
        assert shown[f"documents:{name}"] == str(source["documents"])
        assert shown[f"chunks:{name}"] == str(source["chunks"])
        assert shown[f"unswept:{name}"] == str(source["chunks_expired_unswept"])
    for tier in fresh["tiers"]:
        assert shown[f"tier_chunks:{tier['tier']}"] == str(tier["chunks"])
    assert "Knowledge gaps" in dom and "What is the capital of France" in dom
    assert shown["p95:total"] == f"{hits['latency_ms']['total']['p95']:.1f}"
    assert "<svg" in dom  # charts rendered inline, no network

    shot = tmp_path / "dashboard.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1400,1800",
            f"--screenshot={shot}",
            f"{server}/dashboard",
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")
