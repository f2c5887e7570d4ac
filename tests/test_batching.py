"""Sharing the models between concurrent requests: the micro-batcher, batched query embeddings,
the judge beside other inferences, and concurrent /ask against sequential."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from conftest import make_settings
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.runner import IngestRequest
from rag.answering.judge import AnswerabilityJudge
from rag.batching import MicroBatcher
from service.ingest import make_ingestor

QUESTIONS = [
    "VPN?",
    "How long is parental leave?",
    "Who approves business class flights for trips longer than six hours, and is it the same "
    "person who signs off on hotel upgrades during the annual sales conference in Lisbon?",
    "What is the daily limit for meals on business trips, including breakfast, lunch, dinner, "
    "snacks and drinks, when the employee travels abroad for more than three consecutive days "
    "and the hotel rate does not include any meal at all? " * 3,
    "¿Cuántos días de vacaciones tengo?",
]


def batched_together(
    run: Callable[[list[Any]], list[Any]], items: list[Any], **options: Any
) -> tuple[list[Any], MicroBatcher[Any, Any]]:
    """Each item from its own thread, all of them in one batch: the worker's first pass is held
    until the rest have queued behind it."""
    held = threading.Event()
    first = True

    def gated(batch: list[Any]) -> list[Any]:
        nonlocal first
        if first:
            first = False
            held.wait(10)
        return run(batch)

    batcher: MicroBatcher[Any, Any] = MicroBatcher(gated, **options)
    with ThreadPoolExecutor(len(items) + 1) as pool:
        head = pool.submit(batcher, items[0])
        deadline = time.monotonic() + 10
        while batcher.stats.batches == 0 and batcher.pending and time.monotonic() < deadline:
            time.sleep(0.001)  # the worker has taken the first item into its (held) pass
        rest = [pool.submit(batcher, item) for item in items[1:]]
        while batcher.pending < len(rest) and time.monotonic() < deadline:
            time.sleep(0.001)
        held.set()
        futures = [head, *rest]
        results = []
        for f in futures:
            try:
                results.append(f.result(10))
            except Exception as exc:
                results.append(exc)
    return results, batcher


@pytest.mark.unit
def test_the_batcher_groups_concurrent_items_and_keeps_their_order():
    batches: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        batches.append(list(items))
        return [2 * i for i in items]

    results, batcher = batched_together(double, list(range(9)), max_size=4, max_wait_ms=1)
    assert results == [2 * i for i in range(9)]
    assert batches[0] == [0] and sorted(i for b in batches[1:] for i in b) == list(range(1, 9))
    assert max(len(b) for b in batches) == 4  # never more than max_size in a pass
    assert batcher.stats.items == 9 and batcher.stats.largest == 4
    batcher.close()


@pytest.mark.unit
def test_a_lone_request_is_not_delayed_beyond_the_bound():
    bound_ms = 50.0
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: xs, max_wait_ms=bound_ms)
    for _ in range(3):  # after a quiet spell a question runs at once: no wait at all
        time.sleep(0.2)
        start = time.perf_counter()
        assert batcher(1) == 1
        assert (time.perf_counter() - start) * 1000 < bound_ms / 2
    # While questions come close together the worker waits for batch-mates, never past the
    # bound: a burst, then one more alone.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(batcher, range(32)))
    start = time.perf_counter()
    assert batcher(1) == 1
    assert (time.perf_counter() - start) * 1000 < bound_ms + 40  # scheduling slack
    batcher.close()


@pytest.mark.unit
def test_an_exception_reaches_the_callers_of_its_batch_and_the_batcher_goes_on():
    def picky(items: list[str]) -> list[str]:
        if "boom" in items:
            raise ValueError("cannot embed boom")
        return [i.upper() for i in items]

    batcher: MicroBatcher[str, str] = MicroBatcher(picky, max_wait_ms=1)
    with pytest.raises(ValueError, match="cannot embed boom"):
        batcher("boom")
    assert batcher("ok") == "OK"
    results, grouped = batched_together(picky, ["a", "b", "boom", "c"], max_wait_ms=1)
    assert results[0] == "A"  # the first pass ran alone
    assert all(isinstance(r, ValueError) for r in results[1:])  # one batch: all its callers
    assert grouped("d") == "D" and grouped.stats.failed == 1
    # A wrong number of results is an error for the batch, not a hang.
    short: MicroBatcher[int, int] = MicroBatcher(lambda xs: xs[:-1] or [], max_wait_ms=0)
    with pytest.raises(RuntimeError, match="0 results for a batch of 1"):
        short(1)
    for b in (batcher, grouped, short):
        b.close()
    assert batcher("after close") == "AFTER CLOSE"  # runs unbatched on the caller's thread


@pytest.mark.integration
def test_batched_question_vectors_equal_lone_ones(embedder):
    lone = np.stack([embedder.embed_queries([q])[0] for q in QUESTIONS])
    assert np.array_equal(lone[1], embedder.embed_queries([QUESTIONS[1]])[0])
    # One padded pass over questions from 1 to ~120 word pieces.
    together = embedder.embed_queries(QUESTIONS)
    assert together.shape == lone.shape
    np.testing.assert_allclose(together, lone, rtol=0, atol=1e-6)
    # Through the batcher, from one thread per question.
    results, batcher = batched_together(embedder.embed_queries, QUESTIONS, max_wait_ms=5)
    assert batcher.stats.largest == len(QUESTIONS) - 1
    np.testing.assert_allclose(np.stack(results), lone, rtol=0, atol=1e-6)
    batcher.close()


@pytest.mark.integration
def test_query_batching_is_switched_by_its_settings(services_factory):
    embedder = services_factory(batch_wait_ms=0).embedder
    assert embedder.query_batcher is None  # RAG_BATCH_WAIT_MS=0: each question alone
    lone = embedder.embed_query(QUESTIONS[1])
    embedder = services_factory(batch_wait_ms=2, batch_max_size=8).embedder
    batcher = embedder.query_batcher
    assert batcher is not None and (batcher.max_size, batcher.max_wait_s) == (8, 0.002)
    before = batcher.stats.items
    np.testing.assert_allclose(embedder.embed_query(QUESTIONS[1]), lone, rtol=0, atol=1e-6)
    assert batcher.stats.items == before + 1


PAIRS = [
    ("How long is parental leave?", "Parental leave lasts sixteen weeks at full pay."),
    ("How long is parental leave?", "The canteen serves lunch from noon."),
    ("VPN?", "Connect to the VPN before opening the admin console. " * 6),
    ("Who approves business class flights?", "Business class needs a vice president's approval."),
]


@pytest.mark.integration
def test_the_judge_scores_the_same_beside_other_inferences_as_alone():
    judge = AnswerabilityJudge(threads=2, concurrent_threads=1)
    alone = np.array([judge.logits(q, [p])[0] for q, p in PAIRS])
    assert judge._session.runs["beside"] == 0
    with ThreadPoolExecutor(4) as pool:
        beside = [
            list(pool.map(lambda pair: judge.logits(pair[0], [pair[1]])[0], PAIRS * 4))
            for _ in range(3)
        ]
    assert judge._session.runs["beside"] > 0  # some ran on the one-thread session
    for run in beside:
        np.testing.assert_allclose(np.array(run).reshape(4, -1), np.tile(alone, (4, 1)), atol=1e-6)


ASKED = [
    "How many weeks of parental leave do parents get?",
    "Who must approve business class flights?",
    "How do I connect to the VPN?",
    "What is the capital of Peru?",
    "What is the Wi-Fi password for guests?",
    "How long are passwords?",
]


def _answer(body: dict[str, Any]) -> tuple[tuple[Any, ...], list[float]]:
    """What must be equal, and the scores: a question's vector in a padded batch is its lone
    vector to ~3e-8, which may move a score's last rounded digit."""
    exact = (
        body["refused"],
        body["refusal_reason"],
        body["answer"],
        [(c["chunk_id"], c["quote"]) for c in body["citations"]],
        [r["chunk_id"] for r in body["retrieved"]],
    )
    return exact, [body["confidence"] or 0.0] + [r["score"] for r in body["retrieved"]]


