"""The `ragops` command as a user runs it: a real process, real exit codes, real output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

pytestmark = pytest.mark.integration

RAGOPS = str(Path(sys.executable).with_name("ragops"))


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "RAG_DATA_DIR": str(data_dir), **env}
    return subprocess.run(
        [RAGOPS, *args], capture_output=True, text=True, env=full_env, timeout=300
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "my-docs"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nAlpha servers restart every Sunday at 03:00.\n")
    (root / "bad.bin").write_bytes(b"\x00\x01")
    return root


def test_ingest_json_contract_and_rerun(tmp_path, folder):
    result = run(
        [
            "ingest",
            str(folder),
            "--source",
            "handbook",
            "--tier",
            "internal",
            "--ttl",
            "90d",
            "--json",
        ],
        tmp_path / "d",
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert set(job) >= {"job_id", "status", "source", "tier", "counts", "chunks_written", "files"}
    assert (
        job["status"] == "succeeded" and job["source"] == "handbook" and job["tier"] == "internal"
    )
    assert job["counts"] == {"added": 1, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 1}
    failed = [f for f in job["files"] if f["status"] == "failed"]
    assert failed == [{"path": "bad.bin", "status": "failed", "reason": failed[0]["reason"]}]
    assert "unsupported file type '.bin'" in failed[0]["reason"]

    again = json.loads(
        run(
            [
                "ingest",
                str(folder),
                "--source",
                "handbook",
                "--tier",
                "internal",
                "--ttl",
                "90d",
                "--json",
            ],
            tmp_path / "d",
        ).stdout
    )
    assert again["counts"]["unchanged"] == 1 and again["chunks_written"] == 0

    jobs = json.loads(run(["jobs", "--json"], tmp_path / "d").stdout)
    assert [j["job_id"] for j in jobs] == [again["job_id"], job["job_id"]]
    sources = json.loads(run(["sources", "--json"], tmp_path / "d").stdout)
    assert sources[0]["name"] == "handbook" and sources[0]["documents"] == 1


def test_human_summary(tmp_path, folder):
    result = run(["ingest", str(folder), "--tier", "internal"], tmp_path / "d")
    assert result.returncode == 0
    assert "my-docs" in result.stdout and "succeeded" in result.stdout
    assert "failed bad.bin: unsupported file type" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--tier", "secret"],
            "unknown tier 'secret'; allowed: verified, internal, community, unverified",
        ),
        (["--ttl", "forever"], "invalid duration 'forever'"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, folder, args, message):
    result = run(["ingest", str(folder), *args], tmp_path / "d")
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_missing_path_exits_2(tmp_path):
    result = run(["ingest", str(tmp_path / "nowhere")], tmp_path / "d")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_store_held_by_another_process_is_said_plainly(tmp_path, folder):
    from rag.retrieval.store.edge import EdgeStore

    holder = EdgeStore(
        tmp_path / "d" / "qdrant-edge", ["verified", "internal", "community", "unverified"], 384
    )
    try:
        result = run(
            ["ingest", str(folder), "--tier", "internal"], tmp_path / "d", RAG_PORT=str(free_port())
        )
    finally:
        holder.close()
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "open in another process" in text and "no server answered" in text
    assert "Traceback" not in result.stderr


def test_ingest_hands_the_job_to_the_running_server(tmp_path, folder, embedder):
    import threading
    import time

    import httpx
    import uvicorn
    from conftest import make_settings

    from api.main import create_app

    settings = make_settings(tmp_path, scheduler_enabled=False, ingest_roots=[tmp_path])
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        result = run(
            ["ingest", str(folder), "--source", "handbook", "--tier", "internal", "--json"],
            settings.data_dir,
            RAG_PORT=str(port),
        )
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        assert job["status"] == "succeeded" and job["trigger"] == "api"
        assert job["counts"]["added"] == 1 and job["counts"]["failed"] == 1
        assert "the store is held by the server" in " ".join(result.stderr.split())
        env = {"RAG_PORT": str(port)}
        asked = run(
            ["ask", "When do the Alpha servers restart?", "--json"], settings.data_dir, **env
        )
        assert asked.returncode == 0, asked.stderr
        assert "Sunday at 03:00" in json.loads(asked.stdout)["answer"]
        report = run(["report", "freshness", "--json"], settings.data_dir, **env)
        assert json.loads(report.stdout)["sources"][0]["source"] == "handbook"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def ingested(tmp_path, folder):
    data = tmp_path / "d"
    assert (
        run(["ingest", str(folder), "--source", "ops", "--tier", "internal"], data).returncode == 0
    )
    return data


def test_ask_json_and_human(ingested):
    result = run(["ask", "When do the Alpha servers restart?", "--json"], ingested)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["refused"] is False and "Sunday at 03:00" in body["answer"]
    assert body["citations"][0]["doc_id"] == "a.md" and body["citations"][0]["tier"] == "internal"
    human = run(["ask", "When do the Alpha servers restart?"], ingested)
    assert "[1] Alpha — a.md (internal, source ops" in " ".join(human.stdout.split())
    refused = run(["ask", "Who won the 1998 World Cup?"], ingested)
    assert "Refused (not_covered)" in refused.stdout
    bad = run(["ask", "x?", "--tier", "secret"], ingested)
    assert bad.returncode == 2 and "unknown tier(s) secret" in bad.stderr
    # The hits view reads those asks: the refusal by its reason, and every stage's latency,
    # the judge's included.
    hits = run(["report", "hits"], ingested, COLUMNS="200")
    assert hits.returncode == 0, hits.stderr
    assert "not_covered 1" in hits.stdout
    judge_row = next(line for line in hits.stdout.splitlines() if "│ judge" in line)
    assert re.search(r"\d+\.\d .*\d+\.\d", judge_row), judge_row


def test_keys_create_shows_key_once_and_validates(tmp_path):
    result = run(
        ["keys", "create", "--tiers", "verified,internal", "--name", "bot", "--json"],
        tmp_path / "d",
    )
    body = json.loads(result.stdout)
    assert body["name"] == "bot" and body["tiers"] == ["verified", "internal"]
    assert body["key"].startswith("rgo_") and len(body["key"]) > 30
    bad = run(["keys", "create", "--tiers", "verified,secret"], tmp_path / "d")
    assert bad.returncode == 2 and "unknown tier(s) secret" in bad.stderr


def test_eval_writes_results_and_report(ingested, tmp_path):
    dataset = tmp_path / "ds.jsonl"
    dataset.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "When do the Alpha servers restart?",
                "relevant_doc_ids": ["a.md"],
                "answerable": True,
                "reference_answer": "Sunday at 03:00",
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "q2",
                "question": "What is the boiling point of mercury?",
                "relevant_doc_ids": [],
                "answerable": False,
            }
        )
        + "\n"
    )
    out, report = tmp_path / "results.jsonl", tmp_path / "report.json"
    result = run(
        ["eval", str(dataset), "--out", str(out), "--report", str(report), "--json"], ingested
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2"]
    for r in rows:
        assert {
            "id",
            "question",
            "refused",
            "refusal_reason",
            "answer",
            "confidence",
            "citations",
            "retrieved",
            "latency_ms",
        } <= set(r)
    assert set(rows[0]["citations"][0]) == {
        "doc_id",
        "chunk_id",
        "quote",
        "tier",
        "source",
        "source_modified_at",
        "ingested_at",
    }
    summary = json.loads(report.read_text())
    assert summary["retrieval"]["recall@5"] == 1.0 and summary["retrieval"]["mrr@10"] == 1.0
    assert summary["refusal"]["recall"] == 1.0 and summary["answers"]["contains_reference"] == 1.0
    assert summary["answers"]["citation_validity"] == 1.0
    # ragas' non-LLM metrics beside ours: the one answerable row's relevant chunk is retrieved
    # first and its answer contains the reference; the unanswerable row has no reference.
    ragas = summary["ragas"]
    assert ragas["context_rows"] == 1 and ragas["answer_rows"] == 1
    assert ragas["non_llm_context_recall"] == 1.0
    assert ragas["non_llm_context_precision_with_reference"] == pytest.approx(1.0)
    assert ragas["string_present"] == 1.0 and 0 < ragas["non_llm_string_similarity"] < 1
    assert json.loads(result.stdout) == summary


def _fake_model(body: dict) -> str:
    """Answers our answer prompt and ragas' judging prompts (faithfulness: statements, then
    verdicts; answer relevancy: the question the answer answers)."""
    import re

    prompt = body["messages"][-1]["content"]
    found = re.search(r"input: (\{.*\})\s*Output:\s*$", prompt, re.S)
    if found is None:  # our own answer prompt
        return "The Alpha servers restart every Sunday at 03:00 [1]."
    data = json.loads(found.group(1))
    if prompt.startswith("Given a question and an answer"):
        return json.dumps({"statements": [data["answer"]]})
    if prompt.startswith("Your task is to judge the faithfulness"):
        verdicts = [{"statement": s, "reason": "stated", "verdict": 1} for s in data["statements"]]
        return json.dumps({"statements": verdicts})
    if prompt.startswith("Generate a question for the given answer"):
        return json.dumps({"question": "When do the Alpha servers restart?", "noncommittal": 0})
    raise AssertionError(prompt[:80])


def test_eval_llm_metrics_run_against_an_llm_endpoint(ingested, tmp_path):
    from fake_llm import FakeLLM, Respond

    dataset = tmp_path / "ds.jsonl"
    row = {
        "id": "q1",
        "question": "When do the Alpha servers restart?",
        "relevant_doc_ids": ["a.md"],
        "answerable": True,
        "reference_answer": "Sunday at 03:00",
    }
    dataset.write_text(json.dumps(row) + "\n")
    without = run(["eval", str(dataset), "--llm-metrics"], ingested)
    assert without.returncode == 2 and "RAG_LLM_PROVIDERS" in without.stderr
    with FakeLLM() as llm:
        llm.script = [Respond(_fake_model)]
        provider = {"name": "fake", "base_url": llm.base_url, "model": "fake-7b", "timeout_s": 10}
        result = run(
            ["eval", str(dataset), "--llm-metrics", "--json"],
            ingested,
            RAG_LLM_PROVIDERS=json.dumps([provider]),
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["generation"]["llm_answers"] == 1, report
        judged = report["llm_metrics"]
        assert judged["scored"] == 1 and judged["judge"]["provider"] == "fake"
        assert judged["faithfulness"] == 1.0
        assert judged["answer_relevancy"] == pytest.approx(1.0, abs=1e-3)
        # The answer prompt, then ragas: 2 faithfulness calls and 3 relevancy calls.
        assert len(llm.requests) == 1 + 2 + 3
