"""Lean keep-alive HTTP/1.1 ingest in its own processes.

`HttpLoad` starts `processes` worker processes (spawn), each with one event loop and
`connections` keep-alive connections to the server, and sends pre-built request bodies
to ``POST /api/v1/events`` (``Authorization: Bearer``), every body exactly once: body
``i`` goes to worker ``i % processes`` (or each worker builds its own with a factory,
see `Bodies`). A connection sends one request at a time (no pipelining); the connections
of a worker take the next body in turn.

* Closed loop (`rate` None): every connection sends its next request as soon as the
  previous one is answered.
* Pinned (`pinned`): connection ``j`` of a worker sends that worker's bodies ``j, j +
  connections, ...`` one after the other, so bodies laid out by lane (body ``k`` from
  lane ``k % connections``) keep each lane's order, as a subject's events need.
* Open loop (`rate` requests/s over all workers): request ``k`` of worker ``w`` is due at
  ``start + (k * processes + w) / rate``; a connection waits for the due time of the body
  it takes. When all connections are busy, requests leave late: the result keeps the due
  time beside the send time, so latency can be counted from either (from the due time,
  the queueing a real sender would see is included).

For each answer a worker records the body's index, due, send and acknowledgement times
(``monotonic_ns``), the status (0: no answer: connection lost or `timeout`) and the
``position``s in the answer, found by a byte search (`scan.positions`); a worker ends with
its CPU seconds and peak RSS. `duration` stops sending new requests after that many
seconds (the bodies not sent are left out).

The parent's methods block (call them in a thread from async code).

Limits: http:// only; answers need ``Content-Length``, chunked encoding, or close the
connection; no redirects.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from ops_center.tools.loadclients.latency import AckTimes, LatencyStats
from ops_center.tools.loadclients.scan import positions as find_positions
from ops_center.tools.loadclients.workers import (
    Control,
    LoadClientError,
    ProcessUsage,
    Worker,
    run_worker,
)

STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
EVENTS_PATH: Final = "/api/v1/events"

# Limits
#: Seconds one request may wait for its answer.
REQUEST_TIMEOUT: Final = 60.0
#: Seconds the workers have to open their connections.
CONNECT_TIMEOUT: Final = 30.0
#: Most bytes of an answer's status line and headers.
MAX_HEAD: Final = 64 * 1024
#: Texts of failures (non-2xx answers, lost connections) a worker keeps as samples.
MAX_SAMPLES: Final = 5
#: Seconds between the go signal and the common start, so every worker starts together.
START_DELAY: Final = 0.05

#: Request bodies: a sequence (body ``i`` is sent by worker ``i % processes``), or a
#: picklable factory (a module-level function or a partial of one) called in each worker
#: as ``factory(worker, processes)`` that returns that worker's bodies (their indexes in
#: the result are then ``k * processes + worker``).
Bodies = Sequence[bytes] | Callable[[int, int], Sequence[bytes]]


def http_address(url: str) -> tuple[str, int, str]:
    """Host, port and path prefix of ``http://HOST:PORT[/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise LoadClientError(f"{url!r}: only http://HOST:PORT servers are supported")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str
    port: int
    path: str
    key: str
    content_type: str
    processes: int
    connections: int
    rate: float | None
    duration: float | None
    timeout: float
    #: Connection ``j`` of a worker sends that worker's bodies ``j, j + C, j + 2C...``
    #: in order (False: each connection takes the next body not yet taken).
    pinned: bool = False

    def head(self) -> bytes:
        """The request's start, up to the value of Content-Length."""
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: {self.content_type}\r\n"
            "Content-Length: "
        ).encode("latin-1")


