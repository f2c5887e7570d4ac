"""`RagopsRetriever` (rag/integrations/llamaindex.py) against a real ragops over HTTP: uvicorn on
loopback, two tiers ingested, API keys scoped by tier. LlamaIndex runs offline (conftest refuses
every non-loopback connection)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import REPO, make_settings, serve_on_loopback

from api.limits import RateLimiter
from api.main import create_app
from ingestion.runner import IngestRequest
from rag.integrations.llamaindex import (
    METADATA_KEYS,
    RagopsAuthError,
    RagopsError,
    RagopsRateLimitedError,
    RagopsRequestError,
    RagopsRetriever,
    RagopsUnavailableError,
)
from service.ingest import make_ingestor

pytestmark = pytest.mark.integration

QUESTION = "How many days is the refund window?"
MODIFIED = datetime.now(UTC) - timedelta(days=10)

VERIFIED_DOC = (
    "# Refund policy\n\n## Window\n\n"
    "Customers may request a refund within 30 days of purchase. "
    "Refunds go back to the original payment method.\n"
)
INTERNAL_DOC = (
    "# Enterprise refunds\n\n## Exceptions\n\n"
    "For enterprise customers the refund window is 45 days, approved by finance. "
    "Sales must open a ticket before promising a refund.\n"
)


@pytest.fixture(scope="module")
def ragops(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    """A running ragops: `policies` (verified) and `finance` (internal) ingested; keys for one
    tier (`internal`) and for both."""
    tmp = tmp_path_factory.mktemp("llamaindex")
    folders = {"verified": tmp / "policies", "internal": tmp / "finance"}
    for tier, text in (("verified", VERIFIED_DOC), ("internal", INTERNAL_DOC)):
        folders[tier].mkdir()
        path = folders[tier] / "refunds.md"
        path.write_text(text)
        os.utime(path, (MODIFIED.timestamp(), MODIFIED.timestamp()))
    app = create_app(make_settings(tmp, rate_limit_per_min=0))
    with serve_on_loopback(app) as url:
        services = app.state.services
        ingest = make_ingestor(services)
        for source, tier in (("policies", "verified"), ("finance", "internal")):
            job = ingest.run(IngestRequest(source, tier, folders[tier], "30d"))
            assert job.status == "succeeded" and job.counts["added"] == 1, job
        yield {
            "url": url,
            "app": app,
            "internal_key": services.keys.create("finance-bot", ["internal"]).key,
            "all_key": services.keys.create("support-bot", ["verified", "internal"]).key,
        }


def _search(ragops, key: str, **body) -> dict:  # type: ignore[no-untyped-def]
    response = httpx.post(
        f"{ragops['url']}/search",
        json={"question": QUESTION, **body},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_nodes_carry_the_chunk_its_metadata_and_a_citation(ragops):
    raw = _search(ragops, ragops["internal_key"], top_k=5)["results"]
    with RagopsRetriever(ragops["url"], ragops["internal_key"], top_k=5) as retriever:
        nodes = retriever.retrieve(QUESTION)

    assert [n.node.node_id for n in nodes] == [h["chunk_id"] for h in raw] != []
    assert [n.score for n in nodes] == [h["score"] for h in raw]
    for n, hit in zip(nodes, raw):
        meta = n.node.metadata
        assert set(meta) == set(METADATA_KEYS)
        assert n.node.get_content() == hit["text"]
        assert meta["chunk_id"] == n.node.node_id and n.node.ref_doc_id == hit["doc_id"]
        for key in ("tier", "source", "doc_id", "title", "section", "dense", "bm25"):
            assert meta[key] == hit[key], key

    top = nodes[0]
    meta = top.node.metadata
    assert "refund window is 45 days" in top.node.get_content()
    assert (meta["tier"], meta["source"], meta["doc_id"]) == ("internal", "finance", "refunds.md")
    assert (meta["title"], meta["section"]) == (
        "Enterprise refunds",
        "Enterprise refunds > Exceptions",
    )
    assert meta["citation"].startswith(
        "Enterprise refunds > Exceptions — refunds.md (tier internal, source finance"
    )
    # The LLM sees the citation with the text, not the ids and raw scores.
    prompt_text = top.node.get_content(metadata_mode="llm")
    assert meta["citation"] in prompt_text and meta["chunk_id"] not in prompt_text


def test_nodes_carry_uri_dates_and_age(ragops):
    retriever = RagopsRetriever(ragops["url"], ragops["internal_key"])
    meta = retriever.retrieve(QUESTION)[0].node.metadata
    assert meta["uri"] and meta["uri"].endswith("refunds.md")
    assert datetime.fromisoformat(meta["source_modified_at"]) == pytest.approx(
        MODIFIED, abs=timedelta(seconds=2)
    )
    ingested = datetime.fromisoformat(meta["ingested_at"])
    assert abs(datetime.now(UTC) - ingested) < timedelta(minutes=10)
    expires = datetime.fromisoformat(meta["expires_at"])
    assert abs(expires - ingested - timedelta(days=30)) < timedelta(minutes=1)
    assert meta["age_days"] == pytest.approx(10.0, abs=0.1)
    assert f"modified {MODIFIED.date().isoformat()}" in meta["citation"]
    assert "days old" in meta["citation"] and meta["uri"] in meta["citation"]


def test_the_keys_tier_scope_is_respected(ragops):
    # The verified policy answers the question too: a key that may read both tiers gets it...
    both = RagopsRetriever(ragops["url"], ragops["all_key"], top_k=10).retrieve(QUESTION)
    assert {n.node.metadata["tier"] for n in both} == {"verified", "internal"}
    # ...a key scoped to `internal` never does, however many results it asks for.
    scoped = RagopsRetriever(ragops["url"], ragops["internal_key"], top_k=50)
    nodes = scoped.retrieve(QUESTION)
    assert nodes and {n.node.metadata["tier"] for n in nodes} == {"internal"}
    verified_ids = {n.node.node_id for n in both if n.node.metadata["tier"] == "verified"}
    assert verified_ids and not verified_ids & {n.node.node_id for n in nodes}

    # Asking for the forbidden tier is the service's 403, with its message.
    narrowed = RagopsRetriever(ragops["url"], ragops["internal_key"], tiers=["verified"])
    with pytest.raises(RagopsAuthError) as err:
        narrowed.retrieve(QUESTION)
    assert err.value.status_code == 403
    assert "may not read tier(s) verified" in str(err.value)
    # ...while narrowing within the scope works.
    own = RagopsRetriever(ragops["url"], ragops["all_key"], tiers=["verified"], top_k=10)
    assert {n.node.metadata["tier"] for n in own.retrieve(QUESTION)} == {"verified"}


def test_a_bad_key_raises_the_services_message(ragops):
    retriever = RagopsRetriever(ragops["url"], "rk_not-a-key")
    with pytest.raises(RagopsAuthError) as err:
        retriever.retrieve(QUESTION)
    assert err.value.status_code == 401 and err.value.message == "invalid API key"
    assert not isinstance(err.value, httpx.HTTPError)
    with pytest.raises(RagopsAuthError, match="invalid API key"):
        asyncio.run(retriever.aretrieve(QUESTION))
    with pytest.raises(RagopsAuthError, match="missing API key"):
        RagopsRetriever(ragops["url"]).retrieve(QUESTION)


def test_invalid_requests_raise_the_services_validation_message(ragops):
    key = ragops["internal_key"]
    with pytest.raises(RagopsRequestError) as err:
        RagopsRetriever(ragops["url"], key, top_k=51).retrieve(QUESTION)
    assert err.value.status_code == 422 and err.value.message.startswith("top_k: ")
    with pytest.raises(RagopsRequestError, match="unknown tier"):
        RagopsRetriever(ragops["url"], key, tiers=["gossip"]).retrieve(QUESTION)
    with pytest.raises(RagopsRequestError, match=r"question: .*blank"):
        RagopsRetriever(ragops["url"], key).retrieve("\x00 ")


def test_rate_limited_key_raises_with_retry_after(ragops):
    app = ragops["app"]
    unlimited = app.state.rate_limiter
    app.state.rate_limiter = RateLimiter(per_minute=1, burst=1)
    try:
        retriever = RagopsRetriever(ragops["url"], ragops["internal_key"])
        assert retriever.retrieve(QUESTION)
        with pytest.raises(RagopsRateLimitedError) as err:
            retriever.retrieve(QUESTION)
    finally:
        app.state.rate_limiter = unlimited
    assert err.value.status_code == 429 and err.value.retry_after is not None
    assert 1 <= err.value.retry_after <= 60


def test_unreachable_service_and_service_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    with pytest.raises(RagopsUnavailableError) as err:
        RagopsRetriever(closed, "k", timeout=5).retrieve(QUESTION)
    assert err.value.status_code is None and "could not reach" in str(err.value)

    # The store being down is a 503 with a reason (rag.retrieval.store.base.StoreError's contract).
    def down(request: httpx.Request) -> httpx.Response:
        body = {"detail": "the embedded store is open in another process", "reason": "store_locked"}
        return httpx.Response(503, json=body)

    client = httpx.Client(transport=httpx.MockTransport(down))
    with pytest.raises(RagopsUnavailableError) as err:
        RagopsRetriever("http://ragops.test", "k", http_client=client).retrieve(QUESTION)
    assert (err.value.status_code, err.value.reason) == (503, "store_locked")
    assert "open in another process" in str(err.value)
    # Something that is not ragops answering 200 is an error too, not an empty result.
    html = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(RagopsError, match="unexpected /search response"):
        RagopsRetriever(
            "http://ragops.test", "k", http_client=httpx.Client(transport=html)
        ).retrieve(QUESTION)


def test_async_retrieve_matches_sync(ragops):
    retriever = RagopsRetriever(ragops["url"], ragops["all_key"], top_k=4)
    sync = retriever.retrieve(QUESTION)
    nodes = asyncio.run(retriever.aretrieve(QUESTION))
    assert [(n.node.node_id, n.score) for n in nodes] == [(n.node.node_id, n.score) for n in sync]
    assert [n.node.metadata for n in nodes] == [n.node.metadata for n in sync]


def test_plugs_into_a_llamaindex_query_engine_offline(ragops):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    retriever = RagopsRetriever(ragops["url"], ragops["internal_key"], top_k=3)
    # MockLLM without max_tokens answers with its prompt: what the LLM would have been shown.
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUESTION)
    expected = retriever.retrieve(QUESTION)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in expected]
    prompt = str(response)
    assert "refund window is 45 days" in prompt and QUESTION in prompt
    assert expected[0].node.metadata["citation"] in prompt
    assert "within 30 days of purchase" not in prompt  # the verified tier stayed out
    assert asyncio.run(engine.aquery(QUESTION)).source_nodes[0].node.node_id == (
        expected[0].node.node_id
    )


def test_ragops_imports_without_llama_index():
    code = (
        "import sys\n"
        "sys.modules['llama_index'] = None\n"  # as if llama-index-core were not installed
        "import rag, rag.integrations, api.main, api.cli, service.ingest\n"
        "try:\n"
        "    from rag.integrations import RagopsRetriever\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        'IMPORT-ERROR rag.integrations.llamaindex needs llama-index-core: pip install "ragops[llamaindex]"'
        in done.stdout
    )
