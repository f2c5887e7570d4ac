"""HTTP limits: the body cap (413 before the body is read whole), the body deadline (408), and
the per-key rate limit (429 with Retry-After)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import make_settings
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.limits import BodyLimit, RateLimiter
from api.main import create_app


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
def test_each_key_has_its_own_bucket_that_refills_over_time():
    clock = _Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)  # one a second: next token in 1 s
    assert limiter.take("b") == 0.0  # another key is not affected
    clock.now = 1.0
    assert limiter.take("a") == 0.0
    clock.now = 100.0  # a long pause refills only up to the burst
    assert [limiter.take("a") for _ in range(3)][2] > 0
    assert not RateLimiter(per_minute=0, burst=5).enabled
    assert RateLimiter(per_minute=0, burst=5).take("a") == 0.0


class _Echo(BaseModel):
    text: str


def _echo_app(max_bytes: int, timeout_s: float = 5.0) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    def echo(body: _Echo) -> dict[str, int]:
        return {"chars": len(body.text)}

    app.add_middleware(BodyLimit, max_bytes=max_bytes, timeout_s=timeout_s)
    return app


async def _call(
    app: Any,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    delay: float = 0.0,
    stall: bool = False,
) -> tuple[int, str, int]:
    """Drive the ASGI app by hand; returns (status, body, body chunks the app asked for).
    `stall`: the client promises more body after the last chunk and never sends it."""
    pending = list(chunks)
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not pending:
            await asyncio.sleep(3600)  # a client that stopped sending
        asked += 1
        await asyncio.sleep(delay)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "root_path": "",
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body.decode(), asked


@pytest.mark.unit
def test_a_declared_oversized_body_is_refused_before_any_of_it_is_read():
    app = _echo_app(max_bytes=1024)
    status, body, asked = asyncio.run(
        _call(app, [(b"content-length", b"500000000")], [b"{" * 1024] * 3)
    )
    assert (status, asked) == (413, 0)
    assert "over 1024 bytes" in body


@pytest.mark.unit
def test_a_declared_oversized_body_within_the_drain_bound_is_read_and_dropped_first():
    app = _echo_app(max_bytes=1024)
    status, body, asked = asyncio.run(_call(app, [(b"content-length", b"3072")], [b"{" * 1024] * 3))
    # Every chunk was read (and dropped, never parsed) before the 413, so a client that
    # writes its whole body before reading gets the answer instead of a reset connection.
    assert (status, asked) == (413, 3)
    assert "over 1024 bytes" in body


@pytest.mark.unit
def test_a_chunked_body_is_refused_once_it_passes_the_cap_and_its_rest_drained():
    app = _echo_app(max_bytes=1024)
    status, body, asked = asyncio.run(_call(app, [], [b"x" * 600] * 10))
    assert status == 413 and "RAG_MAX_BODY_BYTES" in body
    assert asked == 10  # refused at the chunk that crossed the cap; the rest drained
    # The drain is bounded in bytes: past the bound, the rest is left unread.
    bounded = BodyLimit(_echo_app(max_bytes=10**9), max_bytes=1024, timeout_s=5, drain_bytes=2000)
    status, _, asked = asyncio.run(_call(bounded, [], [b"x" * 600] * 10))
    assert status == 413 and asked == 4  # 1,200 at the cap; 1,800 and 2,400 drained, then stop


@pytest.mark.unit
def test_the_drain_is_bounded_in_time():
    slow = BodyLimit(_echo_app(max_bytes=10**9), max_bytes=1024, timeout_s=5, drain_s=0.05)
    status, _, asked = asyncio.run(_call(slow, [], [b"x" * 600] * 10, delay=0.02))
    assert status == 413 and asked < 10


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True])
def test_a_client_that_writes_its_whole_body_first_reads_the_413(chunked):
    """A raw socket that sends a 4 MB body before reading anything, as urllib does: without the
    drain, the server closed with the body unread and the client got "connection reset"."""
    import socket
    from urllib.parse import urlsplit

    from conftest import serve_on_loopback

    body = b'{"text": "' + b"x" * 4_000_000 + b'"}'
    with serve_on_loopback(_echo_app(max_bytes=1024)) as base:
        url = urlsplit(base)
        with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
            if chunked:
                head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
                for start in range(0, len(body), 65536):
                    piece = body[start : start + 65536]
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.sendall(b"0\r\n\r\n")
            else:
                conn.sendall(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
                if b"RAG_MAX_BODY_BYTES" in reply:
                    break
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"request body over 1024 bytes (RAG_MAX_BODY_BYTES)" in reply


@pytest.mark.unit
def test_a_body_that_stops_arriving_times_out():
    app = _echo_app(max_bytes=1024, timeout_s=0.2)
    status, body, _ = asyncio.run(_call(app, [], [b'{"text": "hel'], stall=True))
    assert status == 408 and "did not arrive within 0.2 s" in body


@pytest.mark.unit
def test_a_body_within_the_limits_is_served():
    app = _echo_app(max_bytes=1024, timeout_s=1.0)
    status, body, _ = asyncio.run(_call(app, [], [b'{"text": ', b'"hello"}'], delay=0.01))
    assert (status, body) == (200, '{"chars":5}')


@pytest.mark.integration
def test_the_service_enforces_both_limits(tmp_path, embedder):
    settings = make_settings(
        tmp_path, max_body_bytes=4096, rate_limit_per_min=60, rate_limit_burst=2
    )
    with TestClient(create_app(settings)) as client:
        huge = client.post(
            "/ask", content=b'{"question": "' + b"a" * 10_000 + b'"}', headers={"x": "y"}
        )
        assert huge.status_code == 413 and "4096" in huge.json()["detail"]
        # Without keys (loopback) nothing is rate limited.
        assert all(client.get("/sources").status_code == 200 for _ in range(4))
        services = client.app.state.services  # type: ignore[attr-defined]
        one = {"Authorization": f"Bearer {services.keys.create('one', ['verified']).key}"}
        two = {"Authorization": f"Bearer {services.keys.create('two', ['verified']).key}"}
        codes = [client.get("/sources", headers=one).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.get("/sources", headers=one)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert "rate limit of 60 requests a minute" in limited.json()["detail"]
        assert client.get("/sources", headers=two).status_code == 200  # its own bucket
        bad = {"Authorization": "Bearer rgo_not-a-key"}
        assert all(client.get("/sources", headers=bad).status_code == 401 for _ in range(3))
