"""The operator pages: the dashboard, the ask page, and the login that turns an API key into a
browser session (`api.session`).

The ask page answers a question the way `/ask` does, for the tiers of the key on the page, and
shows why: the answer with each citation, or the refusal with its reason and the closest
sources (not answers), and the evidence behind either (confidence and threshold, the evidence
model's reading of each chunk it read, the retrieved chunks with their dense and BM25 scores,
latency per stage, a generator's dropped sentences). Without JavaScript the form posts and the
page comes back whole; with it the answer streams in sentence by sentence. Each answer can be
rated (`/feedback`'s rules: a key rates only asks of keys that read no more than it).

The form posts are browser pages, not API: they stay out of the OpenAPI schema.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from api.auth import PageUser, PageUserDep, check_csrf
from api.dashboard import render, render_dashboard
from api.deps import ServicesDep
from api.routes.ask import AskRequest, events, prepared_ask
from api.routes.feedback import FeedbackCreate
from api.routes.reports import Days, freshness_for, hits_for
from api.session import COOKIE, CSRF_FIELD, Sessions
from rag.ops.auth import key_digest
from rag.ops.feedback import FeedbackError, Rating
from rag.types import AskResult
from service.container import Services

router = APIRouter(prefix="/dashboard", tags=["operations"])

Text = Annotated[str, Form()]
OptionalText = Annotated[str | None, Form()]
Csrf = Annotated[str | None, Form(alias=CSRF_FIELD)]


@router.get("", response_class=HTMLResponse)
async def read_dashboard(services: ServicesDep, user: PageUserDep, days: int = Days) -> str:
    """The operator dashboard (self-contained HTML)."""
    freshness = await run_in_threadpool(freshness_for, services, user.principal)
    hits = await run_in_threadpool(hits_for, services, user.principal, days)
    return render_dashboard(freshness, hits, days)


def _safe_next(target: str | None) -> str:
    # Only a page of this dashboard: "//evil.example" or a full URL would make the login page
    # an open redirect.
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return "/dashboard/ask"


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def read_login(next: str | None = None) -> str:
    return render("login.html", next=_safe_next(next), error=None)


@router.post("/login", include_in_schema=False)
async def create_session(
    request: Request, services: ServicesDep, key: Text, next: OptionalText = None
) -> Response:
    """Exchange an API key for a session cookie (the key itself is never stored in it)."""
    digest = key_digest(key.strip())
    if await run_in_threadpool(services.keys.principal_by_digest, digest) is None:
        page = render("login.html", next=_safe_next(next), error="unknown or revoked API key")
        return HTMLResponse(page, status.HTTP_401_UNAUTHORIZED)
    sessions: Sessions = request.app.state.sessions
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        sessions.issue(digest),
        max_age=sessions.seconds,
        path="/dashboard",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", include_in_schema=False)
async def delete_session() -> Response:
    response = RedirectResponse("/dashboard/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


def _ask_page(
    services: Services, user: PageUser, code: int = status.HTTP_200_OK, **context: Any
) -> HTMLResponse:
    context.setdefault("question", "")
    context.setdefault("selected", user.principal.tiers)
    context.setdefault("result", None)
    context.setdefault("notice", None)
    context.setdefault("error", None)
    tiers = [t for t in services.settings.tiers if t in user.principal.tiers]
    page = render("ask.html", tiers=tiers, csrf=user.csrf, key_name=user.principal.name, **context)
    return HTMLResponse(page, code)


@router.get("/ask", response_class=HTMLResponse, include_in_schema=False)
async def read_ask_page(services: ServicesDep, user: PageUserDep) -> HTMLResponse:
    return _ask_page(services, user)


@dataclass(frozen=True)
class AskForm:
    question: str
    tiers: list[str]
    csrf: str | None


def ask_form(
    question: Annotated[str, Form()] = "",
    tiers: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies form defaults)
    csrf: Csrf = None,
) -> AskForm:
    return AskForm(question, tiers, csrf)


AskFormDep = Annotated[AskForm, Depends(ask_form)]


def _prepared_ask(
    request: Request, services: Services, user: PageUser, form: AskForm
) -> functools.partial[AskResult]:
    """The ask a page form describes, checked as `/ask` checks its body (422, 403)."""
    check_csrf(request, user, form.csrf)
    try:
        body = AskRequest(question=form.question, tiers=form.tiers or None)
    except ValidationError as exc:
        message = "; ".join(str(e["msg"]) for e in exc.errors())
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message) from None
    return prepared_ask(services, user.principal, body)


def _result_html(result: AskResult, user: PageUser) -> str:
    return render("_result.html", result=result, csrf=user.csrf)


@router.post("/ask", response_class=HTMLResponse, include_in_schema=False)
async def create_page_answer(
    request: Request, services: ServicesDep, user: PageUserDep, form: AskFormDep
) -> HTMLResponse:
    """The non-JavaScript path: the whole page with the answer or the refusal."""
    shown: dict[str, Any] = {
        "question": form.question,
        "selected": form.tiers or user.principal.tiers,
    }
    try:
        ask = _prepared_ask(request, services, user, form)
    except HTTPException as exc:
        return _ask_page(services, user, exc.status_code, error=exc.detail, **shown)
    result = await run_in_threadpool(ask)
    return _ask_page(services, user, result=result, **shown)


@router.post("/ask/stream", include_in_schema=False)
async def create_page_stream(
    request: Request, services: ServicesDep, user: PageUserDep, form: AskFormDep
) -> Response:
    """The page's script: `sentence` events as the answer is made, then a `result` event with
    the result's HTML (the same template as the whole page's)."""
    ask = _prepared_ask(request, services, user, form)
    await run_in_threadpool(services.store.check)

    def encode(result: AskResult) -> str:
        return json.dumps({"html": _result_html(result, user), "trace_id": result.trace_id})

    return StreamingResponse(events(ask, encode), media_type="text/event-stream")


@router.post("/feedback", response_class=HTMLResponse, include_in_schema=False)
async def create_page_feedback(
    request: Request,
    services: ServicesDep,
    user: PageUserDep,
    trace_id: Annotated[str, Form()] = "",
    rating: Annotated[str, Form()] = "",
    comment: OptionalText = None,
    correct_doc_id: OptionalText = None,
    csrf: Csrf = None,
) -> HTMLResponse:
    """A rating from the page's buttons, by `/feedback`'s rules (403 for a wider key's ask)."""
    try:
        check_csrf(request, user, csrf)
        try:
            body = FeedbackCreate(
                trace_id=trace_id,
                rating=rating,  # type: ignore[arg-type]  # validated here: 422 below
                comment=comment or None,
                correct_doc_id=correct_doc_id or None,
            )
        except ValidationError as exc:
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message) from None
        stored = Rating(**body.model_dump(), key_name=user.principal.name)
        try:
            await run_in_threadpool(services.feedback.rate, stored, user.principal.tiers)
        except FeedbackError as exc:
            raise HTTPException(exc.status, str(exc)) from None
    except HTTPException as exc:
        return _ask_page(services, user, exc.status_code, error=exc.detail)
    notice = f"Rated {rating.replace('_', ' ')}: ask {trace_id}"
    return _ask_page(services, user, status.HTTP_201_CREATED, notice=notice)


def login_redirect(request: Request) -> Response:
    """Where `api.auth.LoginRequired` sends a browser: the login page, then back here."""
    if request.method == "GET":
        target = quote(
            str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        )
        return RedirectResponse(f"/dashboard/login?next={target}", status.HTTP_303_SEE_OTHER)
    page = render("login.html", next="/dashboard/ask", error="your session has ended: log in again")
    return HTMLResponse(page, status.HTTP_401_UNAUTHORIZED)
