"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def read_health(services: ServicesDep) -> dict[str, object]:
    """The service is up; chunk counts per tier show the store answers."""
    store = services.store
    return {
        "status": "ok",
        "store": services.settings.store_backend,
        "chunks": {tier: store.count(tier) for tier in store.tiers},
    }
