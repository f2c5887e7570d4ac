"""Embedded backend: qdrant-edge (Qdrant's engine in-process), one shard directory per tier.

Only one process may open a shard directory; a second one gets `StoreLockedError`.
Threads of one process share the shard safely.

Faults after start-up. Before it touches a shard, the store checks that every tier's directory
is still the one it opened, that the store root can be written, and that the disk keeps
`min_free_bytes` free. Reads trust a clean check for `CHECK_INTERVAL_S`; writes (and `check()`,
which `/healthz` calls) always look afresh. A fault raises its `StoreError` subclass (missing,
read-only, full, locked) before anything is written. While faulted, calls look again at most
once per `CHECK_INTERVAL_S`, so the same process serves again once the fault clears:

- a directory moved away and back (a volume unmounted and mounted again) is the same
  directory: nothing to reopen;
- a directory replaced under the same path (restored from a copy) is reopened; if another
  process opened it meanwhile, the fault is `StoreLockedError` until that process lets go.

Why the free-space reserve: the engine writes through memory maps of sparse files (32 MiB WAL
segments and page files). On a full disk such a write is SIGBUS, which kills the whole process
(measured on a tmpfs: upserts until full, and loading a shard with 1.7 MiB free). So writes
are refused while less than the reserve plus `WRITE_AMPLIFICATION` times the write's own size
is free, and a shard is opened (at start-up: else a clear StoreFullError, not a crash) only
with the reserve plus `OPEN_BYTES` free.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from rag.retrieval.store.base import (
    DATETIME_FIELDS,
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    ChunkFilter,
    Dim,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreMissingError,
    StoreQuery,
    StoreReadOnlyError,
    check_tier,
    dense_of,
    engine_filter,
    id_scores,
    pages,
    resolve_dim,
    scored,
)
from rag.types import ChunkPayload, ChunkPoint, ScoredChunk, SparseVector, iso

log = logging.getLogger(__name__)

T = TypeVar("T")

# Free disk space kept in reserve below every write (RAG_STORE_MIN_FREE_MB).
DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024
# How long a clean check stands for reads, and how often a fault is looked at again.
CHECK_INTERVAL_S = 1.0
# Bytes on disk per byte of a written point (WAL entry, payload and vector storage, indexes),
# with room to spare.
WRITE_AMPLIFICATION = 4
# Free space that opening one tier's shard may take: the engine allocates its index files on
# load (measured: 11 MiB to create a tier, 23-38 MiB more to load it, empty to 10k points).
OPEN_BYTES = 48 * 1024 * 1024


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

    filter = staticmethod(qe.Filter)


def _filter(where: ChunkFilter | None) -> qe.Filter | None:
    return engine_filter(where, _Spell())


def _request(q: StoreQuery, with_payload: bool) -> qe.QueryRequest:
    flt = _filter(q.where)
    dense = qe.Query.Nearest(list(q.dense), using=DENSE) if q.dense is not None else None
    sparse = qe.Query.Nearest(_sparse(q.sparse), using=SPARSE) if q.sparse is not None else None
    if q.mode != "hybrid":
        nearest = dense if q.mode == "dense" else sparse
        return qe.QueryRequest(limit=q.limit, query=nearest, filter=flt, with_payload=with_payload)
    prefetches = [
        qe.Prefetch(limit=q.prefetch_limit, query=nearest, filter=flt)
        for nearest in (dense, sparse)
        if nearest is not None
    ]
    fused: Any = qe.Fusion.Rrf(k=60) if q.fusion == "rrf" else qe.Fusion.Dbsf()
    return qe.QueryRequest(
        limit=q.limit, prefetches=prefetches, query=fused, with_payload=with_payload
    )


def _sparse(vec: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(indices=list(vec.indices), values=list(vec.values))


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _allocated(path: Path) -> int:
    """Bytes a directory tree takes on disk (its sparse files count what they hold)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def _close_quietly(shard: qe.EdgeShard, tier: str, flush: bool = True) -> None:
    """Flush and close a shard; a fault (its directory gone, the disk full) is logged, not
    raised: whatever was not flushed is in the write-ahead log already."""
    try:
        if flush:
            shard.flush()
    except Exception as exc:
        log.warning("could not flush the %s shard while closing it: %s", tier, exc)
    try:
        shard.close()
    except Exception as exc:
        log.warning("could not close the %s shard: %s", tier, exc)


