"""An OpenAI-compatible chat-completions server on loopback that plays a script, so the LLM
path runs over a real socket: good answers, uncited or fabricated sentences, malformed JSON,
timeouts, 429/500, streams.

    with FakeLLM() as llm:
        llm.script = [Reply("Leave is 16 weeks [1]."), Status(500)]
        ... base_url=llm.base_url ...
        llm.requests  # the JSON bodies received, in order

Each request takes the next step of the script; when the script runs out, the last step
repeats.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str
    prompt_tokens: int | None = 120
    completion_tokens: int | None = 30
    delay_s: float = 0.0


@dataclass
class Respond:
    """A reply written from the request: `write(body) -> text` (to cite the passage numbers
    the service actually sent)."""

    write: Callable[[dict[str, Any]], str]
    prompt_tokens: int | None = 120
    completion_tokens: int | None = 30
    delay_s: float = 0.0


@dataclass
class Status:
    code: int
    retry_after: str | None = None


@dataclass
class Malformed:
    body: str = '{"choices": [ {"message": '


class FakeLLM:
    def __init__(self) -> None:
        self.script: list[Reply | Respond | Status | Malformed] = [Reply("INSUFFICIENT_EVIDENCE")]
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    auth = self.headers.get("Authorization")
                    fake.requests.append({"path": self.path, "body": body, "auth": auth})
                    step = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                # The client may have given up (a timeout test): then there is no one to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake._play(self, step, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _play(
        self,
        handler: BaseHTTPRequestHandler,
        step: Reply | Respond | Status | Malformed,
        body: dict[str, Any],
    ) -> None:
        if isinstance(step, Status):
            payload = json.dumps({"error": {"message": f"scripted {step.code}"}}).encode()
            handler.send_response(step.code)
            if step.retry_after is not None:
                handler.send_header("Retry-After", step.retry_after)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if isinstance(step, Malformed):
            payload = step.body.encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        time.sleep(step.delay_s)
        if isinstance(step, Respond):
            step = Reply(step.write(body), step.prompt_tokens, step.completion_tokens)
        usage = {}
        if step.prompt_tokens is not None:
            usage["prompt_tokens"] = step.prompt_tokens
        if step.completion_tokens is not None:
            usage["completion_tokens"] = step.completion_tokens
        if body.get("stream"):
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.end_headers()
            words = step.text.split(" ")
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                event = {"choices": [{"index": 0, "delta": {"content": delta}}]}
                handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                handler.wfile.flush()
            if usage:
                handler.wfile.write(
                    f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
                )
            handler.wfile.write(b"data: [DONE]\n\n")
            return
        message = {"role": "assistant", "content": step.text}
        payload = json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                **({"usage": usage} if usage else {}),
            }
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
