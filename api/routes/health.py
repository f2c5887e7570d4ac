"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from rag.retrieval.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=None)
def read_health(services: ServicesDep) -> dict[str, Any] | JSONResponse:
    """200 `{"status": "ok", "store", "chunks": {tier: count}}` when the store answers.

    503 `{"status": "degraded", "reason", "detail", "store"}` when it cannot (its directory
    missing, read-only or full, locked by another process, the Qdrant server unreachable), so
    a load balancer takes this node out while the process stays up. Each call looks at the
    store afresh: the node reports ok again once the fault clears.
    """
    backend = services.settings.store_backend
    store = services.store
    try:
        store.check()
        chunks = {tier: store.count(tier) for tier in store.tiers}
    except StoreError as exc:
        return JSONResponse(
            {"status": "degraded", "reason": exc.reason, "detail": str(exc), "store": backend},
            status_code=503,
        )
    return {"status": "ok", "store": backend, "chunks": chunks}
