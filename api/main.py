"""Builds the FastAPI app. `ragops serve` runs `create_app()` under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from api.auth import LoginRequired
from api.limits import BodyLimit, RateLimiter
from api.routes import ask, dashboard, feedback, health, jobs, reports, sources
from api.session import Sessions
from rag.retrieval.store import StoreError
from rag.settings import Settings
from service.container import Services, configure
from service.host import IngestionHost

log = logging.getLogger("ragops.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or configure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings)
        # Open the store (and load the model) now: the first request should not pay for it,
        # and the embedded store's lock is taken for this process's lifetime.
        _ = services.asker
        services.embedder.embed_query("warm up")
        services.qualifiers.parse("Is the parser loaded?")
        app.state.services = services
        host = IngestionHost(services)
        host.start(schedule=settings.scheduler_enabled)
        app.state.host = host
        log.info(
            "ragops API ready (store=%s, data dir=%s)", settings.store_backend, settings.data_dir
        )
        try:
            yield
        finally:
            host.stop()
            services.close()

    app = FastAPI(title="ragops", version="0.1.0", lifespan=lifespan)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_min, settings.rate_limit_burst)
    app.state.sessions = Sessions(settings.session_secret, settings.session_hours)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _: LoginRequired) -> Response:
        return dashboard.login_redirect(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # What was wrong and where, without echoing the input: a 50 kB question came back
        # whole in its 422, and `"top_k": 1e309` (infinity) could not be written as JSON at
        # all, which made the 422 a 500.
        errors = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        sent = request.headers.get("content-type", "")
        for e in errors:
            # `curl -d '{...}'` sends form encoding: the JSON body is then read as a string,
            # and pydantic's "Input should be a valid dictionary" does not say why.
            if tuple(e.get("loc", ())) == ("body",) and "json" not in sent.lower():
                e["msg"] = (
                    "the body must be a JSON object sent with Content-Type: application/json "
                    f"(this request's: {sent or 'none'})"
                )
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StoreError)
    async def store_unavailable(_: Request, exc: StoreError) -> JSONResponse:
        # The vector store cannot serve (its directory missing, read-only or full, locked by
        # another process, the Qdrant server unreachable): 503 with the reason, never a stack
        # trace. The store looks again on later calls and serves once the fault clears.
        # A named fault is the environment's; a plain StoreError (the engine failed for a
        # reason no check names) may be ours: its stack goes to the log, not the client.
        generic = type(exc) is StoreError
        log.log(
            logging.ERROR if generic else logging.WARNING,
            "store unavailable (%s): %s",
            exc.reason,
            exc,
            exc_info=exc if generic else None,
        )
        return JSONResponse({"detail": str(exc), "reason": exc.reason}, status_code=503)

    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(sources.router)
    app.include_router(jobs.router)
    app.include_router(reports.router)
    app.include_router(feedback.router)
    app.include_router(dashboard.router)
    return app
