"""The provider client over real HTTP on loopback: completions, usage and cost, retries with
backoff, Retry-After, timeouts, malformed bodies, streams, and the circuit breaker."""

from __future__ import annotations

import pytest
from fake_llm import FakeLLM, Malformed, Reply, Status

from rag.answering.generate import PromptSet
from rag.answering.llm import CircuitBreaker, LLMError, ProviderClient
from rag.settings import ProviderConfig

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "How long is parental leave?"}]


@pytest.fixture
def llm():  # type: ignore[no-untyped-def]
    with FakeLLM() as server:
        yield server


def client(llm: FakeLLM, **overrides: object) -> ProviderClient:
    config = ProviderConfig(
        name="fake",
        base_url=llm.base_url,
        model="fake-7b",
        timeout_s=float(overrides.pop("timeout_s", 2.0)),  # type: ignore[arg-type]
        price_in_per_1k=0.5,
        price_out_per_1k=1.5,
        api_key_env="FAKE_LLM_KEY",
    )
    return ProviderClient(config, backoff_s=0.01, **overrides)  # type: ignore[arg-type]


def test_a_completion_reports_tokens_and_cost(llm, monkeypatch):
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    llm.script = [Reply("Sixteen weeks [1].", prompt_tokens=1000, completion_tokens=200)]
    done = client(llm).complete(MESSAGES)
    assert done.text == "Sixteen weeks [1]."
    assert (done.tokens_in, done.tokens_out) == (1000, 200)
    assert done.cost == pytest.approx(1000 / 1000 * 0.5 + 200 / 1000 * 1.5)
    request = llm.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "fake-7b" and request["body"]["messages"] == MESSAGES


def test_missing_usage_is_estimated_not_free(llm):
    llm.script = [Reply("x" * 400, prompt_tokens=None, completion_tokens=None)]
    done = client(llm).complete(MESSAGES)
    assert done.tokens_out == 100 and done.tokens_in > 0 and done.cost > 0


def test_server_errors_are_retried_with_backoff(llm):
    llm.script = [Status(500), Status(503), Reply("ok [1].")]
    assert client(llm, retries=2).complete(MESSAGES).text == "ok [1]."
    assert len(llm.requests) == 3


def test_retries_are_bounded(llm):
    llm.script = [Status(500)]
    with pytest.raises(LLMError, match="HTTP 500"):
        client(llm, retries=1).complete(MESSAGES)
    assert len(llm.requests) == 2


def test_429_honours_a_short_retry_after(llm):
    llm.script = [Status(429, retry_after="0.05"), Reply("ok [1].")]
    assert client(llm).complete(MESSAGES).text == "ok [1]."


def test_client_errors_are_not_retried(llm):
    llm.script = [Status(401)]
    with pytest.raises(LLMError, match="HTTP 401"):
        client(llm, retries=2).complete(MESSAGES)
    assert len(llm.requests) == 1


def test_malformed_json_is_an_error_not_a_crash(llm):
    llm.script = [Malformed()]
    with pytest.raises(LLMError, match="malformed"):
        client(llm).complete(MESSAGES)


def test_a_slow_provider_times_out(llm):
    llm.script = [Reply("late [1].", delay_s=1.0)]
    with pytest.raises(LLMError, match="timed out"):
        client(llm, timeout_s=0.2, retries=0).complete(MESSAGES)


def test_a_stream_delivers_deltas_and_usage(llm):
    llm.script = [
        Reply("Parental leave is sixteen weeks [1].", prompt_tokens=50, completion_tokens=9)
    ]
    deltas: list[str] = []
    done = client(llm).complete(MESSAGES, deltas.append)
    assert "".join(deltas) == done.text == "Parental leave is sixteen weeks [1]."
    assert len(deltas) > 1 and (done.tokens_in, done.tokens_out) == (50, 9)
    assert llm.requests[0]["body"]["stream"] is True


def test_the_breaker_opens_after_repeated_failures_and_skips_the_provider(llm):
    llm.script = [Status(500)]
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown_s=30, clock=lambda: now[0])
    c = client(llm, retries=0, breaker=breaker)
    for _ in range(2):
        with pytest.raises(LLMError, match="HTTP 500"):
            c.complete(MESSAGES)
    with pytest.raises(LLMError, match="circuit open"):
        c.complete(MESSAGES)
    assert len(llm.requests) == 2  # the open breaker made no request
    now[0] = 31.0  # after the cool-down one trial goes through, and success closes it
    llm.script = [Reply("back [1].")]
    assert c.complete(MESSAGES).text == "back [1]."
    assert not breaker.is_open


def test_a_failed_trial_reopens_the_breaker():
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown_s=10, clock=lambda: now[0])
    breaker.record(False)
    assert not breaker.allow()
    now[0] = 11.0
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record(False)
    assert not breaker.allow()


def test_prompt_versions_follow_the_files(tmp_path):
    shipped = PromptSet.load()
    assert shipped.version == PromptSet.load().version
    (tmp_path / "system.md").write_text(shipped.system + "\nBe brief.")
    (tmp_path / "answer.md").write_text(shipped.template)
    edited = PromptSet.load(tmp_path)
    assert edited.version != shipped.version
    messages = edited.messages("Why?", "[1] a passage")
    assert (
        messages[0]["content"].endswith("Be brief.") and "[1] a passage" in messages[1]["content"]
    )
    (tmp_path / "answer.md").write_text("no placeholders")
    with pytest.raises(ValueError, match="passages"):
        PromptSet.load(tmp_path)