class HttpProtocol(asyncio.Protocol):
    """One keep-alive connection: `request` writes a request and resolves with the
    answer's status and body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.sent_at = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._status = 0
        self._length: int | None = None
        self._chunked = False
        self._until_close = False
        self._close = False
        self._in_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self._waiter is None
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.sent_at = time.monotonic()
        self.transport.write(data)
        return self._waiter

    def expire(self, now: float, timeout: float) -> None:
        """Give up on a request waiting for more than `timeout` seconds."""
        if self._waiter is not None and now - self.sent_at > timeout:
            self._fail(TimeoutError(f"no answer in {timeout:g} s"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(ConnectionError(f"bad answer: {exc}"))

    def _parse(self) -> None:
        buffer = self._buffer
        if not self._in_body:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ValueError("headers too large")
                return
            lines = bytes(buffer[:end]).split(b"\r\n")
            del buffer[: end + 4]
            version, status = lines[0].split(b" ", 2)[:2]
            self._status = int(status)
            self._length = None
            self._chunked = False
            self._close = version != b"HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"transfer-encoding":
                    self._chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    token = value.strip().lower()
                    self._close = token == b"close" or (self._close and token != b"keep-alive")
            self._until_close = self._length is None and not self._chunked
            self._in_body = True
        if self._until_close:
            return
        if self._chunked:
            body = self._chunks()
            if body is None:
                return
        else:
            length = self._length or 0
            if len(buffer) < length:
                return
            body = bytes(buffer[:length])
            del buffer[:length]
        self._answer(body)

    def _chunks(self) -> bytes | None:
        """The whole chunked body once it is complete (trailers skipped), else None."""
        buffer = self._buffer
        at = 0
        parts: list[bytes] = []
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buffer[at:line_end]).split(b";", 1)[0].strip(), 16)
            at = line_end + 2
            if size == 0:
                trailers_end = buffer.find(b"\r\n\r\n", at - 2)
                if trailers_end < 0:
                    return None
                del buffer[: trailers_end + 4]
                return b"".join(parts)
            if len(buffer) < at + size + 2:
                return None
            parts.append(bytes(buffer[at : at + size]))
            at += size + 2

    def _answer(self, body: bytes) -> None:
        self._in_body = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, body))
        if self._close and self.transport is not None:
            self.lost = True
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        self.lost = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._in_body and self._until_close and self._waiter is not None:
            self._answer(bytes(self._buffer))
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class HttpWorkerResult:
    """One worker's requests (one entry per request sent, in the order answered) and
    counters. `positions` holds every request's positions one after the other, `npos`
    how many each has."""

    pid: int
    body_index: array[int] = field(default_factory=lambda: array("q"))
    due_ns: array[int] = field(default_factory=lambda: array("q"))
    send_ns: array[int] = field(default_factory=lambda: array("q"))
    ack_ns: array[int] = field(default_factory=lambda: array("q"))
    status: array[int] = field(default_factory=lambda: array("H"))
    npos: array[int] = field(default_factory=lambda: array("I"))
    positions: array[int] = field(default_factory=lambda: array("q"))
    connect_failures: int = 0
    reconnects: int = 0
    samples: list[str] = field(default_factory=list)
    #: Usage when the worker was told to go, and at its end.
    start_usage: ProcessUsage | None = None
    usage: ProcessUsage | None = None

    def sample(self, text: str) -> None:
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(text[:500])


class _Sender:
    """The connections of one worker and the bodies they share."""

    def __init__(self, config: HttpConfig, worker: int, bodies: Sequence[bytes]) -> None:
        self.config = config
        self.worker = worker
        self.bodies = bodies
        self.result = HttpWorkerResult(pid=os.getpid())
        self.protocols: list[HttpProtocol] = []
        #: Connections in use, watched for requests that take longer than the timeout.
        self.live: set[HttpProtocol] = set()
        self._next = 0
        #: Pinned: the next body of each connection (its slot in `protocols`).
        self._pinned: list[int] = []

    def _take(self, slot: int) -> int | None:
        """The next body for the connection in `slot` (None: it has none left)."""
        if self.config.pinned:
            k = self._pinned[slot]
            self._pinned[slot] = k + len(self.protocols)
        else:
            k = self._next
            self._next += 1
        return k if k < len(self.bodies) else None

    async def connect(self) -> HttpProtocol | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, protocol = await loop.create_connection(
                    HttpProtocol, self.config.host, self.config.port
                )
        except (OSError, TimeoutError) as exc:
            self.result.connect_failures += 1
            self.result.sample(f"connect: {exc!r}")
            return None
        return protocol

    async def open(self) -> int:
        opened = await asyncio.gather(*(self.connect() for _ in range(self.config.connections)))
        self.protocols = [p for p in opened if p is not None]
        self._pinned = list(range(len(self.protocols)))
        return len(self.protocols)

    async def run(self, start_ns: int) -> None:
        pause = (start_ns - time.monotonic_ns()) / 1e9
        if pause > 0:
            await asyncio.sleep(pause)
        end_ns = None
        if self.config.duration is not None:
            end_ns = start_ns + int(self.config.duration * 1e9)
        watchdog = asyncio.create_task(self._watch())
        try:
            await asyncio.gather(
                *(self._lane(slot, p, start_ns, end_ns) for slot, p in enumerate(self.protocols))
            )
        finally:
            watchdog.cancel()

    async def _watch(self) -> None:
        """Expire overdue requests (one timer for all, not one per request)."""
        period = min(1.0, self.config.timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for protocol in list(self.live):
                protocol.expire(now, self.config.timeout)

    async def _lane(
        self, slot: int, protocol: HttpProtocol | None, start_ns: int, end_ns: int | None
    ) -> None:
        config = self.config
        r = self.result
        interval = 1e9 / config.rate if config.rate else 0.0
        head = config.head()
        try:
            while (k := self._take(slot)) is not None:
                due = start_ns + int((k * config.processes + self.worker) * interval)
                if end_ns is not None and due >= end_ns:
                    return
                if interval:
                    pause = (due - time.monotonic_ns()) / 1e9
                    if pause > 0:
                        await asyncio.sleep(pause)
                if end_ns is not None and time.monotonic_ns() >= end_ns:
                    return
                body = self.bodies[k]
                sent = time.monotonic_ns()
                if not interval:
                    due = sent
                status = 0
                found: list[int] = []
                if protocol is None or protocol.lost:
                    r.reconnects += 1
                    if protocol is not None:
                        self.live.discard(protocol)
                    protocol = await self.connect()
                if protocol is not None:
                    self.live.add(protocol)
                    try:
                        status, answer = await protocol.request(
                            b"%b%d\r\n\r\n%b" % (head, len(body), body)
                        )
                        if 200 <= status < 300:
                            found = find_positions(answer)
                        else:
                            r.sample(f"HTTP {status}: {answer[:300]!r}")
                    except (ConnectionError, TimeoutError) as exc:
                        r.sample(f"request {k}: {exc!r}")
                        protocol.close()
                        protocol.lost = True
                acked = time.monotonic_ns()
                r.body_index.append(k * config.processes + self.worker)
                r.due_ns.append(due)
                r.send_ns.append(sent)
                r.ack_ns.append(acked)
                r.status.append(status)
                r.npos.append(len(found))
                r.positions.extend(found)
        finally:
            if protocol is not None:
                protocol.close()
                self.live.discard(protocol)


async def _serve(conn: Connection, config: HttpConfig, worker: int, bodies: Bodies) -> None:
    control = Control(conn)
    chosen = bodies(worker, config.processes) if callable(bodies) else bodies
    sender = _Sender(config, worker, chosen)
    opened = await sender.open()
    control.send("ready", opened, sender.result.samples)
    message = await control.get()
    if message[0] == "go":
        sender.result.start_usage = ProcessUsage.own()
        await sender.run(int(message[1]))
    control.close()
    sender.result.usage = ProcessUsage.own()
    control.send("result", sender.result)


def _worker_main(conn: Connection, config: HttpConfig, worker: int, bodies: Bodies) -> None:
    run_worker(conn, functools.partial(_serve, config=config, worker=worker, bodies=bodies))


class Request(NamedTuple):
    """One request as the result holds it."""

    body_index: int
    due_ns: int
    send_ns: int
    ack_ns: int
    status: int
    positions: list[int]


@dataclass(slots=True)
class HttpResult:
    """Every worker's requests; figures computed from them."""

    workers: list[HttpWorkerResult]
    paced: bool

    def requests(self) -> Iterator[Request]:
        for w in self.workers:
            at = 0
            for i in range(len(w.body_index)):
                n = w.npos[i]
                yield Request(
                    w.body_index[i],
                    w.due_ns[i],
                    w.send_ns[i],
                    w.ack_ns[i],
                    w.status[i],
                    w.positions[at : at + n].tolist(),
                )
                at += n

    @property
    def count(self) -> int:
        """Requests sent (answered or not)."""
        return sum(len(w.body_index) for w in self.workers)

    @property
    def statuses(self) -> Counter[int]:
        """Answers by status (0: no answer)."""
        counts: Counter[int] = Counter()
        for w in self.workers:
            counts.update(w.status)
        return counts

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def events(self) -> int:
        """Positions acknowledged in 2xx answers."""
        return sum(
            n for w in self.workers for s, n in zip(w.status, w.npos, strict=True) if 200 <= s < 300
        )

    @property
    def seconds(self) -> float:
        """From the first request sent to the last answer."""
        busy = [w for w in self.workers if len(w.send_ns)]
        if not busy:
            return 0.0
        first = min(min(w.send_ns) for w in busy)
        last = max(max(w.ack_ns) for w in busy)
        return (last - first) / 1e9

    @property
    def requests_per_s(self) -> float:
        answered = self.count - self.statuses.get(0, 0)
        return answered / self.seconds if self.seconds else math.nan

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else math.nan

    def latency(self) -> LatencyStats:
        """From sending to the answer, over every answered request."""
        return LatencyStats.from_values(
            (a - s) / 1e6
            for w in self.workers
            for s, a, st in zip(w.send_ns, w.ack_ns, w.status, strict=True)
            if st
        )

    def response(self) -> LatencyStats:
        """From the due time to the answer (open loop; equals `latency` closed loop)."""
        return LatencyStats.from_values(
            (a - d) / 1e6
            for w in self.workers
            for d, a, st in zip(w.due_ns, w.ack_ns, w.status, strict=True)
            if st
        )

    def answers(self) -> dict[int, list[int]]:
        """The positions of each 2xx answer, by body index."""
        return {r.body_index: r.positions for r in self.requests() if 200 <= r.status < 300}

    def ack_times(self) -> AckTimes:
        """Acknowledgement times of every position in a 2xx answer."""
        return AckTimes((r.positions, r.ack_ns) for r in self.requests() if 200 <= r.status < 300)

    @property
    def cpu_s(self) -> float:
        """The workers' CPU over their whole life (start-up and connecting included)."""
        return sum(w.usage.cpu_s for w in self.workers if w.usage is not None)

    @property
    def sending_cpu_s(self) -> float:
        """The workers' CPU from the go signal to their end (the sending alone)."""
        return sum(
            w.usage.cpu_s - w.start_usage.cpu_s
            for w in self.workers
            if w.usage is not None and w.start_usage is not None
        )

    @property
    def max_rss_mb(self) -> float:
        return max((w.usage.max_rss_mb for w in self.workers if w.usage is not None), default=0.0)

    def summary(self) -> dict[str, Any]:
        latency = self.latency()
        return {
            "requests": self.count,
            "ok": self.ok,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "events": self.events,
            "seconds": self.seconds,
            "requests_per_s": self.requests_per_s,
            "events_per_s": self.events_per_s,
            "latency": latency.as_json(),
            "response": self.response().as_json() if self.paced else None,
            "processes": len(self.workers),
            "cpu_s": self.cpu_s,
            "sending_cpu_s": self.sending_cpu_s,
            "us_per_request": self.sending_cpu_s * 1e6 / self.count if self.count else math.nan,
            "max_rss_mb": self.max_rss_mb,
            "connect_failures": sum(w.connect_failures for w in self.workers),
            "reconnects": sum(w.reconnects for w in self.workers),
            "samples": [s for w in self.workers for s in w.samples][:MAX_SAMPLES],
        }


