"""The vector store interface: one collection per trust tier, hybrid dense + BM25 queries."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from rag.types import ChunkPayload, ChunkPoint, ScoredChunk, SparseVector

DENSE = "dense"
SPARSE = "bm25"
# Payload fields the store filters on; each backend indexes them.
KEYWORD_FIELDS = ("doc_id", "chunk_id", "source", "doc_hash")
DATETIME_FIELDS = ("expires_at",)

QueryMode = Literal["hybrid", "dense", "sparse"]
# The dense size, or how to learn it: only creating a collection needs it, so opening an
# existing store (for a report, a listing) never has to load the embedding model.
Dim = int | Callable[[], int]


def resolve_dim(dim: Dim) -> int:
    return dim if isinstance(dim, int) else dim()


Fusion = Literal["rrf", "dbsf"]


class StoreError(RuntimeError):
    """A store operation failed; the message says what to do.

    The HTTP API answers any of these with 503 `{"detail": message, "reason": reason}` and
    `/healthz` reports the service degraded with the same reason. The subclasses name faults
    outside this process; each backend re-examines them on later calls and serves again by
    itself once the fault clears (no restart, no repair).
    """

    reason = "store_error"


class StoreLockedError(StoreError):
    """The embedded store is open in another process (one process per shard directory)."""

    reason = "store_locked"


class StoreMissingError(StoreError):
    """The embedded store's directory is gone (moved, deleted, its volume not mounted)."""

    reason = "store_missing"


class StoreReadOnlyError(StoreError):
    """The embedded store's directory cannot be written (read-only mount, permissions)."""

    reason = "store_read_only"


class StoreFullError(StoreError):
    """The disk holding the embedded store has too little free space to write safely."""

    reason = "store_full"


class StoreUnreachableError(StoreError):
    """The Qdrant server does not answer (connection refused, timeout, 502/503/504)."""

    reason = "store_unreachable"


@dataclass(frozen=True)
class ChunkFilter:
    """Backend-neutral filter. Fields left as None do not filter."""

    doc_ids: Collection[str] | None = None
    chunk_ids: Collection[str] | None = None
    source: str | None = None
    exclude_chunk_ids: Collection[str] | None = None
    # Only chunks whose expires_at is after this instant (query time: never serve expired).
    live_at: datetime | None = None
    # Only chunks whose expires_at is at or before this instant (the expiry sweep).
    expired_at: datetime | None = None
    # Only chunks flagged at ingestion as trying to instruct a model (payload `injection`).
    flagged: bool = False
    # Only chunks read by OCR below the confidence floor (payload `ocr_flag`).
    ocr_flagged: bool = False


@dataclass(frozen=True)
class StoreQuery:
    """One engine query of one tier: `hybrid` fuses the dense and the BM25 (sparse) nearest in
    the engine (`fusion` over `prefetch_limit` of each); `dense` or `sparse` ranks by one."""

    limit: int
    dense: Sequence[float] | None = None
    sparse: SparseVector | None = None
    where: ChunkFilter | None = None
    mode: QueryMode = "hybrid"
    fusion: Fusion = "rrf"
    prefetch_limit: int = 50


class ConditionFactory(Protocol):
    """How a backend spells the few payload conditions the store uses."""

    def any_of(self, key: str, values: list[str]) -> Any: ...

    def equals(self, key: str, value: str) -> Any: ...

    def after(self, key: str, instant: datetime) -> Any: ...

    def at_or_before(self, key: str, instant: datetime) -> Any: ...

    def is_empty(self, key: str) -> Any: ...

    # The backend's filter type, called with `must=` and `must_not=` lists (or None).
    filter: Callable[..., Any]


def engine_filter(where: ChunkFilter | None, spell: ConditionFactory) -> Any | None:
    """`where` as the backend's filter; None when it filters nothing."""
    if where is None:
        return None
    must, must_not = conditions(where, spell)
    if not must and not must_not:
        return None
    return spell.filter(must=must or None, must_not=must_not or None)


