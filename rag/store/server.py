"""Server / cluster backend: qdrant-client against a Qdrant URL, one collection per tier.

`QdrantServerStore(":memory:", ...)` runs the same code path in-process for tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from qdrant_client import QdrantClient, models

from rag.store.base import (
    DATETIME_FIELDS,
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    ChunkFilter,
    Dim,
    Fusion,
    QueryMode,
    check_tier,
    conditions,
    resolve_dim,
)
from rag.types import ChunkPayload, ChunkPoint, ScoredChunk, SparseVector


class _Spell:
    """Payload conditions in qdrant-client's models."""

    def any_of(self, key: str, values: list[str]) -> Any:
        return models.FieldCondition(key=key, match=models.MatchAny(any=values))

    def equals(self, key: str, value: str) -> Any:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    def after(self, key: str, instant: datetime) -> Any:
        return models.FieldCondition(key=key, range=models.DatetimeRange(gt=instant))

    def at_or_before(self, key: str, instant: datetime) -> Any:
        return models.FieldCondition(key=key, range=models.DatetimeRange(lte=instant))

    def is_empty(self, key: str) -> Any:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))


def _filter(where: ChunkFilter | None) -> models.Filter | None:
    if where is None:
        return None
    must, must_not = conditions(where, _Spell())
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def _sparse(vec: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vec.indices), values=list(vec.values))


class QdrantServerStore:
    """`QdrantServerStore("http://qdrant:6333", ["verified", "internal"], dim=384)`"""

    def __init__(
        self,
        location: str,
        tiers: Sequence[str],
        dim: Dim,
        prefix: str = "ragops_",
        api_key: str | None = None,
    ) -> None:
        self.tiers = list(tiers)
        self.dim = dim
        self.prefix = prefix
        # Local mode ignores payload indexes (and warns); a server needs them.
        self._index_payload = location != ":memory:"
        if location == ":memory:":
            self._client = QdrantClient(location=":memory:")
        else:
            self._client = QdrantClient(url=location, api_key=api_key)
        for tier in self.tiers:
            self._ensure(tier)

    def _name(self, tier: str) -> str:
        check_tier(self.tiers, tier)
        return f"{self.prefix}{tier}"

    def _ensure(self, tier: str) -> None:
        name = self._name(tier)
        if self._client.collection_exists(name):
            return
        self._client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(
                    size=resolve_dim(self.dim), distance=models.Distance.COSINE
                )
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        if not self._index_payload:
            return
        for field in KEYWORD_FIELDS:
            self._client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        for field in DATETIME_FIELDS:
            self._client.create_payload_index(name, field, models.PayloadSchemaType.DATETIME)

    def upsert(self, tier: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        self._client.upsert(
            self._name(tier),
            points=[
                models.PointStruct(
                    id=p.id,
                    vector={DENSE: list(p.dense), SPARSE: _sparse(p.sparse)},
                    payload=p.payload.to_dict(),
                )
                for p in points
            ],
            wait=True,
        )

    def delete(self, tier: str, where: ChunkFilter) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to delete with an empty filter")
        self._client.delete(self._name(tier), points_selector=models.FilterSelector(filter=flt))

    def set_payload(self, tier: str, where: ChunkFilter, values: dict[str, Any]) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to update every point with an empty filter")
        self._client.set_payload(
            self._name(tier), payload=values, points=models.FilterSelector(filter=flt), wait=True
        )

    def count(self, tier: str, where: ChunkFilter | None = None) -> int:
        return int(
            self._client.count(self._name(tier), count_filter=_filter(where), exact=True).count
        )

    def scroll(
        self, tier: str, where: ChunkFilter | None = None, batch: int = 256
    ) -> Iterator[ChunkPayload]:
        offset: Any = None
        flt = _filter(where)
        while True:
            records, offset = self._client.scroll(
                self._name(tier), scroll_filter=flt, limit=batch, offset=offset, with_payload=True
            )
            for rec in records:
                yield ChunkPayload.from_dict(dict(rec.payload or {}))
            if offset is None or not records:
                return

    def dense_vectors(self, tier: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        records = self._client.retrieve(
            self._name(tier), ids=list(chunk_ids), with_payload=False, with_vectors=[DENSE]
        )
        out: dict[str, list[float]] = {}
        for rec in records:
            if isinstance(rec.vector, dict) and DENSE in rec.vector:
                out[str(rec.id)] = list(rec.vector[DENSE])  # type: ignore[arg-type]
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
        name = self._name(tier)
        flt = _filter(where)
        if mode == "dense":
            resp = self._client.query_points(
                name, query=list(dense or []), using=DENSE, query_filter=flt, limit=limit
            )
        elif mode == "sparse":
            assert sparse is not None
            resp = self._client.query_points(
                name, query=_sparse(sparse), using=SPARSE, query_filter=flt, limit=limit
            )
        else:
            prefetch = []
            if dense is not None:
                prefetch.append(
                    models.Prefetch(
                        query=list(dense), using=DENSE, filter=flt, limit=prefetch_limit
                    )
                )
            if sparse is not None:
                prefetch.append(
                    models.Prefetch(
                        query=_sparse(sparse), using=SPARSE, filter=flt, limit=prefetch_limit
                    )
                )
            method = models.Fusion.RRF if fusion == "rrf" else models.Fusion.DBSF
            resp = self._client.query_points(
                name, prefetch=prefetch, query=models.FusionQuery(fusion=method), limit=limit
            )
        return [
            ScoredChunk(payload=ChunkPayload.from_dict(dict(p.payload or {})), score=float(p.score))
            for p in resp.points
        ]

    def optimize(self, tier: str) -> None:
        # A Qdrant server optimises segments in the background; nothing to do here.
        self._name(tier)

    def close(self) -> None:
        self._client.close()
