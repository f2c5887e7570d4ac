"""Operator reports as JSON, the dashboard page, and Prometheus metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import PrincipalDep
from api.dashboard import render_dashboard
from api.deps import ServicesDep
from rag.metrics import CHUNKS, OVERDUE_SOURCES
from rag.pipeline import Services
from rag.reports import freshness_report, hits_report, overdue_sources
from rag.types import utc_now

router = APIRouter(tags=["operations"])
Days = Query(default=7, ge=1, le=365, description="window length in days, ending now")


def _freshness(services: Services) -> dict[str, Any]:
    return freshness_report(services.catalog, services.jobs, services.store, utc_now())


def _hits(services: Services, days: int) -> dict[str, Any]:
    now = utc_now()
    return hits_report(services.engine, services.catalog, now - timedelta(days=days), now)


@router.get("/reports/freshness")
async def read_freshness(services: ServicesDep, _: PrincipalDep) -> dict[str, Any]:
    """What is stale, expiring, overdue or failing, per source and tier."""
    return await run_in_threadpool(_freshness, services)


@router.get("/reports/hits")
async def read_hits(services: ServicesDep, _: PrincipalDep, days: int = Days) -> dict[str, Any]:
    """How often questions find evidence, what is cited, refused and never retrieved."""
    return await run_in_threadpool(_hits, services, days)


@router.get("/dashboard", response_class=HTMLResponse)
async def read_dashboard(services: ServicesDep, _: PrincipalDep, days: int = Days) -> str:
    """The operator dashboard (self-contained HTML)."""
    freshness = await run_in_threadpool(_freshness, services)
    hits = await run_in_threadpool(_hits, services, days)
    return render_dashboard(freshness, hits, days)


def _gauges(services: Services) -> None:
    store = services.store
    for tier in store.tiers:
        CHUNKS.labels(tier).set(store.count(tier))
    OVERDUE_SOURCES.set(len(overdue_sources(services.catalog, utc_now())))


@router.get("/metrics")
async def read_metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    await run_in_threadpool(_gauges, services)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