def conditions(where: ChunkFilter, spell: ConditionFactory) -> tuple[list[Any], list[Any]]:
    """The (must, must_not) conditions of a filter, in one backend's types."""
    must: list[Any] = []
    must_not: list[Any] = []
    if where.doc_ids is not None:
        must.append(spell.any_of("doc_id", list(where.doc_ids)))
    if where.chunk_ids is not None:
        must.append(spell.any_of("chunk_id", list(where.chunk_ids)))
    if where.source is not None:
        must.append(spell.equals("source", where.source))
    if where.exclude_chunk_ids:
        must_not.append(spell.any_of("chunk_id", list(where.exclude_chunk_ids)))
    if where.live_at is not None:
        must.append(spell.after("expires_at", where.live_at))
    if where.expired_at is not None:
        must.append(spell.at_or_before("expires_at", where.expired_at))
    if where.flagged:
        must_not.append(spell.is_empty("injection"))  # missing and null count as empty
    if where.ocr_flagged:
        must_not.append(spell.is_empty("ocr_flag"))
    return must, must_not


def payload_of(point: Any) -> ChunkPayload:
    """A chunk from an engine record (either backend's point or record type)."""
    return ChunkPayload.from_dict(dict(point.payload or {}))


def scored(points: Iterable[Any]) -> list[ScoredChunk]:
    return [ScoredChunk(payload=payload_of(p), score=float(p.score)) for p in points]


def id_scores(points: Iterable[Any]) -> dict[str, float]:
    """Chunk id -> score, for payload-free queries."""
    return {str(p.id): float(p.score) for p in points}


def dense_of(records: Iterable[Any]) -> dict[str, list[float]]:
    """Chunk id -> dense vector, for records read with the dense vector only."""
    out: dict[str, list[float]] = {}
    for rec in records:
        if isinstance(rec.vector, dict) and DENSE in rec.vector:
            out[str(rec.id)] = list(rec.vector[DENSE])
    return out


def pages(read: Callable[[Any], tuple[Sequence[Any], Any]]) -> Iterator[ChunkPayload]:
    """Every chunk of a paged scroll; `read(offset)` returns a page and the next offset."""
    offset: Any = None
    while True:
        records, offset = read(offset)
        for rec in records:
            yield payload_of(rec)
        if offset is None or not records:
            return


class VectorStore(Protocol):
    """What ingestion, retrieval and reports need from Qdrant. Two backends implement it."""

    tiers: list[str]

    def upsert(self, tier: str, points: Sequence[ChunkPoint]) -> None: ...

    def delete(self, tier: str, where: ChunkFilter) -> None: ...

    def set_payload(self, tier: str, where: ChunkFilter, values: dict[str, Any]) -> None: ...

    def count(self, tier: str, where: ChunkFilter | None = None) -> int: ...

    def scroll(
        self, tier: str, where: ChunkFilter | None = None, batch: int = 256
    ) -> Iterator[ChunkPayload]: ...

    def dense_vectors(self, tier: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]: ...

    def query(self, tier: str, q: StoreQuery) -> list[ScoredChunk]: ...

    def scores(self, tier: str, queries: Sequence[StoreQuery]) -> list[dict[str, float]]:
        """Several queries of one tier in one engine call, each as {chunk id: score}: no
        payloads are read (the candidates' evidence scores need none)."""
        ...

    def optimize(self, tier: str) -> None: ...

    def check(self) -> None:
        """Raise the StoreError that keeps the store from serving now, if any. Looks afresh
        on every call and recovers what can be recovered (reopen, reconnect)."""
        ...

    def close(self) -> None: ...


def check_tier(tiers: Sequence[str], tier: str) -> None:
    if tier not in tiers:
        raise ValueError(f"unknown tier {tier!r}; configured tiers: {', '.join(tiers)}")
