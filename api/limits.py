"""Request limits: a body cap answered 413 before the body is read whole, a deadline for
reading the body (408), and a token bucket per API key (429 with `Retry-After`).

Without them a 500 MB `/ask` body was read into memory before validation said 422, a client
trickling its body held a worker forever, and one key could take the whole machine.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, status

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


# A refused body is read and dropped, up to this much and for at most this long, before the 413
# goes out. A client that writes its whole body before it reads (Python's urllib, many other
# languages' default clients) otherwise finds the socket closed with its bytes unread and gets
# "connection reset by peer" instead of the 413 and its message: the server's "lingering
# close". A body declared larger than this is refused at once (its client may see the reset).
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_S = 5.0


class BodyLimit:
    """ASGI middleware. A declared `Content-Length` over `max_bytes` is refused without being
    parsed; a chunked body is counted as it arrives and refused once it passes the cap; either
    way the rest of it is drained (bounded) so that the client reads the 413. The body must
    arrive within `timeout_s` (after it, the connection is only watched for a disconnect, which
    may take as long as a streamed answer does)."""

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        timeout_s: float,
        drain_bytes: int = DRAIN_BYTES,
        drain_s: float = DRAIN_S,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.drain_bytes = drain_bytes
        self.drain_s = drain_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= self.drain_bytes:
                await self._drain(receive)
            await _refuse(send, status.HTTP_413_CONTENT_TOO_LARGE, self._too_large())
            return
        received = 0
        done = False

        async def limited() -> Message:
            nonlocal received, done
            if done:
                return await receive()  # type: ignore[no-any-return]
            try:
                message: Message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                raise HTTPException(
                    status.HTTP_408_REQUEST_TIMEOUT,
                    f"the request body did not arrive within {self.timeout_s:g} s",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, received)
                    done = True
                    # An HTTPException: FastAPI passes it through its body parsing untouched.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, self._too_large())
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        await self.app(scope, limited, send)

    async def _drain(self, receive: Receive, drained: int = 0) -> None:
        """Read and drop the rest of a refused body, until it ends, passes `drain_bytes` or
        takes longer than `drain_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        while drained <= self.drain_bytes:
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            drained += len(message.get("body", b""))

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes} bytes (RAG_MAX_BODY_BYTES)"


async def _refuse(send: Send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """A token bucket per API key: `per_minute` requests a minute on average, up to `burst` at
    once. `take` answers 0.0 when the request may go ahead, else the seconds until it may."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, who: str) -> float:
        """`who` is the key's digest (`rag.ops.auth.key_digest`): the process never keeps a
        usable key in memory, and a key spends one bucket whether it comes as a header or as a
        browser session."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def check(self, who: str) -> None:
        """Raise 429 with `Retry-After` (whole seconds, rounded up) when `who` is over its rate."""
        wait = self.take(who)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit of {self.rate * 60:g} requests a minute per key exceeded "
                "(RAG_RATE_LIMIT_PER_MIN)",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
