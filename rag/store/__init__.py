"""Vector store: one interface (`VectorStore`), an embedded and a server backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag.store.base import (
    ChunkFilter,
    Dim,
    StoreError,
    StoreLockedError,
    VectorStore,
)

__all__ = ["ChunkFilter", "StoreError", "StoreLockedError", "VectorStore", "open_store"]


def open_store(
    backend: str,
    tiers: Sequence[str],
    dim: Dim,
    edge_dir: Path | None = None,
    url: str = ":memory:",
    prefix: str = "ragops_",
    api_key: str | None = None,
) -> VectorStore:
    """Open the configured backend; heavy client imports happen only for the one chosen."""
    if backend == "edge":
        from rag.store.edge import EdgeStore

        if edge_dir is None:
            raise ValueError("the edge backend needs a directory")
        return EdgeStore(edge_dir, tiers, dim)
    if backend == "qdrant":
        from rag.store.server import QdrantServerStore

        return QdrantServerStore(url, tiers, dim, prefix=prefix, api_key=api_key)
    raise ValueError(f"unknown store backend {backend!r}: use 'edge' or 'qdrant'")
