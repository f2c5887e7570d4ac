"""Server / cluster backend: qdrant-client against a Qdrant URL, one collection per tier.

`QdrantServerStore(":memory:", ...)` runs the same code path in-process for tests.

A server that does not answer (refused, timed out, 502/503/504) makes every call raise
`StoreUnreachableError`, at start-up too: the service starts degraded rather than not at all,
creates its collections the first time the server answers, and serves again by itself then.
Nothing is retried inside a call: the caller (a request, an ingestion job) fails at once with
the reason, and the next one tries again.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from rag.retrieval.store.base import (
    DATETIME_FIELDS,
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    ChunkFilter,
    Dim,
    StoreError,
    StoreQuery,
    StoreUnreachableError,
    check_tier,
    dense_of,
    engine_filter,
    id_scores,
    pages,
    resolve_dim,
    scored,
)
from rag.types import ChunkPayload, ChunkPoint, ScoredChunk, SparseVector

log = logging.getLogger(__name__)

T = TypeVar("T")


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

    filter = staticmethod(models.Filter)


def _filter(where: ChunkFilter | None) -> models.Filter | None:
    return engine_filter(where, _Spell())


def _request(q: StoreQuery, with_payload: bool) -> models.QueryRequest:
    flt = _filter(q.where)
    args: dict[str, Any] = {"limit": q.limit, "with_payload": with_payload}
    if q.mode == "dense":
        return models.QueryRequest(query=list(q.dense or []), using=DENSE, filter=flt, **args)
    if q.mode == "sparse":
        assert q.sparse is not None
        return models.QueryRequest(query=_sparse(q.sparse), using=SPARSE, filter=flt, **args)
    prefetch = []
    if q.dense is not None:
        prefetch.append(
            models.Prefetch(query=list(q.dense), using=DENSE, filter=flt, limit=q.prefetch_limit)
        )
    if q.sparse is not None:
        prefetch.append(
            models.Prefetch(
                query=_sparse(q.sparse), using=SPARSE, filter=flt, limit=q.prefetch_limit
            )
        )
    method = models.Fusion.RRF if q.fusion == "rrf" else models.Fusion.DBSF
    return models.QueryRequest(prefetch=prefetch, query=models.FusionQuery(fusion=method), **args)


def _sparse(vec: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vec.indices), values=list(vec.values))


def _public(location: str) -> str:
    """The server's address without credentials or query string, for messages."""
    parts = urlsplit(location)
    if not parts.scheme or not parts.hostname:
        return location
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


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
        self.where = _public(location)
        # Local mode ignores payload indexes (and warns); a server needs them.
        self._index_payload = location != ":memory:"
        if location == ":memory:":
            self._client = QdrantClient(location=":memory:")
        else:
            self._client = QdrantClient(url=location, api_key=api_key)
        self._ensured: set[str] = set()
        self._lock = threading.Lock()
        try:
            for tier in self.tiers:
                self._ensure(tier)
        except StoreUnreachableError as exc:
            log.warning("%s; serving degraded until it answers", exc)

    def _name(self, tier: str) -> str:
        check_tier(self.tiers, tier)
        return f"{self.prefix}{tier}"

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One request to the server; a failure becomes a StoreError saying what happened."""
        try:
            return call()
        except ResponseHandlingException as exc:
            cause = getattr(exc, "source", None) or exc
            raise StoreUnreachableError(
                f"cannot reach the Qdrant server at {self.where} ({cause}); "
                "the service resumes by itself once it answers"
            ) from exc
        except UnexpectedResponse as exc:
            detail = f"HTTP {exc.status_code} {exc.reason_phrase}".strip()
            if exc.status_code in (502, 503, 504):
                raise StoreUnreachableError(
                    f"the Qdrant server at {self.where} is not serving ({detail}); "
                    "the service resumes by itself once it answers"
                ) from exc
            body = exc.content.decode("utf-8", "replace")[:300]
            raise StoreError(
                f"the Qdrant server at {self.where} refused to {what}: {detail}: {body}"
            ) from exc

    def _ensure(self, tier: str) -> str:
        """The tier's collection name, once the collection is known to exist (created the
        first time the server answers)."""
        name = self._name(tier)
        if tier in self._ensured:
            return name
        with self._lock:
            if tier not in self._ensured:
                self._call("create collections", lambda: self._create(name))
                self._ensured.add(tier)
        return name

    def _create(self, name: str) -> None:
        if not self._client.collection_exists(name):
            self._client.create_collection(
                name,
                vectors_config={
                    DENSE: models.VectorParams(
                        size=resolve_dim(self.dim), distance=models.Distance.COSINE
                    )
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
        if not self._index_payload:
            return
        # Creating an index that exists is a no-op on the server, so a start-up cut short
        # between the collection and its indexes completes here the next time.
        for field in KEYWORD_FIELDS:
            self._client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        for field in DATETIME_FIELDS:
            self._client.create_payload_index(name, field, models.PayloadSchemaType.DATETIME)

    def upsert(self, tier: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        name = self._ensure(tier)
        structs = [
            models.PointStruct(
                id=p.id,
                vector={DENSE: list(p.dense), SPARSE: _sparse(p.sparse)},
                payload=p.payload.to_dict(),
            )
            for p in points
        ]
        self._call("write", lambda: self._client.upsert(name, points=structs, wait=True))

    def delete(self, tier: str, where: ChunkFilter) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to delete with an empty filter")
        name = self._ensure(tier)
        selector = models.FilterSelector(filter=flt)
        self._call("delete", lambda: self._client.delete(name, points_selector=selector))

    def set_payload(self, tier: str, where: ChunkFilter, values: dict[str, Any]) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to update every point with an empty filter")
        name = self._ensure(tier)
        selector = models.FilterSelector(filter=flt)
        self._call(
            "update payloads",
            lambda: self._client.set_payload(name, payload=values, points=selector, wait=True),
        )

    def count(self, tier: str, where: ChunkFilter | None = None) -> int:
        name = self._ensure(tier)
        flt = _filter(where)
        result = self._call("count", lambda: self._client.count(name, count_filter=flt, exact=True))
        return int(result.count)

    def scroll(
        self, tier: str, where: ChunkFilter | None = None, batch: int = 256
    ) -> Iterator[ChunkPayload]:
        flt = _filter(where)

        # Checked on the first read, as when this was a generator: nothing runs until iterated.
        def read(offset: Any) -> tuple[Sequence[Any], Any]:
            page = functools.partial(
                self._client.scroll,
                self._ensure(tier),
                scroll_filter=flt,
                limit=batch,
                offset=offset,
                with_payload=True,
            )
            return self._call("scroll", page)

        return pages(read)

    def dense_vectors(self, tier: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        name = self._ensure(tier)
        records = self._call(
            "read vectors",
            lambda: self._client.retrieve(
                name, ids=list(chunk_ids), with_payload=False, with_vectors=[DENSE]
            ),
        )
        return dense_of(records)

    def query(self, tier: str, q: StoreQuery) -> list[ScoredChunk]:
        (resp,) = self._batch(tier, [_request(q, with_payload=True)])
        return scored(resp.points)

    def scores(self, tier: str, queries: Sequence[StoreQuery]) -> list[dict[str, float]]:
        if not queries:
            return []
        responses = self._batch(tier, [_request(q, with_payload=False) for q in queries])
        return [id_scores(r.points) for r in responses]

    def _batch(self, tier: str, requests: list[models.QueryRequest]) -> list[models.QueryResponse]:
        name = self._ensure(tier)
        batch = functools.partial(self._client.query_batch_points, name, requests=requests)
        return self._call("query", batch)

    def optimize(self, tier: str) -> None:
        # A Qdrant server optimises segments in the background; nothing to do here.
        self._name(tier)

    def check(self) -> None:
        for tier in self.tiers:
            self._ensure(tier)
        self._call("list collections", self._client.get_collections)

    def close(self) -> None:
        self._client.close()
