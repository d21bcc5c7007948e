"""Group commit: gather the events of concurrent requests and record them together.

The `eventsourcing` recorder serialises inserts with a table lock, so one transaction
runs at a time; throughput comes from putting many events in each. `GroupCommitWriter`
collects submissions from concurrent requests until `max_batch` events are gathered or
`max_wait` seconds have passed since the first, records them in one transaction on a
dedicated thread (the library is synchronous), and answers each request with its own
outcomes. While a transaction runs, the next batch gathers, so under load batches grow
by themselves and at rest a lone event waits at most `max_wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops_center.store.application import Outcome, StoreUnavailable, Submission

log = logging.getLogger(__name__)

Ingest = Callable[[Sequence[Submission]], list[Outcome]]


class WriterClosed(Exception):
    """The writer is shutting down and takes no new submissions."""


@dataclass(slots=True)
class _Request:
    submissions: Sequence[Submission]
    future: asyncio.Future[list[Outcome]]


@dataclass(slots=True)
class WriterStats:
    """Counters for metrics and benchmarks."""

    batches: int = 0
    events: int = 0
    failed_batches: int = 0
    last_batch_size: int = 0
    commit_seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)


class GroupCommitWriter:
    """Records submissions from many coroutines in shared transactions.

    Limits: a transaction takes whole requests while it holds fewer than `max_batch`
    events (a request is never split, so the last one in may take it past the limit);
    `max_wait` seconds of gathering; `max_queue` requests waiting (further submitters
    wait for room: backpressure, not unbounded memory).
    """

    def __init__(
        self,
        ingest: Ingest,
        *,
        max_batch: int = 1000,
        max_wait: float = 0.002,
        max_queue: int = 10_000,
    ) -> None:
        self._ingest = ingest
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue(max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriterStats()
        #: Called on the event loop after each commit with (events, seconds); must not block.
        self.on_commit: list[Callable[[int, float], None]] = []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def close(self) -> None:
        """Stop taking submissions, record everything already submitted, then stop."""
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, submissions: Sequence[Submission]) -> list[Outcome]:
        """Record the submissions durably; return one outcome each, after the commit.

        Raises `StoreUnavailable` when the store cannot be reached (nothing stored) and
        `WriterClosed` during shutdown.
        """
        if self._closing or self._task is None:
            raise WriterClosed("the server is shutting down")
        if not submissions:
            return []
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(submissions, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            count = len(first.submissions)
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        async with asyncio.timeout(remaining):
                            item = await self._queue.get()
                    except TimeoutError:
                        break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                count += len(item.submissions)
            await self._commit(loop, batch)
        while not self._queue.empty():
            late = self._queue.get_nowait()
            if late is not None and not late.future.done():
                late.future.set_exception(WriterClosed("the server is shutting down"))

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        flat = [s for request in batch for s in request.submissions]
        started = time.perf_counter()
        try:
            outcomes = await loop.run_in_executor(self._executor, self._ingest, flat)
        except StoreUnavailable as exc:
            self.stats.failed_batches += 1
            log.warning("event store unavailable; %d events not stored: %s", len(flat), exc)
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(StoreUnavailable(str(exc)))
            return
        except Exception as exc:
            self.stats.failed_batches += 1
            log.exception("recording a batch of %d events failed", len(flat))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - started
        stats = self.stats
        stats.batches += 1
        stats.events += len(flat)
        stats.last_batch_size = len(flat)
        stats.commit_seconds += elapsed
        if len(stats.batch_sizes) < 100_000:
            stats.batch_sizes.append(len(flat))
        for listener in self.on_commit:
            try:
                listener(len(flat), elapsed)
            except Exception:
                log.exception("a commit listener failed")
        offset = 0
        for request in batch:
            n = len(request.submissions)
            if not request.future.done():
                request.future.set_result(outcomes[offset : offset + n])
            offset += n