@pytest.mark.integration
def test_concurrent_asks_get_the_answers_sequential_ones_get(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(
        "# Leave\n\nParental leave lasts 16 weeks at full pay. It can be split in two blocks.\n"
    )
    (docs / "travel.md").write_text(
        "# Travel\n\nBusiness class flights must be approved by a vice president. Economy is "
        "the default for flights under six hours.\n"
    )
    (docs / "it.md").write_text(
        "# IT\n\nConnect to the VPN with the Corp client and your hardware key. Passwords must "
        "be at least 14 characters long.\n"
    )
    settings = make_settings(tmp_path, batch_wait_ms=5.0)
    with TestClient(create_app(settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        make_ingestor(services).run(IngestRequest("handbook", "internal", docs, "30d"))

        def ask(question: str) -> tuple[tuple[Any, ...], list[float]]:
            response = client.post("/ask", json={"question": question})
            assert response.status_code == 200, response.text
            return _answer(response.json())

        sequential = {q: ask(q) for q in ASKED}
        refused = {q: exact[0] for q, (exact, _) in sequential.items()}
        assert not refused[ASKED[0]] and refused[ASKED[3]]  # answered, refused
        batcher = services.embedder.query_batcher
        assert batcher is not None
        before = batcher.stats.items
        with ThreadPoolExecutor(12) as pool:
            concurrent = list(pool.map(ask, ASKED * 4))
        assert batcher.stats.items - before == len(ASKED) * 4
        for question, (exact, scores) in zip(ASKED * 4, concurrent, strict=True):
            assert exact == sequential[question][0], question
            np.testing.assert_allclose(scores, sequential[question][1], rtol=0, atol=2e-6)
