"""Answer feedback end to end: rate asks over HTTP and the CLI under the tier rule, see the
ratings in the hits report and dashboard, export them as a dataset and run it with `ragops eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ALPHA, BETA, make_settings, two_tier_sources
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.runner import IngestRequest
from rag.ops.feedback import FeedbackError, FeedbackLog, Rating, dataset_row
from service.ingest import make_ingestor

pytestmark = pytest.mark.integration

RAGOPS = str(Path(sys.executable).with_name("ragops"))


def ragops(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    return subprocess.run([RAGOPS, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def world(tmp_path, embedder):  # type: ignore[no-untyped-def]
    verified, internal = two_tier_sources(tmp_path)
    settings = make_settings(tmp_path, scheduler_enabled=False)
    return tmp_path, settings, verified, internal


def test_ratings_follow_the_tier_rule_reach_the_report_and_round_trip_to_eval(world):
    tmp_path, settings, verified, internal = world
    with TestClient(create_app(settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        ingestor = make_ingestor(services)
        ingestor.run(IngestRequest("ops", "verified", verified, "30d"))
        ingestor.run(IngestRequest("infra", "internal", internal, "30d"))
        narrow = {"Authorization": f"Bearer {services.keys.create('n', ['verified']).key}"}
        wide_key = services.keys.create("w", ["verified", "internal"]).key
        wide = {"Authorization": f"Bearer {wide_key}"}

        def ask(question: str, headers: dict[str, str]) -> dict:
            response = client.post("/ask", json={"question": question}, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()

        def rate(headers: dict[str, str], **body: object) -> tuple[int, dict]:
            response = client.post("/feedback", json=body, headers=headers)
            return response.status_code, response.json()

        beta = ask(BETA, wide)  # answered from the internal tier
        alpha = ask(ALPHA, narrow)
        refused = ask("Who won the 1998 World Cup?", narrow)
        assert not beta["refused"] and not alpha["refused"] and refused["refused"]

        # A narrow key can neither rate nor see the wide key's ask.
        code, body = rate(narrow, trace_id=beta["trace_id"], rating="wrong")
        assert code == 403 and "reads tiers this key may not" in body["detail"]
        assert rate(narrow, trace_id="no-such-trace", rating="good")[0] == 404
        assert rate(narrow, trace_id=alpha["trace_id"], rating="great")[0] == 422
        code, body = rate(narrow, trace_id=alpha["trace_id"], rating="good")
        assert code == 201 and body["rating"] == "good" and body["key_name"] == "n"
        # The wide key reads more than the narrow one: it may rate the narrow key's asks too.
        code, _ = rate(
            wide,
            trace_id=refused["trace_id"],
            rating="should_answer",
            correct_doc_id="alpha.md",
            comment="call me on 555-0101",
        )
        assert code == 201
        assert rate(wide, trace_id=beta["trace_id"], rating="should_refuse")[0] == 201

        seen_narrow = client.get("/reports/hits", headers=narrow).json()["ratings"]
        seen_wide = client.get("/reports/hits", headers=wide).json()["ratings"]
        assert seen_wide["by_rating"] == {
            "good": 1,
            "wrong": 0,
            "should_refuse": 1,
            "should_answer": 1,
        }
        assert seen_narrow["total"] == 2 and seen_narrow["by_rating"]["should_refuse"] == 0
        assert not any(s["source"] == "infra" for s in seen_narrow["per_source"])
        assert {s["source"]: s["should_refuse"] for s in seen_wide["per_source"]} == {
            "infra": 1,
            "ops": 0,
        }
        assert seen_wide["worst_documents"] == [
            {"source": "infra", "doc_id": "beta.md", "bad_ratings": 1}
        ]
        assert [m["question"] for m in seen_wide["should_answer"]] == [refused["question"]]
        page = client.get("/dashboard", headers=narrow).text
        assert "Refused, rated should answer" in page and "Who won the 1998 World Cup?" in page
        assert "Beta cluster" not in page

    # The CLI rates too, and exports the ratings as a dataset `ragops eval` runs.
    cli = ragops(["feedback", alpha["trace_id"], "--rating", "good", "--json"], settings.data_dir)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["key_name"] == "cli"
    hits = ragops(["report", "hits"], settings.data_dir)
    assert "ratings: good 2, wrong 0, should_refuse 1, should_answer 1" in hits.stdout
    assert "refused, rated should answer Who won the 1998 World Cup?" in hits.stdout
    out = tmp_path / "rated.jsonl"
    exported = ragops(["eval", "export", "--from-feedback", str(out), "--json"], settings.data_dir)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {"path": str(out), "rows": 3, "skipped": 0, "ratings": 4}
    rows = {r["question"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows[ALPHA]["answerable"] is True and rows[ALPHA]["relevant_doc_ids"] == ["alpha.md"]
    assert rows[BETA]["answerable"] is False and rows[BETA]["tiers"] == ["verified", "internal"]
    missed = rows["Who won the 1998 World Cup?"]
    assert missed["answerable"] is True and missed["relevant_doc_ids"] == ["alpha.md"]
    assert all("comment" not in r for r in rows.values())  # PII stays out unless asked for

    report_path = tmp_path / "report.json"
    run = ragops(["eval", str(out), "--report", str(report_path), "--json"], settings.data_dir)
    assert run.returncode == 0, run.stderr
    report = json.loads(report_path.read_text())
    # The rated behaviour, as the ratings said: the good answer still answers; the ask rated
    # should_refuse still answers (refusal recall 0); the one rated should_answer still refuses.
    assert report["answers"]["answer_rate"] == pytest.approx(0.5)
    assert report["refusal"]["recall"] == 0.0
    with_comments = ragops(
        ["eval", "export", "--from-feedback", str(out), "--include-comments"], settings.data_dir
    )
    assert with_comments.returncode == 0
    assert "call me on 555-0101" in out.read_text()


@pytest.mark.unit
def test_a_rating_that_does_not_say_the_right_behaviour_is_not_a_row():
    from rag.ops.feedback import RatedAsk

    ask = {
        "question": "q?",
        "allowed_tiers": ["verified"],
        "outcome": "answered",
        "cited": [{"doc_id": "a.md", "source": "s", "tier": "verified"}],
    }
    wrong = RatedAsk(Rating("t", "wrong"), ask)
    assert dataset_row(wrong) is None
    fixed = RatedAsk(Rating("t", "wrong", correct_doc_id="b.md"), ask)
    assert dataset_row(fixed)["relevant_doc_ids"] == ["b.md"]  # type: ignore[index]


def test_the_log_stores_ratings_of_readable_asks_on_every_database(db_url):
    from datetime import timedelta

    from rag.ops.db import connect
    from rag.ops.querylog import QueryLog, Trace
    from rag.types import utc_now

    engine = connect(db_url)
    try:
        QueryLog(engine).record(
            Trace(
                "t-1",
                utc_now(),
                "q?",
                "w",
                ["verified", "internal"],
                ["verified"],
                "refused",
                "low_confidence",
                0.1,
            )
        )
        log = FeedbackLog(engine)
        with pytest.raises(FeedbackError, match="unknown rating"):
            log.rate(Rating("t-1", "meh"), None)
        with pytest.raises(FeedbackError, match="comment over"):
            log.rate(Rating("t-1", "good", comment="x" * 5000), None)
        with pytest.raises(FeedbackError, match="no ask") as missing:
            log.rate(Rating("nope", "good"), None)
        assert missing.value.status == 404
        with pytest.raises(FeedbackError) as wider:
            log.rate(Rating("t-1", "good"), ["verified"])
        assert wider.value.status == 403
        log.rate(Rating("t-1", "should_answer", "the leave policy", "leave.pdf"), None)
        since = utc_now() - timedelta(minutes=1)
        (got,) = list(log.rated(since))
        assert (got.rating.rating, got.rating.correct_doc_id) == ("should_answer", "leave.pdf")
        assert got.ask["question"] == "q?" and got.ask["outcome"] == "refused"
        assert list(log.rated(since, ["verified"])) == []
    finally:
        engine.dispose()
