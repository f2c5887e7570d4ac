"""Operator reports as JSON (the dashboard page renders the same), and Prometheus metrics."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import PrincipalDep
from api.deps import ServicesDep
from rag.ops.auth import Principal
from rag.ops.metrics import CHUNKS, OVERDUE_SOURCES
from rag.ops.report_models import FreshnessReport, HitsReport
from rag.ops.reports import freshness_report, hits_report, overdue_sources
from rag.types import utc_now
from service.container import Services

router = APIRouter(tags=["operations"])
Days = Query(default=7, ge=1, le=365, description="window length in days, ending now")


# Each key is shown the rows of the tiers it may read, and the asks of keys that read no more.
def freshness_for(services: Services, principal: Principal) -> FreshnessReport:
    return freshness_report(
        services.catalog, services.jobs, services.store, utc_now(), principal.tiers
    )


def hits_for(services: Services, principal: Principal, days: int) -> HitsReport:
    now = utc_now()
    since = now - timedelta(days=days)
    return hits_report(services.engine, services.catalog, since, now, principal.tiers)


@router.get("/reports/freshness")
async def read_freshness(services: ServicesDep, principal: PrincipalDep) -> FreshnessReport:
    """What is stale, expiring, overdue or failing, per source and tier."""
    return await run_in_threadpool(freshness_for, services, principal)


@router.get("/reports/hits")
async def read_hits(services: ServicesDep, principal: PrincipalDep, days: int = Days) -> HitsReport:
    """How often questions find evidence, what is cited, refused and never retrieved."""
    return await run_in_threadpool(hits_for, services, principal, days)


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
