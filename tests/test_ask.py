"""/ask and /search end to end over the sample corpora: real model, store, ops DB, HTTP."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import REPO, make_settings
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.runner import IngestRequest
from rag.answering.confidence import ConfidenceModel, sigmoid
from rag.retrieval.store import ChunkFilter
from service.ingest import load_manifest, make_ingestor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("ask")
    settings = make_settings(tmp, sources_file=REPO / "corpora/sources.toml")
    with TestClient(create_app(settings)) as c:
        services = c.app.state.services  # type: ignore[attr-defined]
        ingestor = make_ingestor(services)
        for spec in load_manifest(settings.sources_file, settings.tiers):
            assert ingestor.run(spec.request("test")).status == "succeeded"
        yield c


def chunk_text(client: TestClient, chunk_id: str) -> str:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    for tier in store.tiers:
        for p in store.scroll(tier, ChunkFilter(chunk_ids=[chunk_id])):
            return p.text
    raise AssertionError(f"chunk {chunk_id} not in the store")


def assert_fully_cited(client: TestClient, body: dict) -> None:
    answer = body["answer"]
    # Every sentence ends with a marker; nothing stands outside "<quote> [n]" pairs.
    pieces = re.findall(r"(.+?) \[(\d+)\](?: |$)", answer)
    assert " ".join(f"{q} [{n}]" for q, n in pieces) == answer
    markers = {c["marker"]: c for c in body["citations"]}
    for quote, n in pieces:
        citation = markers[int(n)]
        assert citation["quote"] == quote
        assert quote in chunk_text(client, citation["chunk_id"])
        for key in ("doc_id", "tier", "source", "source_modified_at", "ingested_at", "age_days"):
            assert citation[key] is not None


@pytest.mark.parametrize(
    "question, doc_id, fact",
    [
        ("How many weeks of parental leave do parents get?", "leave-policy.pdf", "16 weeks"),
        (
            "How much are meals during business travel reimbursed per day?",
            "expense-policy.docx",
            "75 euros",
        ),
        # A paraphrase that shares few words with the policy's own wording.
        ("What is the daily limit for meals on business trips?", "expense-policy.docx", "75 euros"),
        ("When does the year-end release freeze start?", "release-freeze.eml", "14 December 2026"),
        ("How long must passwords be?", "security-policy.md", "14 characters"),
        (
            "What is the recovery time objective for the orders database?",
            "runbooks/database-failover.md",
            "15 minutes",
        ),
    ],
)
def test_answers_are_cited_from_the_right_document(client, question, doc_id, fact):
    body = client.post("/ask", json={"question": question}).json()
    assert body["refused"] is False, body
    assert fact in body["answer"]
    assert doc_id in {c["doc_id"] for c in body["citations"]}
    assert_fully_cited(client, body)
    assert body["trace_id"] and body["latency_ms"]["total"] > 0
    # The gate's evidence shows the answerability judge's score, and the shipped gate's
    # confidence is made of it alone: the judge is what answered.
    evidence, gate = body["evidence"], ConfidenceModel.load()
    assert evidence["judge_probability"] == pytest.approx(sigmoid(evidence["judge_max"]), abs=1e-4)
    logit = gate.bias + gate.weights["judge_max"] * evidence["judge_max"]
    assert body["confidence"] == pytest.approx(sigmoid(logit), abs=1e-3)
    assert body["confidence"] >= body["threshold"]


@pytest.mark.parametrize(
    "question, reason, detail",
    [
        ("What is the capital of France?", "not_covered", "mentions: France"),
        ("How do I fail over the MySQL database?", "not_covered", "mentions: MySQL"),
        (
            "How many days of annual leave do part-time employees in Germany get?",
            "not_covered",
            "mentions: Germany",
        ),
        ("Who won the football World Cup in 2018?", "not_covered", "mentions: World, Cup, 2018"),
        ("What is the dress code for the summer party?", "low_confidence", "below the threshold"),
    ],
)
def test_unanswerable_questions_are_refused_with_a_reason(client, question, reason, detail):
    body = client.post("/ask", json={"question": question}).json()
    assert body["refused"] is True and body["answer"] is None
    assert body["refusal_reason"] == reason
    assert detail in body["refusal_detail"]
    if reason == "low_confidence":
        assert (
            f"confidence {body['confidence']:.3f} is below the threshold " in body["refusal_detail"]
        )
    assert body["citations"] == []
    closest = body["closest_sources"]
    assert closest and {c["note"] for c in closest} == {"not an answer"}


def test_not_covered_looks_at_every_document_of_the_tiers_searched_and_no_other(client):
    # "Lukas Brandt" is named only in the internal on-call rota.
    question = "Which weeks is Lukas Brandt on call as the escalation contact for payroll?"
    narrow = client.post("/ask", json={"question": question, "tiers": ["verified"]}).json()
    assert narrow["refusal_reason"] == "not_covered"
    assert narrow["refusal_detail"] == "no document in the tiers searched mentions: Lukas, Brandt"
    wide = client.post("/ask", json={"question": question}).json()
    assert wide["refusal_reason"] != "not_covered"
    assert "Lukas" not in (wide["refusal_detail"] or "").split("mentions:")[-1]


def test_a_code_no_document_mentions_is_not_covered_however_well_its_neighbours_read(client):
    # The rota has weeks 2026-W47 to W49: W50's question reads like W47's row.
    ask = "Who is the primary on-call engineer in week 2026-{}?"
    known = client.post("/ask", json={"question": ask.format("W47")}).json()
    assert not known["refused"] and "Amara Okafor" in known["answer"]
    unknown = client.post("/ask", json={"question": ask.format("W50")}).json()
    assert unknown["refusal_reason"] == "not_covered", unknown["answer"]
    assert unknown["refusal_detail"] == "no document in the tiers searched mentions: 2026-W50"


def test_query_log_records_the_trace(client):
    body = client.post("/ask", json={"question": "How long must passwords be?"}).json()
    trace = client.app.state.services.query_log.get(body["trace_id"])  # type: ignore[attr-defined]
    assert trace.outcome == "answered" and trace.question == "How long must passwords be?"
    assert {c["chunk_id"] for c in trace.cited} == {c["chunk_id"] for c in body["citations"]}
    assert set(trace.latency_ms) == {"embed", "retrieve", "rerank", "judge", "answer", "total"}


def test_the_hits_report_shows_every_stage_with_the_judge(client):
    client.post("/ask", json={"question": "How many weeks of parental leave do parents get?"})
    hits = client.get("/reports/hits").json()
    assert list(hits["latency_ms"]) == ["embed", "retrieve", "rerank", "judge", "answer", "total"]
    judge = hits["latency_ms"]["judge"]
    assert 0 < judge["p50"] <= judge["p95"] <= hits["latency_ms"]["total"]["p95"]
    page = client.get("/dashboard").text
    assert 'data-figure="p95:judge"' in page and 'data-figure="p50:judge"' in page


ASK_KEYS = {
    "question",
    "refused",
    "refusal_reason",
    "refusal_message",
    "refusal_detail",
    "answer",
    "confidence",
    "threshold",
    "evidence",
    "citations",
    "retrieved",
    "closest_sources",
    "tiers",
    "generator",
    "latency_ms",
    "trace_id",
}
CITATION_KEYS = {
    "marker",
    "doc_id",
    "chunk_id",
    "quote",
    "tier",
    "source",
    "title",
    "section",
    "uri",
    "source_modified_at",
    "ingested_at",
    "age_days",
}
GENERATOR_KEYS = {
    "kind",
    "provider",
    "prompt_version",
    "tokens_in",
    "tokens_out",
    "cost",
    "fallback_reason",
    # Beyond DESIGN.md §3: each provider tried, the sentences the verifier removed, the chunks
    # screened out as prompt injection (empty lists on the extractive path).
    "attempts",
    "dropped_sentences",
    "screened_chunks",
}
# The contract's row (DESIGN.md §3) plus the evidence behind its score (the ask page shows it).
RETRIEVED_KEYS = {"doc_id", "chunk_id", "score", "tier", "source", "dense", "bm25", "judge"}


def test_ask_json_keeps_the_contract_shape(client):
    answered = client.post("/ask", json={"question": "How long must passwords be?"}).json()
    refused = client.post("/ask", json={"question": "What is the capital of France?"}).json()
    assert not answered["refused"] and refused["refused"]
    for body in (answered, refused):
        assert set(body) == ASK_KEYS
        assert set(body["generator"]) == GENERATOR_KEYS
        assert body["generator"]["kind"] == "extractive"
        assert body["retrieved"] and all(set(r) == RETRIEVED_KEYS for r in body["retrieved"])
    assert answered["citations"] and all(set(c) == CITATION_KEYS for c in answered["citations"])
    assert answered["closest_sources"] == [] and refused["citations"] == []
    assert refused["closest_sources"] and all(
        set(c) == RETRIEVED_KEYS | {"title", "note"} and c["note"] == "not an answer"
        for c in refused["closest_sources"]
    )
    assert set(answered["latency_ms"]) == {
        "embed",
        "retrieve",
        "rerank",
        "judge",
        "answer",
        "total",
    }


def test_search_returns_ranked_chunks(client):
    body = client.post("/search", json={"question": "VPN disconnects", "top_k": 3}).json()
    assert 0 < len(body["results"]) <= 3
    assert set(body) == {"question", "tiers", "results", "latency_ms"}
    hit_keys = RETRIEVED_KEYS | {"title", "section", "text"}
    hit_keys |= {"uri", "source_modified_at", "ingested_at", "expires_at", "age_days"}
    assert all(set(r) == hit_keys for r in body["results"])


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"question": ""}, "at least 1 character"),
        ({"question": "   "}, "must not be blank"),
        ({"question": "\x00\x1b\n"}, "must not be blank"),
        ({"question": "x" * 2001}, "at most 2000 characters"),
        ({"question": "ok?", "top_k": 0}, "greater than or equal to 1"),
        ({"question": "ok?", "tiers": ["secret"]}, "unknown tier(s) secret"),
    ],
)
def test_bad_requests_are_422_with_a_message(client, payload, message):
    response = client.post("/ask", json=payload)
    assert response.status_code == 422
    assert message in response.text


def test_a_json_body_sent_as_a_form_is_told_its_content_type(client):
    # What `curl -d '{...}'` sends when no Content-Type is given.
    body = '{"question": "How long must passwords be?"}'
    sent = "application/x-www-form-urlencoded"
    response = client.post("/ask", content=body, headers={"Content-Type": sent})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "the body must be a JSON object sent with Content-Type: application/json "
        f"(this request's: {sent})"
    )
    typed = client.post("/ask", content=body, headers={"Content-Type": "application/json"})
    assert typed.status_code == 200 and not typed.json()["refused"]


def test_key_scoped_to_verified_never_sees_internal(client):
    services = client.app.state.services  # type: ignore[attr-defined]
    created = services.keys.create("policy-bot", ["verified"])
    headers = {"Authorization": f"Bearer {created.key}"}
    try:
        for question in (
            "When does the year-end release freeze start?",
            "How long must passwords be?",
        ):
            body = client.post("/ask", json={"question": question}, headers=headers).json()
            assert body["retrieved"], body  # the subset check below must not pass on nothing
            tiers = {c["tier"] for c in body["citations"]} | {r["tier"] for r in body["retrieved"]}
            tiers |= {c["tier"] for c in body["closest_sources"]}
            assert tiers <= {"verified"}, body
        # The password rule is in the verified security policy: the key is served an answer.
        assert "security-policy.md" in {c["doc_id"] for c in body["citations"]}, body
        search = client.post("/search", json={"question": "release freeze"}, headers=headers).json()
        assert search["results"] and {r["tier"] for r in search["results"]} <= {"verified"}
        forbidden = client.post(
            "/ask", json={"question": "x?", "tiers": ["internal"]}, headers=headers
        )
        assert forbidden.status_code == 403 and "may not read tier(s) internal" in forbidden.text
        assert client.post("/ask", json={"question": "x?"}).status_code == 401
        wrong = {"Authorization": "Bearer rgo_not-a-key"}
        assert client.post("/ask", json={"question": "x?"}, headers=wrong).status_code == 401
    finally:
        from sqlalchemy import delete

        from rag.ops.db import api_keys

        with services.engine.begin() as conn:
            conn.execute(delete(api_keys))


def test_expired_chunks_are_never_served(client, tmp_path: Path):
    services = client.app.state.services  # type: ignore[attr-defined]
    folder = tmp_path / "flash"
    folder.mkdir()
    (folder / "sale.md").write_text(
        "# Flash sale\n\nThe zebra-striped mugs cost 3 euros today only.\n"
    )
    make_ingestor(services).run(IngestRequest("flash", "community", folder, "4s"))
    question = {"question": "How much do the zebra-striped mugs cost?"}
    first = client.post("/search", json=question).json()
    assert "sale.md" in {r["doc_id"] for r in first["results"]}
    time.sleep(4.5)
    later = client.post("/search", json=question).json()
    assert "sale.md" not in {r["doc_id"] for r in later["results"]}
    answer = client.post("/ask", json=question).json()
    assert "sale.md" not in {c["doc_id"] for c in answer["citations"]}
    assert "sale.md" not in {c["doc_id"] for c in answer["closest_sources"]}


def test_control_characters_in_a_question_are_cleaned_on_every_database(services_factory, db_url):
    """PostgreSQL cannot store NUL in text: a question carrying one was a 500 on the query log."""
    services = services_factory(database_url=db_url)
    result = services.asker.ask("How long\x00 must passwords be?\x1b[0m 🔐", ["verified"])
    assert result.question == "How long  must passwords be? [0m 🔐"
    trace = services.query_log.get(result.trace_id)
    assert trace is not None and trace.question == result.question
