"""Declared and ingested sources."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.deps import ServicesDep

router = APIRouter(prefix="/sources", tags=["sources"])


class SourcePublic(BaseModel):
    name: str
    tier: str
    path: str
    ttl: str
    schedule: str | None
    documents: int
    chunks: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None


@router.get("", response_model=list[SourcePublic])
def read_sources(services: ServicesDep, principal: PrincipalDep) -> list[SourcePublic]:
    """Every source of a tier the key may read, with its tier, size and last refresh."""
    counts = services.catalog.document_counts()
    return [
        SourcePublic(
            name=s.name,
            tier=s.tier,
            path=s.path,
            ttl=s.ttl,
            schedule=s.schedule,
            documents=counts.get(s.name, (0, 0))[0],
            chunks=counts.get(s.name, (0, 0))[1],
            last_success_at=s.last_success_at,
            last_failure_at=s.last_failure_at,
            last_error=s.last_error,
        )
        for s in services.catalog.sources()
        if s.tier in principal.tiers
    ]
