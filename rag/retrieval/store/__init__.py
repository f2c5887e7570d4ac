"""Vector store: one interface (`VectorStore`), an embedded and a server backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag.retrieval.store.base import (
    ChunkFilter,
    Dim,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreMissingError,
    StoreQuery,
    StoreReadOnlyError,
    StoreUnreachableError,
    VectorStore,
)

__all__ = [
    "ChunkFilter",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreMissingError",
    "StoreQuery",
    "StoreReadOnlyError",
    "StoreUnreachableError",
    "VectorStore",
    "open_store",
]


def open_store(
    backend: str,
    tiers: Sequence[str],
    dim: Dim,
    edge_dir: Path | None = None,
    url: str = ":memory:",
    prefix: str = "ragops_",
    api_key: str | None = None,
    min_free_bytes: int | None = None,
    search_threads: int | None = 1,
) -> VectorStore:
    """Open the configured backend; heavy client imports happen only for the one chosen.
    `min_free_bytes`: the free disk space the embedded store keeps in reserve (writes that
    would eat into it are refused); `search_threads`: each embedded shard's search pool."""
    if backend == "edge":
        from rag.retrieval.store.edge import DEFAULT_MIN_FREE_BYTES, EdgeStore

        if edge_dir is None:
            raise ValueError("the edge backend needs a directory")
        reserve = DEFAULT_MIN_FREE_BYTES if min_free_bytes is None else min_free_bytes
        return EdgeStore(
            edge_dir, tiers, dim, min_free_bytes=reserve, search_threads=search_threads
        )
    if backend == "qdrant":
        from rag.retrieval.store.server import QdrantServerStore

        return QdrantServerStore(url, tiers, dim, prefix=prefix, api_key=api_key)
    raise ValueError(f"unknown store backend {backend!r}: use 'edge' or 'qdrant'")