class HttpLoad:
    """Ingest in worker processes: `start` (connect), then `run` (send, collect)."""

    def __init__(
        self,
        url: str,
        key: str,
        bodies: Bodies,
        *,
        content_type: str = BATCH,
        processes: int = 1,
        connections: int = 8,
        rate: float | None = None,
        duration: float | None = None,
        timeout: float = REQUEST_TIMEOUT,
        pinned: bool = False,
    ) -> None:
        if processes < 1 or connections < 1:
            raise ValueError("processes and connections must be at least 1")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (None: closed loop)")
        host, port, prefix = http_address(url)
        self.config = HttpConfig(
            host=host,
            port=port,
            path=prefix + EVENTS_PATH,
            key=key,
            content_type=content_type,
            processes=processes,
            connections=connections,
            rate=rate,
            duration=duration,
            timeout=timeout,
            pinned=pinned,
        )
        self.bodies = bodies
        self.workers: list[Worker] = []

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def start(self) -> int:
        """Start the workers and open their connections; how many opened."""
        if self.workers:
            raise LoadClientError("the load was already started")
        n = self.config.processes
        for i in range(n):
            share = self.bodies if callable(self.bodies) else list(self.bodies[i::n])
            self.workers.append(Worker(_worker_main, (self.config, i, share), f"http-{i}"))
        try:
            ready = [w.recv(CONNECT_TIMEOUT + 60) for w in self.workers]
        except BaseException:
            self._end()
            raise
        opened = sum(int(r[1]) for r in ready)
        if not opened:
            self._end()
            samples = [s for r in ready for s in r[2]]
            where = f"{self.config.host}:{self.config.port}"
            raise LoadClientError(f"no connection to {where}: {samples[:1]}")
        return opened

    def run(self, wait: float | None = None) -> HttpResult:
        """Send every body (or until `duration`) and collect the results; `wait`: most
        seconds to wait for them (default: long enough for every request's timeout)."""
        if not self.workers:
            self.start()
        start_ns = time.monotonic_ns() + int(START_DELAY * 1e9)
        try:
            for w in self.workers:
                w.send("go", start_ns)
            limit = wait if wait is not None else 24 * 3600.0
            results = [w.recv(limit)[1] for w in self.workers]
        finally:
            self._end()
        return HttpResult(results, paced=self.config.rate is not None)

    def _end(self) -> None:
        for w in self.workers:
            w.close()


def run_http(url: str, key: str, bodies: Bodies, **options: Any) -> HttpResult:
    """`HttpLoad` started and run at once (`options`: those of `HttpLoad`)."""
    return HttpLoad(url, key, bodies, **options).run()
