"""Sharing a model between concurrent requests.

`MicroBatcher`: callers on many threads hand in one item each and block; one worker thread runs
one call over the items that arrived together (one padded forward pass instead of one each).
A caller never waits for batch-mates longer than `max_wait_ms` after its arrival, and waits at
all only while items arrive closer together than that: below ~1/max_wait items a second a
companion is unlikely to come in time, so a question runs at once and batches form only from
what queued during the previous pass (or a burst). An exception in a batch reaches each of its
callers; the worker goes on with the next batch.

`SharedSession`: an ONNX Runtime model as one session per thread count. An inference that starts
while no other is running in this process gets `threads` intra-op threads (a lone request's
latency); one that starts beside another gets `concurrent_threads` (default one), so concurrent
requests run side by side on a core each instead of oversubscribing two cores (measured on the
judge, 2 cores: 2 intra-op threads cost 13 instead of 10 CPU ms per pair alone, and 2-4 callers
on a 1-thread session ran 190 pairs/s against 150-160 on a 2-thread one). Thread counts do not
change the outputs (int8 judge: bit-identical logits).

    batcher = MicroBatcher(encoder.embed_many, max_size=16, max_wait_ms=2)
    vec = batcher("How long is parental leave?")  # from any thread
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Gaps between arrivals count at most this many windows: one quiet spell must not take many
# arrivals to forget.
_GAP_CAP_WINDOWS = 10


@dataclass
class _Job(Generic[T, R]):
    item: T
    arrived: float
    future: Future[R] = field(default_factory=Future)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0
    failed: int = 0

    @property
    def mean(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher(Generic[T, R]):
    """`run_batch(items) -> results` (one result per item, in order) over items that callers
    on any thread submit one at a time with `batcher(item)`."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Iterable[R]],
        *,
        max_size: int = 16,
        max_wait_ms: float = 2.0,
        name: str = "micro-batcher",
    ) -> None:
        if max_size < 1 or max_wait_ms < 0:
            raise ValueError("max_size must be >= 1 and max_wait_ms >= 0")
        self._run = run_batch
        self.max_size = max_size
        self.max_wait_s = max_wait_ms / 1000
        self.name = name
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._queue: deque[_Job[T, R]] = deque()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._last_arrival = -math.inf
        self._gap = math.inf  # moving average of the time between arrivals

    def __call__(self, item: T) -> R:
        """The item's result, computed in a batch; raises what the batch raised."""
        now = time.perf_counter()
        job: _Job[T, R] = _Job(item, now)
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                gap = min(now - self._last_arrival, _GAP_CAP_WINDOWS * self.max_wait_s)
                self._gap = gap if math.isinf(self._gap) else (self._gap + gap) / 2
                self._last_arrival = now
                self._queue.append(job)
                if self._worker is None:
                    self._worker = threading.Thread(target=self._loop, name=self.name, daemon=True)
                    self._worker.start()
                self._cond.notify()
        if closed:  # after close(): on the caller's thread, alone
            self._execute([job])
        return job.future.result()

    @property
    def pending(self) -> int:
        """Items queued and not yet taken into a batch."""
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        """Finish what is queued and stop the worker; later calls run unbatched."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                if self._gap <= self.max_wait_s:  # companions are likely within the window
                    deadline = self._queue[0].arrived + self.max_wait_s
                    while len(self._queue) < self.max_size and not self._closed:
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                size = min(len(self._queue), self.max_size)
                batch = [self._queue.popleft() for _ in range(size)]
            self._execute(batch)

    def _execute(self, batch: list[_Job[T, R]]) -> None:
        try:
            results = list(self._run([job.item for job in batch]))
            if len(results) != len(batch):
                raise RuntimeError(
                    f"{self.name}: {len(results)} results for a batch of {len(batch)}"
                )
        except Exception as exc:  # every caller of the batch gets it; the worker goes on
            self._count(batch, failed=True)
            for job in batch:
                job.future.set_exception(exc)
            return
        self._count(batch, failed=False)
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)

    def _count(self, batch: list[_Job[T, R]], failed: bool) -> None:
        with self._cond:
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            self.stats.failed += failed


class _Inflight:
    """How many inferences of `SharedSession`s are running in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0

    @contextmanager
    def enter(self) -> Iterator[int]:
        """Counts this inference while it runs; yields how many others were running."""
        with self._lock:
            others = self._running
            self._running += 1
        try:
            yield others
        finally:
            with self._lock:
                self._running -= 1


INFLIGHT = _Inflight()


class SharedSession:
    """An ONNX model (a path or its bytes) whose intra-op threads follow the load: `threads`
    for an inference that runs alone, `concurrent_threads` for one that starts beside others
    (one session is built when both are the same)."""

    def __init__(
        self, model: str | Path | bytes, threads: int = 2, concurrent_threads: int = 1
    ) -> None:
        if threads < 1 or concurrent_threads < 1:
            raise ValueError("thread counts must be >= 1")
        source = model if isinstance(model, bytes) else str(model)
        self.threads, self.concurrent_threads = threads, concurrent_threads
        self._alone = _session(source, threads)
        self._beside = (
            self._alone if concurrent_threads == threads else _session(source, concurrent_threads)
        )
        self.input_names = {i.name for i in self._alone.get_inputs()}
        self.runs = {"alone": 0, "beside": 0}
        self._lock = threading.Lock()

    def run(self, feed: dict[str, Any]) -> list[Any]:
        with INFLIGHT.enter() as others:
            with self._lock:
                self.runs["beside" if others else "alone"] += 1
            session = self._beside if others else self._alone
            return list(session.run(None, feed))


def _session(model: str | bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle workers must not spin on the cores the next request needs (measured: a spinning
    # judge pool took the query embedding of the next request from p50 7 ms to 33 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
