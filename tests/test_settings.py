"""Settings from the environment: list fields take a comma list or a JSON list."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value", ["verified,internal", " verified , internal ", '["verified", "internal"]']
)
def test_tiers_from_the_environment(monkeypatch, value):
    monkeypatch.setenv("RAG_TIERS", value)
    monkeypatch.setenv("RAG_INGEST_ROOTS", "/srv/docs,/srv/wiki,git+https://git.example.com/docs/")
    settings = Settings()
    assert settings.tiers == ["verified", "internal"]
    assert settings.ingest_folders == [Path("/srv/docs"), Path("/srv/wiki")]
    assert settings.ingest_urls == ["git+https://git.example.com/docs/"]


def test_malformed_json_list_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RAG_TIERS", '["verified",')
    with pytest.raises(ValidationError, match="tiers"):
        Settings()
