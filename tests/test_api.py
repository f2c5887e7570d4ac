"""The HTTP API over real services (embedded store, SQLite ops DB, the real model)."""

from __future__ import annotations

import pytest
from conftest import make_settings
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.runner import IngestRequest
from service.ingest import make_ingestor

pytestmark = pytest.mark.integration


def test_health_and_sources(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nThe deploy window is Tuesday afternoon.\n")
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        make_ingestor(services).run(IngestRequest("handbook", "internal", docs, "30d"))
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["chunks"]["internal"] == 1
        sources = client.get("/sources").json()
        assert sources[0]["name"] == "handbook" and sources[0]["documents"] == 1
        assert sources[0]["chunks"] == 1 and sources[0]["last_success_at"]
