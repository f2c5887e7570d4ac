"""Questions: cited answers or refusals (`/ask`), and retrieval only (`/search`)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import PrincipalDep
from api.deps import ServicesDep
from rag.ops.auth import Principal, TierError, resolve_tiers
from rag.retrieval.store import StoreError
from rag.retrieval.terms import clean_question
from rag.types import AskResult, SearchResult
from service.container import Services

router = APIRouter(tags=["ask"])
log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
# A tier name is a short word: longer ones are refused by validation, which does not echo
# them (an unknown tier's message does, and a forged 200 kB name came back whole).
TierName = Annotated[str, Field(max_length=64)]


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    tiers: list[TierName] | None = Field(
        default=None, max_length=64, description="narrow to these tiers"
    )
    top_k: int = Field(default=5, ge=1, le=50)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = clean_question(value)
        if not value:
            raise ValueError("question must not be blank")
        return value


def _tiers(services: Services, principal: Principal, requested: list[str] | None) -> list[str]:
    try:
        return resolve_tiers(list(services.settings.tiers), principal.tiers, requested)
    except TierError as exc:
        code = status.HTTP_403_FORBIDDEN if exc.forbidden else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, str(exc)) from exc


def prepared_ask(
    services: Services, principal: Principal, body: AskRequest
) -> functools.partial[AskResult]:
    """The ask a checked body describes, for the tiers this principal may read (403, 422)."""
    tiers = _tiers(services, principal, body.tiers)
    p = principal
    return functools.partial(services.asker.ask, body.question, tiers, body.top_k, p.tiers, p.name)


@router.post("/ask", response_model=AskResult)
async def create_answer(
    body: AskRequest, services: ServicesDep, principal: PrincipalDep, stream: bool = False
) -> Any:
    """Answer with a citation on every sentence, or refuse with a reason.

    With `?stream=true` the answer comes as server-sent events: `sentence` events, each a final
    sentence with its citation markers (for generated answers: already verified), then one
    `result` event holding the whole answer, which is authoritative (`error` if the ask
    failed)."""
    ask = prepared_ask(services, principal, body)
    if not stream:
        return await run_in_threadpool(ask)
    # A stream's status is sent before the answer exists: a store that cannot serve is a
    # 503 now (the exception handler), not an error event after a 200.
    await run_in_threadpool(services.store.check)
    return StreamingResponse(events(ask), media_type="text/event-stream")


def _as_json(result: AskResult) -> str:
    return result.model_dump_json()


async def events(
    ask: functools.partial[AskResult], encode: Callable[[AskResult], str] = _as_json
) -> AsyncIterator[str]:
    """Server-sent events of one ask: `sentence` events as the answer's sentences become
    final, then one `result` event (`encode`d: the answer as JSON, or the ask page's HTML),
    or an `error` event."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_sentence(sentence: str) -> None:  # called on the worker thread
        loop.call_soon_threadsafe(queue.put_nowait, sentence)

    task = loop.run_in_executor(None, functools.partial(ask, on_sentence=on_sentence))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    while (sentence := await queue.get()) is not None:
        yield f"event: sentence\ndata: {json.dumps({'text': sentence})}\n\n"
    try:
        result = task.result()
    except StoreError as exc:  # the store failed mid-stream: its reason, in-band
        log.warning("streamed ask: store unavailable (%s): %s", exc.reason, exc)
        detail = json.dumps({"detail": str(exc), "reason": exc.reason})
        yield f"event: error\ndata: {detail}\n\n"
        return
    except Exception:  # the body has started: the failure can only be reported in-band
        log.exception("streamed ask failed")
        detail = json.dumps({"detail": "the ask failed; see the server log"})
        yield f"event: error\ndata: {detail}\n\n"
        return
    yield f"event: result\ndata: {encode(result)}\n\n"


@router.post("/search")
async def create_search(
    body: AskRequest, services: ServicesDep, principal: PrincipalDep
) -> SearchResult:
    """Retrieval only: the reranked chunks with their scores, no answer."""
    tiers = _tiers(services, principal, body.tiers)
    return await run_in_threadpool(services.asker.search, body.question, tiers, body.top_k)
