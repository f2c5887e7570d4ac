"""The expiry sweep: delete chunks past their TTL, forget their documents, fix BM25 IDF.

Query-time filtering already keeps expired chunks out of every answer; the sweep reclaims
the space and keeps the engine's IDF (which counts stored points) true.
"""

from __future__ import annotations

from datetime import datetime

from rag.ops.catalog import Catalog
from rag.retrieval.store import ChunkFilter, VectorStore


def sweep_expired(store: VectorStore, catalog: Catalog, now: datetime) -> dict[str, int]:
    """Returns chunks deleted per tier."""
    deleted: dict[str, int] = {}
    for tier in store.tiers:
        expired = ChunkFilter(expired_at=now)
        count = store.count(tier, expired)
        if count:
            store.delete(tier, expired)
            store.optimize(tier)
        deleted[tier] = count
    for doc in catalog.expired_documents(now):
        catalog.delete_document(doc)
    return deleted
