"""Embedded backend: qdrant-edge (Qdrant's engine in-process), one shard directory per tier.

Only one process may open a shard directory; a second one gets `StoreLockedError`.
Threads of one process share the shard safely.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from rag.store.base import (
    DATETIME_FIELDS,
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    ChunkFilter,
    Dim,
    Fusion,
    QueryMode,
    StoreError,
    StoreLockedError,
    check_tier,
    conditions,
    resolve_dim,
)
from rag.types import ChunkPayload, ChunkPoint, ScoredChunk, SparseVector, iso


class _Spell:
    """Payload conditions in qdrant-edge's types (datetimes as ISO strings)."""

    def any_of(self, key: str, values: list[str]) -> Any:
        return qe.FieldCondition(key=key, match=qe.MatchAny(values))

    def equals(self, key: str, value: str) -> Any:
        return qe.FieldCondition(key=key, match=qe.MatchValue(value))

    def after(self, key: str, instant: datetime) -> Any:
        return qe.FieldCondition(key=key, range=qe.RangeDateTime(gt=iso(instant)))

    def at_or_before(self, key: str, instant: datetime) -> Any:
        return qe.FieldCondition(key=key, range=qe.RangeDateTime(lte=iso(instant)))

    def is_empty(self, key: str) -> Any:
        return qe.IsEmptyCondition(key)


def _filter(where: ChunkFilter | None) -> qe.Filter | None:
    if where is None:
        return None
    must, must_not = conditions(where, _Spell())
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def _sparse(vec: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(indices=list(vec.indices), values=list(vec.values))


class EdgeStore:
    """`EdgeStore(Path(".data/qdrant-edge"), ["verified", "internal"], dim=384)`"""

    def __init__(self, root: Path, tiers: Sequence[str], dim: Dim) -> None:
        self.root = Path(root)
        self.tiers = list(tiers)
        self.dim = dim
        self._shards: dict[str, qe.EdgeShard] = {}
        self._lock = threading.Lock()
        try:
            for tier in self.tiers:
                self._shards[tier] = self._open(tier)
        except Exception:
            self.close()
            raise

    def _config(self) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors={
                DENSE: qe.EdgeVectorParams(size=resolve_dim(self.dim), distance=qe.Distance.Cosine)
            },
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )

    def _open(self, tier: str) -> qe.EdgeShard:
        path = self.root / tier
        exists = path.is_dir() and any(path.iterdir())
        try:
            if exists:
                shard = qe.EdgeShard.load(str(path))
            else:
                path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(path), self._config())
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"the embedded store at {self.root} is open in another process "
                    "(a running `ragops serve` or worker holds it). Send the work to that "
                    "server (POST /ingest/jobs) or stop it, or use a separate RAG_DATA_DIR."
                ) from exc
            raise StoreError(f"cannot open the embedded store shard {path}: {exc}") from exc
        if not exists:
            for name in KEYWORD_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
                )
            for name in DATETIME_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Datetime)
                )
        return shard

    def _shard(self, tier: str) -> qe.EdgeShard:
        check_tier(self.tiers, tier)
        return self._shards[tier]

    def upsert(self, tier: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        shard = self._shard(tier)
        batch = [
            qe.Point(
                id=p.id,
                vector={DENSE: list(p.dense), SPARSE: _sparse(p.sparse)},
                payload=p.payload.to_dict(),
            )
            for p in points
        ]
        shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, tier: str, where: ChunkFilter) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to delete with an empty filter")
        self._shard(tier).update(qe.UpdateOperation.delete_points_by_filter(flt))

    def set_payload(self, tier: str, where: ChunkFilter, values: dict[str, Any]) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to update every point with an empty filter")
        self._shard(tier).update(qe.UpdateOperation.set_payload_by_filter(flt, values))

    def count(self, tier: str, where: ChunkFilter | None = None) -> int:
        return int(self._shard(tier).count(qe.CountRequest(exact=True, filter=_filter(where))))

    def scroll(
        self, tier: str, where: ChunkFilter | None = None, batch: int = 256
    ) -> Iterator[ChunkPayload]:
        shard = self._shard(tier)
        offset: Any = None
        flt = _filter(where)
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch, filter=flt, with_payload=True)
            )
            for rec in records:
                yield ChunkPayload.from_dict(dict(rec.payload or {}))
            if offset is None or not records:
                return

    def dense_vectors(self, tier: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        records = self._shard(tier).retrieve(
            list(chunk_ids), with_payload=False, with_vector=[DENSE]
        )
        out: dict[str, list[float]] = {}
        for rec in records:
            vector = rec.vector
            if isinstance(vector, dict) and DENSE in vector:
                out[str(rec.id)] = list(vector[DENSE])  # type: ignore[arg-type]
        return out

    def query(
        self,
        tier: str,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        limit: int,
        where: ChunkFilter | None = None,
        mode: QueryMode = "hybrid",
        fusion: Fusion = "rrf",
        prefetch_limit: int = 50,
    ) -> list[ScoredChunk]:
        shard = self._shard(tier)
        flt = _filter(where)
        dense_q = qe.Query.Nearest(list(dense), using=DENSE) if dense is not None else None
        sparse_q = qe.Query.Nearest(_sparse(sparse), using=SPARSE) if sparse is not None else None
        if mode == "dense":
            request = qe.QueryRequest(limit=limit, query=dense_q, filter=flt, with_payload=True)
        elif mode == "sparse":
            request = qe.QueryRequest(limit=limit, query=sparse_q, filter=flt, with_payload=True)
        else:
            prefetches = [
                qe.Prefetch(limit=prefetch_limit, query=q, filter=flt)
                for q in (dense_q, sparse_q)
                if q is not None
            ]
            fused: Any = qe.Fusion.Rrf(k=60) if fusion == "rrf" else qe.Fusion.Dbsf()
            request = qe.QueryRequest(
                limit=limit,
                prefetches=prefetches,
                query=fused,
                with_payload=True,
            )
        points = shard.query(request)
        return [
            ScoredChunk(payload=ChunkPayload.from_dict(dict(p.payload or {})), score=float(p.score))
            for p in points
        ]

    def optimize(self, tier: str) -> None:
        # Sparse IDF counts deleted points until segments are optimised (DESIGN.md §4).
        self._shard(tier).optimize()

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                try:
                    shard.flush()
                finally:
                    shard.close()
            self._shards.clear()