class EdgeStore:
    """`EdgeStore(Path(".data/qdrant-edge"), ["verified", "internal"], dim=384)`"""

    def __init__(
        self,
        root: Path,
        tiers: Sequence[str],
        dim: Dim,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        search_threads: int | None = 1,
    ) -> None:
        self.root = Path(root)
        self.tiers = list(tiers)
        self.dim = dim
        self.min_free_bytes = min_free_bytes
        # Each tier's shard has its own search pool (by default one thread per CPU), and the
        # binding holds the GIL while it waits for that pool: under concurrent asks on a small
        # machine, many pool threads only serialise Python work (py-spy --gil at 16 concurrent
        # asks: 65 % of GIL-held time was in shard.query). One per shard: 17.0-17.2 CPU ms per
        # ask instead of 17.7-17.8 in-process (16 threads, 2 cores), and 20 instead of 25-28
        # through HTTP on a loaded machine. None: the engine's CPU-derived default.
        self.search_threads = search_threads
        self._shards: dict[str, qe.EdgeShard] = {}
        # The (device, inode) of the directory each shard was opened from.
        self._dirs: dict[str, tuple[int, int]] = {}
        self._lock = threading.RLock()
        self._fault: StoreError | None = None
        self._checked_at = -math.inf
        self._closed = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for tier in self.tiers:
                # Opening on a nearly full disk would be SIGBUS, not an error: say why instead.
                if (fault := self._room_for(OPEN_BYTES)) is not None:
                    raise fault
                self._open(tier, create=True)
        except Exception:
            self.close()
            raise
        # Opening is the check for reads; the first write still looks at the disk.
        self._checked_at = time.monotonic()

    def _config(self, new: bool) -> qe.EdgeConfig:
        """A new shard's whole configuration; for an existing one, the runtime settings only
        (its dense vectors are inherited, so opening never needs the model's dimension)."""
        dense = (
            {DENSE: qe.EdgeVectorParams(size=resolve_dim(self.dim), distance=qe.Distance.Cosine)}
            if new
            else None
        )
        return qe.EdgeConfig(
            vectors=dense,
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            max_search_threads=self.search_threads,
        )

    def _open(self, tier: str, create: bool) -> None:
        """Open a tier's shard; only start-up (`create`) may make a new, empty one: later, an
        empty directory means the store is not there, not that it should start over."""
        path = self.root / tier
        exists = path.is_dir() and any(path.iterdir())
        if not exists and not create:
            raise StoreMissingError(
                f"the embedded store directory {path} is empty: put the store back "
                "and the service resumes by itself"
            )
        try:
            if exists:
                shard = qe.EdgeShard.load(str(path), self._config(new=False))
            else:
                path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(path), self._config(new=True))
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"the embedded store at {self.root} is open in another process "
                    "(a running `ragops serve` or worker holds it). Send the work to that "
                    "server (POST /ingest/jobs) or stop it, or use a separate RAG_DATA_DIR."
                ) from exc
            raise StoreError(f"cannot open the embedded store shard {path}: {exc}") from exc
        self._shards[tier] = shard
        if not exists:
            for name in KEYWORD_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
                )
            for name in DATETIME_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Datetime)
                )
        st = path.stat()
        self._dirs[tier] = (st.st_dev, st.st_ino)

    # -- fault checks -----------------------------------------------------------------------
    def _diagnose(self) -> StoreError | None:
        """What keeps the store from serving now (None: nothing). Reopens a tier whose
        directory was replaced. Call with the lock held."""
        for tier in self.tiers:
            path = self.root / tier
            try:
                st = path.stat()
            except OSError as exc:
                return StoreMissingError(
                    f"the embedded store directory {path} is missing ({exc.strerror or exc}: "
                    "moved, deleted, or its volume is not mounted); put it back and the "
                    "service resumes by itself"
                )
            if self._dirs.get(tier) != (st.st_dev, st.st_ino):
                log.warning("the %s store directory %s was replaced: reopening it", tier, path)
                old = self._shards.pop(tier, None)
                self._dirs.pop(tier, None)
                if old is not None:
                    _close_quietly(old, tier)
                try:
                    if (fault := self._room_for(OPEN_BYTES)) is not None:
                        return fault
                    self._open(tier, create=False)
                except StoreError as exc:
                    return exc
        return self._probe() or self._room_for(0)

    def _probe(self) -> StoreError | None:
        """Write and remove a byte in the store root: the OS says whether writes can land."""
        probe = self.root / f".ragops-write-probe-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0")
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError as exc:
            return self._os_fault(exc)
        return None

    def _os_fault(self, exc: OSError) -> StoreError:
        why = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT:
            return StoreMissingError(
                f"the embedded store directory {self.root} is missing ({why}); put it back "
                "and the service resumes by itself"
            )
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StoreReadOnlyError(
                f"the embedded store at {self.root} cannot be written ({why}); make it "
                "writable again and the service resumes by itself"
            )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return self._full(0, 0)
        return StoreError(f"cannot write to the embedded store at {self.root}: {why}")

    def _room_for(self, need: int) -> StoreError | None:
        try:
            fs = os.statvfs(self.root)
        except OSError as exc:
            return self._os_fault(exc)
        free = fs.f_bavail * fs.f_frsize
        if free < self.min_free_bytes + need:
            return self._full(free, need)
        return None

    def _full(self, free: int, need: int) -> StoreFullError:
        return StoreFullError(
            f"the disk holding the embedded store at {self.root} is full: {_mb(free)} free, "
            f"{_mb(self.min_free_bytes + need)} needed to write safely (RAG_STORE_MIN_FREE_MB "
            "sets the reserve); free some space and the service resumes by itself"
        )

    def _record(self, fault: StoreError | None) -> None:
        """Remember a verdict (lock held); log when the store goes down or comes back."""
        if fault is not None and (self._fault is None or str(self._fault) != str(fault)):
            log.warning("embedded store unavailable (%s): %s", fault.reason, fault)
        elif fault is None and self._fault is not None:
            log.warning("embedded store serving again (was: %s)", self._fault.reason)
        self._fault = fault
        self._checked_at = time.monotonic()

    def _ready(self, tier: str, need: int | None = None) -> qe.EdgeShard:
        """The tier's shard once the store may serve; `need`: bytes a write will add."""
        check_tier(self.tiers, tier)
        with self._lock:
            if self._closed:
                raise StoreError("the embedded store is closed")
            stale = time.monotonic() - self._checked_at >= CHECK_INTERVAL_S
            if stale or (need is not None and self._fault is None):
                self._record(self._diagnose())
            fault = self._fault
            if fault is None and need is not None:
                fault = self._room_for(need)  # this write does not fit; the store is fine
            shard = self._shards.get(tier)
        if fault is not None:
            raise type(fault)(str(fault))
        if shard is None:
            raise StoreError(f"the {tier} shard of the embedded store is not open")
        return shard

    def _engine(self, tier: str, what: str, call: Callable[[], T]) -> T:
        """Run one engine call; its failure is a StoreError, named by a fresh check when the
        directory or the disk explains it."""
        try:
            return call()
        except Exception as exc:
            with self._lock:
                if not self._closed:
                    self._record(self._diagnose())
                fault = self._fault
            if fault is not None:
                raise type(fault)(str(fault)) from exc
            raise StoreError(
                f"the embedded store could not {what} in tier {tier!r}: {exc}"
            ) from exc

    def check(self) -> None:
        with self._lock:
            if self._closed:
                raise StoreError("the embedded store is closed")
            self._record(self._diagnose())
            fault = self._fault
        if fault is not None:
            raise type(fault)(str(fault))

    # -- operations ---------------------------------------------------------------------------
    def upsert(self, tier: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        payloads = [p.payload.to_dict() for p in points]
        size = sum(
            len(json.dumps(payload)) + 4 * len(p.dense) + 8 * len(p.sparse.indices)
            for p, payload in zip(points, payloads)
        )
        shard = self._ready(tier, need=size * WRITE_AMPLIFICATION)
        batch = [
            qe.Point(
                id=p.id,
                vector={DENSE: list(p.dense), SPARSE: _sparse(p.sparse)},
                payload=payload,
            )
            for p, payload in zip(points, payloads)
        ]
        self._engine(tier, "write", lambda: shard.update(qe.UpdateOperation.upsert_points(batch)))

    def delete(self, tier: str, where: ChunkFilter) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to delete with an empty filter")
        shard = self._ready(tier, need=0)
        op = qe.UpdateOperation.delete_points_by_filter(flt)
        self._engine(tier, "delete", lambda: shard.update(op))

    def set_payload(self, tier: str, where: ChunkFilter, values: dict[str, Any]) -> None:
        flt = _filter(where)
        if flt is None:
            raise ValueError("refusing to update every point with an empty filter")
        shard = self._ready(tier, need=0)
        op = qe.UpdateOperation.set_payload_by_filter(flt, values)
        self._engine(tier, "update payloads", lambda: shard.update(op))

    def count(self, tier: str, where: ChunkFilter | None = None) -> int:
        shard = self._ready(tier)
        request = qe.CountRequest(exact=True, filter=_filter(where))
        return int(self._engine(tier, "count", lambda: shard.count(request)))

    def scroll(
        self, tier: str, where: ChunkFilter | None = None, batch: int = 256
    ) -> Iterator[ChunkPayload]:
        flt = _filter(where)

        def read(offset: Any) -> tuple[Sequence[Any], Any]:
            shard = self._ready(tier)
            request = qe.ScrollRequest(offset=offset, limit=batch, filter=flt, with_payload=True)
            return self._engine(tier, "scroll", functools.partial(shard.scroll, request))

        return pages(read)

    def dense_vectors(self, tier: str, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        shard = self._ready(tier)
        records = self._engine(
            tier,
            "read vectors",
            lambda: shard.retrieve(list(chunk_ids), with_payload=False, with_vector=[DENSE]),
        )
        return dense_of(records)

    def query(self, tier: str, q: StoreQuery) -> list[ScoredChunk]:
        shard = self._ready(tier)
        request = _request(q, with_payload=True)
        return scored(self._engine(tier, "query", lambda: shard.query(request)))

    def scores(self, tier: str, queries: Sequence[StoreQuery]) -> list[dict[str, float]]:
        if not queries:
            return []
        shard = self._ready(tier)
        batch = qe.QueryBatchRequest(queries=[_request(q, with_payload=False) for q in queries])
        results = self._engine(tier, "query", lambda: shard.query_batch(batch))
        return [id_scores(points) for points in results]

    def optimize(self, tier: str) -> None:
        # Sparse IDF counts deleted points until segments are optimised (DESIGN.md §4).
        # Optimising rewrites the segments: it may need as much room as the tier takes.
        shard = self._ready(tier, need=_allocated(self.root / tier))
        self._engine(tier, "optimize", shard.optimize)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            # A flush writes through memory maps too: on a full disk it could be SIGBUS, and
            # on a faulted store it would fail anyway. The write-ahead log has every write.
            flush = bool(self._shards) and self._probe() is None and self._room_for(0) is None
            for tier, shard in self._shards.items():
                _close_quietly(shard, tier, flush)
            self._shards.clear()
            self._dirs.clear()
