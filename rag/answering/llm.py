"""LLM providers over OpenAI-compatible HTTP (OpenAI, vLLM, Ollama, llama.cpp server all speak it).

`RAG_LLM_PROVIDERS` is a JSON list tried in order (DESIGN.md §3):

    [{"name": "local", "base_url": "http://127.0.0.1:8080/v1", "model": "qwen2.5-7b",
      "api_key_env": "LOCAL_LLM_KEY", "timeout_s": 20, "price_in_per_1k": 0.0,
      "price_out_per_1k": 0.0}]

`ProviderClient.complete` posts one chat completion (streamed when asked: server-sent events,
each content delta handed to `on_delta` as it arrives), retries timeouts, connection errors,
429 and 5xx a bounded number of times with exponential backoff (honouring a short
`Retry-After`), and reads token usage from the response; cost comes from the configured
prices. A circuit breaker per provider stops calling one that keeps failing until a cool-down
has passed, so a dead provider costs one fast skip, not a timeout per ask.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from rag.settings import ProviderConfig
from rag.types import TextSink


class LLMError(Exception):
    """A provider gave no usable completion; `reason` is short and safe to show an operator."""

    def __init__(
        self,
        reason: str,
        retryable: bool = False,
        retry_after: float | None = None,
        streamed: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)
        self.streamed = streamed  # part of the text already reached the caller


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    cost: float


class CircuitBreaker:
    """Closed until `failures` calls in a row fail; then open (calls are refused) for
    `cooldown_s`; then one trial call is let through, which closes it again or reopens it."""

    def __init__(
        self,
        failures: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._trial = False

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial or self._clock() - self._opened_at < self.cooldown_s:
                return False
            self._trial = True  # half-open: this caller is the trial
            return True

    def record(self, ok: bool) -> None:
        with self._lock:
            self._trial = False
            if ok:
                self._failed, self._opened_at = 0, None
                return
            self._failed += 1
            if self._failed >= self.failures or self._opened_at is not None:
                self._opened_at = self._clock()

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None


class ProviderClient:
    def __init__(
        self,
        config: ProviderConfig,
        retries: int = 2,
        backoff_s: float = 0.2,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker = breaker or CircuitBreaker()
        headers = {"Content-Type": "application/json"}
        key = config.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            transport=transport,
        )

    @property
    def name(self) -> str:
        return self.config.name

    def close(self) -> None:
        self._http.close()

    def complete(
        self, messages: list[dict[str, str]], on_delta: TextSink | None = None
    ) -> Completion:
        """One chat completion; raises LLMError when none usable came back."""
        if not self.breaker.allow():
            raise LLMError("circuit open after repeated failures")
        try:
            completion = self._with_retries(messages, on_delta)
        except LLMError:
            self.breaker.record(False)
            raise
        self.breaker.record(True)
        return completion

    def _with_retries(
        self, messages: list[dict[str, str]], on_delta: TextSink | None
    ) -> Completion:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return self._once(messages, on_delta)
            except LLMError as exc:
                # A stream that already delivered text is not retried: the caller has shown it.
                if not exc.retryable or attempt == self.retries or exc.streamed:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else delay
                time.sleep(min(wait, 2.0))
                delay *= 2
        raise AssertionError("unreachable")

    def _once(self, messages: list[dict[str, str]], on_delta: TextSink | None) -> Completion:
        body = {
            "model": self.config.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        }
        try:
            if on_delta is None:
                response = self._http.post("chat/completions", json=body)
                _raise_for_status(response)
                return self._parse(response, messages)
            body |= {"stream": True, "stream_options": {"include_usage": True}}
            with self._http.stream("POST", "chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                _raise_for_status(response)
                return self._parse_stream(response, on_delta, messages)
        except httpx.TimeoutException as exc:
            raise LLMError(f"timed out after {self.config.timeout_s:g} s", retryable=True) from exc
        except httpx.TransportError as exc:
            raise LLMError(f"unreachable: {type(exc).__name__}", retryable=True) from exc

    def _parse(self, response: httpx.Response, messages: list[dict[str, str]]) -> Completion:
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError("malformed response: no choices[0].message.content") from exc
        if not isinstance(text, str) or not text.strip():
            raise LLMError("empty completion")
        return self._completion(text, data.get("usage") or {}, messages)

    def _parse_stream(
        self,
        response: httpx.Response,
        on_delta: TextSink,
        messages: list[dict[str, str]],
    ) -> Completion:
        parts: list[str] = []
        usage: dict[str, int] = {}
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                event = json.loads(payload)
            except ValueError as exc:
                raise LLMError("malformed stream event", streamed=bool(parts)) from exc
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    parts.append(delta)
                    on_delta(delta)
        text = "".join(parts)
        if not text.strip():
            raise LLMError("empty completion")
        return self._completion(text, usage, messages)

    def _completion(
        self, text: str, usage: dict[str, int], messages: list[dict[str, str]]
    ) -> Completion:
        # A server that reports no usage is charged by estimate (4 characters a token) rather
        # than not at all: cost reports must not read zero for a paid call.
        prompt_chars = sum(len(m["content"]) for m in messages)
        t_in = int(usage.get("prompt_tokens") or math.ceil(prompt_chars / 4))
        t_out = int(usage.get("completion_tokens") or math.ceil(len(text) / 4))
        cost = (t_in * self.config.price_in_per_1k + t_out * self.config.price_out_per_1k) / 1000
        return Completion(text, t_in, t_out, round(cost, 8))


def _raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code == 200:
        return
    if code == 429 or code >= 500:
        header = response.headers.get("Retry-After", "")
        wait = float(header) if header.replace(".", "", 1).isdigit() else None
        raise LLMError(f"HTTP {code}", retryable=True, retry_after=wait)
    raise LLMError(f"HTTP {code}")
