"""Send CloudEvents to a running server's ``POST /api/v1/events``, in batches, with a key.

`Sender.submit` splits the events into lanes by subject (so the events of one subject
always travel in order, in the same lane) and each lane into batches of at most
`max_batch`; lanes post concurrently, a lane's batches one after the other, while the
caller prepares more (each lane queues at most `depth` batches: backpressure). `drain`
waits until every batch is answered; `send` is both. A 429 or 503 answer is retried after its
``Retry-After`` (the batch is the same: a repeat of an acknowledged event is only a
duplicate); a refused connection is retried with backoff. Either is given up after
`give_up_after` seconds without progress, raising `SendError`, as is any answer that is
not about the events (400, 401, 403, 413, 415, ...).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import orjson

from ops_center.runtime.backoff import Backoff
from ops_center.tools.simulator.traffic import lane_of

BATCH: Final = "application/cloudevents-batch+json"
#: Rejections remembered in full (the rest are only counted by code).
KEEP_REJECTIONS: Final = 5


class SendError(Exception):
    """The server refused the requests themselves, or stayed unavailable too long."""


@dataclass
class Tally:
    """What the server answered so far."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    rejection_codes: Counter[str] = field(default_factory=Counter)
    rejections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.accepted + self.duplicates + self.rejected

    def describe(self) -> str:
        """``70,804 answered (70,800 accepted, 3 duplicates, 1 rejected) · 2 retries``."""
        text = (
            f"{self.answered:,} answered ({self.accepted:,} accepted, "
            f"{self.duplicates:,} duplicates, {self.rejected:,} rejected)"
        )
        return f"{text} · {self.retries:,} retries" if self.retries else text


def events_url(url: str) -> str:
    """The ingest endpoint of a server given by its base URL (or the endpoint itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/api/v1/events") else f"{url}/api/v1/events"


class Sender:
    """Posts batches of events with one key; use as an async context manager."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        lanes: int = 4,
        max_batch: int = 500,
        depth: int = 2,
        give_up_after: float = 120.0,
    ) -> None:
        self.url = events_url(url)
        self.lanes = lanes
        self.max_batch = max_batch
        self.give_up_after = give_up_after
        self.tally = Tally()
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": BATCH}
        self._session: aiohttp.ClientSession | None = None
        self._queues = [asyncio.Queue[bytes](maxsize=depth) for _ in range(lanes)]
        self._workers: list[asyncio.Task[None]] = []
        self._failure: SendError | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.lanes),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self._workers = [asyncio.create_task(self._lane(queue)) for queue in self._queues]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def submit(self, events: Sequence[dict[str, Any]]) -> None:
        """Queue `events` for their lanes; waits while a lane has `depth` batches waiting.

        Returns before the server answered: `drain` waits for that. Raises the `SendError`
        of an earlier batch, if any.
        """
        self._check()
        lanes: list[list[dict[str, Any]]] = [[] for _ in range(self.lanes)]
        for event in events:
            lanes[lane_of(str(event.get("subject")), self.lanes)].append(event)
        for queue, lane in zip(self._queues, lanes, strict=True):
            for begin in range(0, len(lane), self.max_batch):
                await queue.put(orjson.dumps(lane[begin : begin + self.max_batch]))
                self._check()

    async def drain(self) -> None:
        """Wait until every queued batch is answered; raise the first `SendError`."""
        for queue in self._queues:
            await queue.join()
        self._check()

    async def send(self, events: Sequence[dict[str, Any]]) -> None:
        """`submit` then `drain`: returns when the server answered for all of `events`."""
        await self.submit(events)
        await self.drain()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._session is None:
            raise RuntimeError("use the Sender as an async context manager")

    async def _lane(self, queue: asyncio.Queue[bytes]) -> None:
        """Post a lane's batches one after the other (after a failure, only discard them)."""
        while True:
            body = await queue.get()
            try:
                if self._failure is None:
                    await self._post(body)
            except SendError as exc:
                self._failure = exc
            except Exception as exc:  # a lane must never die: drain would wait forever
                self._failure = SendError(f"sending failed: {exc!r}")
            finally:
                queue.task_done()

    async def _post(self, body: bytes) -> None:
        assert self._session is not None
        deadline = time.monotonic() + self.give_up_after
        backoff = Backoff(0.25, 5.0)
        while True:
            try:
                async with self._session.post(self.url, data=body, headers=self._headers) as reply:
                    raw = await reply.read()
                    status, retry_after = reply.status, reply.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                wait = backoff.next()
                problem = f"cannot reach {self.url}: {exc!r}"
            else:
                self.tally.requests += 1
                if status in (200, 422):
                    self._count(orjson.loads(raw))
                    return
                if status not in (429, 503):
                    raise SendError(
                        f"{self.url} answered {status}: {raw[:500].decode(errors='replace')}"
                    )
                wait = _seconds(retry_after, default=1.0)
                problem = f"{self.url} answered {status}"
            if time.monotonic() + wait > deadline:
                raise SendError(f"gave up after {self.give_up_after:g} s: {problem}")
            self.tally.retries += 1
            await asyncio.sleep(wait)

    def _count(self, answer: dict[str, Any]) -> None:
        tally = self.tally
        tally.accepted += answer.get("accepted", 0)
        tally.duplicates += answer.get("duplicates", 0)
        tally.rejected += answer.get("rejected", 0)
        for result in answer.get("results", ()):
            if result.get("status") == "rejected":
                tally.rejection_codes[result.get("error", {}).get("code", "?")] += 1
                if len(tally.rejections) < KEEP_REJECTIONS:
                    tally.rejections.append(result)


def _seconds(header: str | None, *, default: float) -> float:
    """A ``Retry-After`` in seconds (the HTTP-date form is treated as the default)."""
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default
