"""Lean WebSocket screens in their own processes, recording when each frame arrived.

`Screens` starts `processes` worker processes (spawn); worker ``w`` opens the screens
``w, w + processes, ...`` of `screens`, each one connection to ``/ws`` with a
hand-written handshake (`websocket`), subscribed to one topic (screen ``i`` to
``topics[i % len(topics)]``, with `unit` if given). Every frame is cut out of the byte
stream and only its ``op`` and ``position`` are looked for (one anchored regular
expression for frames laid out as the server writes them, `scan` otherwise); pings are
answered, a close from the server is echoed. Arrival times are ``time.monotonic_ns()``
taken when the bytes are read (one clock for all processes on Linux).

A worker is one thread around one ``epoll`` object (Linux only) with non-blocking
sockets, not an asyncio loop: per frame it costs a ``recv`` and the parsing, without the
event loop's handles and callbacks (measured: 10 µs of CPU per frame, kernel included,
instead of 23 µs with asyncio protocols, 5,000 screens on this 2-core machine). The pipe
to the parent is watched by the same ``epoll``.

What a worker keeps, so that 5,000 screens and thousands of frames stay small:

* per topic, an `Arrivals` table: for every delta position, when the first of the
  worker's screens got it (ns) and, for every screen that got it, how many µs after the
  first (4 bytes a frame);
* for the first `record` screens (spread over the workers), a `ScreenRecord`: the
  snapshot's position and arrival, then every delta's position and arrival (16 bytes a
  frame), for the per-request latency and for checks of the sequence;
* counters (connections opened and failed, frames, bytes, snapshots, deltas, errors,
  closes) and, at the end, its own CPU seconds and peak RSS.

With the acknowledgement times of the ingest side (`latency.AckTimes`),
`ScreensResult.frame_latency` gives the latency of every frame (arrival minus the
acknowledgement of the highest acknowledged position it carries: a delta carries the
positions after the one before it, so a coalesced frame counts once, at its own
position), `reach_latency` the latency from each request's acknowledgement to the first
frame reaching its last position on each recorded screen, and `spread` the fan-out
alone (from the first screen getting a position to each other one).

The parent's methods block (call them in a thread from async code). Command line:
``python -m ops_center.tools.loadclients.screens --url http://HOST:PORT --key KEY ...``
(``--help``); it writes the result as JSON, which `ScreensResult.from_json` reads back.

Limits: no TLS, no compression, one topic per screen; fragmented messages are scanned in
their first `scan.HEAD_BYTES` bytes only (the server sends whole frames).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import errno
import functools
import json
import os
import re
import select
import socket
import sys
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from ops_center.tools.loadclients import websocket as ws
from ops_center.tools.loadclients.latency import AckTimes, Histogram, LatencyStats
from ops_center.tools.loadclients.scan import HEAD_BYTES, op_and_position
from ops_center.tools.loadclients.workers import (
    LoadClientError,
    ProcessUsage,
    Worker,
    raise_file_limit,
    run_worker,
)

# Limits
#: Handshakes a worker has in progress at once.
CONNECT_CONCURRENCY: Final = 64
#: Seconds one connection and handshake may take.
HANDSHAKE_TIMEOUT: Final = 30.0
#: Seconds the workers have to connect every screen and get every first snapshot.
READY_TIMEOUT: Final = 120.0
#: Seconds a worker waits for the server's answer to its close frames.
CLOSE_WAIT: Final = 3.0
#: Error texts (handshake failures, error frames) a worker keeps as samples.
MAX_SAMPLES: Final = 5
#: Largest offset an `Arrivals` table can hold (µs, about 71 minutes).
MAX_OFFSET_US: Final = 0xFFFFFFFF


def ws_address(url: str) -> tuple[str, int, str]:
    """Host, port and ``/ws`` path of a server given as ``http://HOST:PORT[/prefix]`` (or
    its ``ws://`` address)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "ws"):
        raise LoadClientError(f"{url!r}: only http:// (or ws://) servers are supported")
    if parts.hostname is None:
        raise LoadClientError(f"{url!r} has no host")
    path = parts.path.rstrip("/")
    if parts.scheme == "http" or not path:
        path += "/ws"
    return parts.hostname, parts.port or 80, path


@dataclass(frozen=True, slots=True)
class ScreensConfig:
    """What the workers do (picklable; one for all of them)."""

    host: str
    port: int
    path: str
    key: str
    topics: tuple[str, ...]
    unit: str | None
    screens: int
    processes: int
    record: int
    ready_timeout: float = READY_TIMEOUT
    concurrency: int = CONNECT_CONCURRENCY
    token_in_query: bool = False

    def assigned(self, worker: int) -> range:
        return range(worker, self.screens, self.processes)

    def subscribe_message(self, topic: str) -> bytes:
        message = {"op": "subscribe", "topic": topic}
        if self.unit is not None:
            message["unit"] = self.unit
        return json.dumps(message).encode()


# -- what a worker records --------------------------------------------------------------------


class Arrivals:
    """One topic in one worker: for each delta position, the first arrival (ns) among the
    worker's screens and every screen's arrival as µs after it (the first one is 0)."""

    __slots__ = ("_index", "first_ns", "floor", "offsets", "positions")

    def __init__(self) -> None:
        self.positions = array("q")
        self.first_ns = array("q")
        self.offsets: list[array[int]] = []
        #: The lowest snapshot position of these screens (-1: none yet).
        self.floor = -1
        self._index: dict[int, int] = {}

    def add(self, position: int, now_ns: int) -> None:
        slot = self._index.get(position)
        if slot is None:
            self._index[position] = len(self.positions)
            self.positions.append(position)
            self.first_ns.append(now_ns)
            self.offsets.append(array("I", (0,)))
        else:
            offset = (now_ns - self.first_ns[slot]) // 1000
            self.offsets[slot].append(offset if offset < MAX_OFFSET_US else MAX_OFFSET_US)

    def snapshot_at(self, position: int) -> None:
        if self.floor < 0 or position < self.floor:
            self.floor = position

    @property
    def frames(self) -> int:
        return sum(len(o) for o in self.offsets)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "positions": self.positions,
            "first_ns": self.first_ns,
            "offsets": self.offsets,
            "floor": self.floor,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.positions = state["positions"]
        self.first_ns = state["first_ns"]
        self.offsets = state["offsets"]
        self.floor = state["floor"]
        self._index = {p: i for i, p in enumerate(self.positions)}

    def as_json(self) -> dict[str, Any]:
        return {
            "positions": self.positions.tolist(),
            "first_ns": self.first_ns.tolist(),
            "offsets_us": [o.tolist() for o in self.offsets],
            "floor": self.floor,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Arrivals:
        table = cls()
        table.__setstate__(
            {
                "positions": array("q", body["positions"]),
                "first_ns": array("q", body["first_ns"]),
                "offsets": [array("I", o) for o in body["offsets_us"]],
                "floor": body["floor"],
            }
        )
        return table


@dataclass(slots=True)
class ScreenRecord:
    """Every frame of one recorded screen: its first snapshot, then the deltas."""

    index: int
    topic: str
    snapshot_position: int = -1
    snapshot_ns: int = 0
    resnapshots: int = 0
    positions: array[int] = field(default_factory=lambda: array("q"))
    arrivals_ns: array[int] = field(default_factory=lambda: array("q"))

    def reached(self, position: int) -> int | None:
        """When the first delta at or after `position` arrived (ns), or None."""
        i = bisect.bisect_left(self.positions, position)
        return self.arrivals_ns[i] if i < len(self.positions) else None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "topic": self.topic,
            "snapshot_position": self.snapshot_position,
            "snapshot_ns": self.snapshot_ns,
            "resnapshots": self.resnapshots,
            "positions": self.positions.tolist(),
            "arrivals_ns": self.arrivals_ns.tolist(),
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ScreenRecord:
        return cls(
            index=body["index"],
            topic=body["topic"],
            snapshot_position=body["snapshot_position"],
            snapshot_ns=body["snapshot_ns"],
            resnapshots=body["resnapshots"],
            positions=array("q", body["positions"]),
            arrivals_ns=array("q", body["arrivals_ns"]),
        )


#: The counters of a worker, in `WorkerReport` and in status answers.
COUNTERS: Final = (
    "screens",
    "opened",
    "failed",
    "snapshots",
    "resnapshots",
    "deltas",
    "errors",
    "other",
    "unparsed",
    "frames",
    "bytes",
    "pings",
    "lost",
)


@dataclass(slots=True)
class WorkerReport:
    """One worker's counters, samples of what went wrong, and its resource usage.

    `snapshots`: screens that got their first snapshot; `resnapshots`: later snapshots
    (a resumed or reset subscription); `other`/`unparsed`: frames of another op, or
    without the expected fields; `lost`: upgraded connections that ended before the
    worker closed them; `closes`: close codes the server sent, with counts.
    """

    pid: int
    screens: int = 0
    opened: int = 0
    failed: int = 0
    snapshots: int = 0
    resnapshots: int = 0
    deltas: int = 0
    errors: int = 0
    other: int = 0
    unparsed: int = 0
    frames: int = 0
    bytes: int = 0
    pings: int = 0
    lost: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    usage: ProcessUsage | None = None

    def sample(self, text: str) -> None:
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(text[:500])

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"pid": self.pid}
        body.update({name: getattr(self, name) for name in COUNTERS})
        body["closes"] = {str(code): n for code, n in self.closes.items()}
        body["samples"] = list(self.samples)
        body["usage"] = self.usage.as_json() if self.usage is not None else None
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> WorkerReport:
        report = cls(pid=body["pid"], **{name: body[name] for name in COUNTERS})
        report.closes = {int(code): n for code, n in body["closes"].items()}
        report.samples = list(body["samples"])
        usage = body.get("usage")
        report.usage = ProcessUsage.from_json(usage) if usage is not None else None
        return report


# -- the worker ---------------------------------------------------------------------------------

#: Connection states of a `Screen`.
CONNECTING: Final = 0
HANDSHAKE: Final = 1
OPEN: Final = 2
CLOSING: Final = 3
ENDED: Final = 4

#: Bytes read from a socket at once.
RECV_BYTES: Final = 256 * 1024
#: A snapshot or delta as the server writes it (compact JSON, these keys first).
FAST: Final = re.compile(rb'\{"op":"(?:(d)elta|snapshot)","topic":"[a-z_]*","position":(\d+)')

_IN: Final = select.EPOLLIN
_OUT: Final = select.EPOLLOUT
_GONE: Final = select.EPOLLERR | select.EPOLLHUP


class Screen(ws.FrameParser):
    """One screen: a non-blocking socket driven by its worker's epoll loop, from the
    connection through the handshake and subscription to the closing handshake."""

    def __init__(self, fleet: _Fleet, index: int, topic: int, record: ScreenRecord | None) -> None:
        super().__init__()
        self.fleet = fleet
        self.report = fleet.report
        self.index = index
        self.topic = topic
        self.arrivals = fleet.arrivals[topic]
        self.record = record
        self.state = CONNECTING
        self.deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        #: Whether the first snapshot came (or the screen ended without one).
        self.resolved = False
        #: The position of the latest snapshot or delta (-1: none yet).
        self.last = -1
        self.head = bytearray()
        self.out = bytearray()
        self.request, self.accept = ws.handshake_request(
            fleet.config.host, fleet.config.port, fleet.target, fleet.headers
        )
        self._fragment: bytearray | None = None
        self._fragment_size = 0
        self.now = 0
        family, kind, proto, _, address = fleet.address
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fd = self.sock.fileno()
        fleet.screens[self.fd] = self
        code = self.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            self.refuse(f"connect: {os.strerror(code)}")
            return
        fleet.poller.register(self.fd, _OUT)

    # events from the loop

    def writable(self) -> None:
        if self.state == CONNECTING:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.refuse(f"connect: {os.strerror(code)}")
                return
            self.state = HANDSHAKE
            self.fleet.poller.modify(self.fd, _IN)
            self.write(self.request)
            return
        self._flush()

    def readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost(str(exc))
            return
        if not data:
            self.lost("the server closed the connection")
            return
        self.now = time.monotonic_ns()
        if self.state >= OPEN:
            # fast path: exactly one whole unfragmented text frame, as the server writes
            if not self._buffer and data[0] == 0x81:
                n = data[1]
                if n < 126 and n + 2 == len(data):
                    self._message(data, 2, n + 2, n)
                    return
                if n == 126 and len(data) >= 4 and ((data[2] << 8) | data[3]) + 4 == len(data):
                    self._message(data, 4, len(data), len(data) - 4)
                    return
            try:
                self.feed(data)
            except ws.ProtocolError as exc:
                self.fail(str(exc))
        elif self.state == HANDSHAKE:
            self._handshake(data)

    # handshake

    def _handshake(self, data: bytes) -> None:
        head = self.head
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > ws.MAX_HANDSHAKE:
                self.refuse("handshake answer too large")
            return
        try:
            ws.check_handshake(bytes(head[:end]), self.accept)
        except ws.ProtocolError as exc:
            self.refuse(str(exc))
            return
        rest = bytes(head[end + 4 :])
        self.head = bytearray()
        self.state = OPEN
        self.fleet.opened(self)
        name = self.fleet.config.topics[self.topic]
        self.write(ws.client_frame(ws.TEXT, self.fleet.subscribe[name]))
        if rest:
            try:
                self.feed(rest)
            except ws.ProtocolError as exc:
                self.fail(str(exc))

    # frames

    def frame(self, opcode: int, fin: bool, data: bytes | bytearray, start: int, end: int) -> None:
        if opcode == ws.TEXT or opcode == ws.BINARY:
            if fin:
                self._message(data, start, end, end - start)
            else:
                self._fragment = bytearray(data[start : min(end, start + HEAD_BYTES)])
                self._fragment_size = end - start
        elif opcode == ws.CONTINUATION:
            fragment = self._fragment
            if fragment is None:
                raise ws.ProtocolError("continuation frame without a message")
            if len(fragment) < HEAD_BYTES:
                fragment += data[start : min(end, start + HEAD_BYTES - len(fragment))]
            self._fragment_size += end - start
            if fin:
                self._fragment = None
                self._message(fragment, 0, len(fragment), self._fragment_size)
        elif opcode == ws.PING:
            self.report.pings += 1
            self.write(ws.client_frame(ws.PONG, bytes(data[start:end])))
        elif opcode == ws.CLOSE:
            code = ws.close_code(data[start:end])
            closes = self.report.closes
            key = code if code is not None else 1005
            closes[key] = closes.get(key, 0) + 1
            if self.state != CLOSING:
                self.report.lost += 1
                self.write(ws.close_frame(code or ws.NORMAL_CLOSURE))
            self.end()
        elif opcode != ws.PONG:
            raise ws.ProtocolError(f"unknown opcode {opcode}")

    def _message(self, data: bytes | bytearray, start: int, end: int, size: int) -> None:
        report = self.report
        report.frames += 1
        report.bytes += size
        fast = FAST.match(data, start, end)
        if fast is not None:
            delta = fast.group(1) is not None
            position = int(fast.group(2))
        else:
            op, found = op_and_position(data, start, end)
            if op == b"error":
                report.errors += 1
                report.sample(bytes(data[start:end]).decode("utf-8", "replace"))
                return
            if op != b"delta" and op != b"snapshot":
                if op is None:
                    report.unparsed += 1
                else:
                    report.other += 1
                return
            if found is None:
                report.unparsed += 1
                return
            delta = op == b"delta"
            position = found
        self.last = position
        record = self.record
        if delta:
            report.deltas += 1
            self.arrivals.add(position, self.now)
            if record is not None:
                record.positions.append(position)
                record.arrivals_ns.append(self.now)
            return
        if self.resolved:
            report.resnapshots += 1
            if record is not None:
                record.resnapshots += 1
            return
        report.snapshots += 1
        self.arrivals.snapshot_at(position)
        if record is not None:
            record.snapshot_position = position
            record.snapshot_ns = self.now
        self.fleet.resolve(self)

    # writing and ending

    def write(self, data: bytes) -> None:
        if self.state == ENDED:
            return
        if self.out:
            self.out += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.lost(str(exc))
            return
        if sent < len(data):
            self.out += data[sent:]
            self.fleet.poller.modify(self.fd, _IN | _OUT)

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost(str(exc))
            return
        del self.out[:sent]
        if not self.out:
            self.fleet.poller.modify(self.fd, _IN)

    def close(self) -> None:
        """Start the closing handshake (1000); the server's close frame ends it."""
        if self.state == OPEN:
            self.state = CLOSING
            self.write(ws.close_frame(ws.NORMAL_CLOSURE))

    def refuse(self, reason: str) -> None:
        """The connection or the handshake failed."""
        self.report.failed += 1
        self.report.sample(f"screen {self.index}: {reason}")
        self.end()

    def lost(self, reason: str) -> None:
        if self.state in (CONNECTING, HANDSHAKE):
            self.refuse(reason)
            return
        if self.state == OPEN:
            self.report.lost += 1
            self.report.sample(f"screen {self.index}: {reason}")
        self.end()

    def fail(self, reason: str) -> None:
        """Close with 1002 after a protocol error from the server."""
        self.report.sample(f"screen {self.index}: {reason}")
        if self.state == OPEN:
            self.report.lost += 1
            self.write(ws.close_frame(ws.PROTOCOL_ERROR))
        self.end()

    def end(self) -> None:
        if self.state == ENDED:
            return
        self.state = ENDED
        fleet = self.fleet
        fleet.screens.pop(self.fd, None)
        with contextlib.suppress(OSError, ValueError):
            fleet.poller.unregister(self.fd)
        self.sock.close()
        fleet.ended(self)


class _Fleet:
    """The screens of one worker and its epoll loop (which also watches the pipe)."""

    def __init__(self, config: ScreensConfig, worker: int, conn: Connection) -> None:
        self.config = config
        self.worker = worker
        self.conn = conn
        self.report = WorkerReport(pid=os.getpid(), screens=len(config.assigned(worker)))
        self.arrivals = [Arrivals() for _ in config.topics]
        self.subscribe = {t: config.subscribe_message(t) for t in config.topics}
        self.records: list[ScreenRecord] = []
        self.poller = select.epoll()
        self.screens: dict[int, Screen] = {}
        self.open: dict[int, Screen] = {}
        self.handshaking: dict[int, Screen] = {}
        self.waiting = deque(config.assigned(worker))
        self.unresolved = len(self.waiting)
        self.stopping = False
        self.messages: deque[tuple[Any, ...]] = deque()
        self.address = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)[0]
        self.headers: dict[str, str] = {}
        self.target = config.path
        if config.token_in_query:
            self.target += f"?token={quote(config.key)}"
        else:
            self.headers["Authorization"] = f"Bearer {config.key}"
        self.pipe = conn.fileno()
        self.poller.register(self.pipe, _IN)

    # the loop

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` seconds (-1: until something happens) and handle it."""
        screens = self.screens
        for fd, events in self.poller.poll(timeout):
            screen = screens.get(fd)
            if screen is None:
                if fd == self.pipe:
                    self._read_pipe()
                continue
            if events & _OUT:
                screen.writable()
            if events & (_IN | _GONE) and screen.state != ENDED:
                screen.readable()

    def _read_pipe(self) -> None:
        try:
            while self.conn.poll():
                self.messages.append(self.conn.recv())
        except (EOFError, OSError):
            self.poller.unregister(self.pipe)
            self.messages.append(("stop",))

    # connecting

    def connect_all(self, deadline: float) -> None:
        """Open every screen (`concurrency` handshakes at a time) and wait for their
        first snapshots, until all are resolved or `deadline`."""
        while self.unresolved and time.monotonic() < deadline:
            while self.waiting and len(self.handshaking) < self.config.concurrency:
                self._start(self.waiting.popleft())
            self.poll(0.05)
            now = time.monotonic()
            for screen in [s for s in self.handshaking.values() if s.deadline < now]:
                screen.refuse(f"no handshake in {HANDSHAKE_TIMEOUT:g} s")
        if self.waiting or self.handshaking:
            self.report.sample(f"not every screen connected in {self.config.ready_timeout:g} s")
            for screen in list(self.handshaking.values()):
                screen.refuse("not connected in time")
            self.report.failed += len(self.waiting)
            self.unresolved -= len(self.waiting)
            self.waiting.clear()

    def _start(self, index: int) -> None:
        config = self.config
        topic = index % len(config.topics)
        record = ScreenRecord(index, config.topics[topic]) if index < config.record else None
        screen = Screen(self, index, topic, record)
        if screen.state != ENDED:
            self.handshaking[screen.fd] = screen

    def opened(self, screen: Screen) -> None:
        self.handshaking.pop(screen.fd, None)
        self.open[screen.fd] = screen
        self.report.opened += 1
        if screen.record is not None:
            self.records.append(screen.record)

    def resolve(self, screen: Screen) -> None:
        if not screen.resolved:
            screen.resolved = True
            self.unresolved -= 1

    def ended(self, screen: Screen) -> None:
        self.handshaking.pop(screen.fd, None)
        self.open.pop(screen.fd, None)
        self.resolve(screen)

    # serving

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: getattr(self.report, name) for name in COUNTERS}
        lowest: dict[str, int] = {}
        for s in self.open.values():
            name = self.config.topics[s.topic]
            lowest[name] = min(lowest.get(name, s.last), s.last)
        body["lowest"] = lowest
        body["usage"] = ProcessUsage.own().as_json()
        return body

    def serve(self) -> None:
        """Answer the parent until it says stop (or goes away)."""
        while True:
            while self.messages:
                message = self.messages.popleft()
                if message[0] == "status":
                    self.conn.send(("status", self.status()))
                elif message[0] == "stop":
                    return
            self.poll(-1)

    def close_all(self) -> None:
        for screen in list(self.open.values()):
            screen.close()
        deadline = time.monotonic() + CLOSE_WAIT
        while self.open and time.monotonic() < deadline:
            self.poll(0.05)
        for screen in list(self.screens.values()):
            screen.end()

    def result(self) -> tuple[WorkerReport, list[Arrivals], list[ScreenRecord]]:
        self.report.usage = ProcessUsage.own()
        return self.report, self.arrivals, self.records


def _serve(conn: Connection, config: ScreensConfig, worker: int) -> None:
    fleet = _Fleet(config, worker, conn)
    raise_file_limit(fleet.report.screens + 64)
    fleet.connect_all(time.monotonic() + config.ready_timeout)
    conn.send(("ready", fleet.status()))
    fleet.serve()
    fleet.close_all()
    conn.send(("result", *fleet.result()))


def _worker_main(conn: Connection, config: ScreensConfig, worker: int) -> None:
    run_worker(conn, functools.partial(_serve, config=config, worker=worker))


# -- the parent -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreensStatus:
    """The workers' counters added up; `lowest`: per topic, the lowest position any open
    screen is at (-1: a screen has none yet); `cpu_s`: the workers' CPU so far."""

    opened: int
    failed: int
    snapshots: int
    deltas: int
    frames: int
    bytes: int
    lost: int
    errors: int
    pings: int
    lowest: dict[str, int]
    cpu_s: float

    @classmethod
    def add(cls, parts: Sequence[dict[str, Any]]) -> ScreensStatus:
        lowest: dict[str, int] = {}
        for part in parts:
            for name, value in part["lowest"].items():
                lowest[name] = min(lowest.get(name, value), value)
        return cls(
            opened=sum(p["opened"] for p in parts),
            failed=sum(p["failed"] for p in parts),
            snapshots=sum(p["snapshots"] for p in parts),
            deltas=sum(p["deltas"] for p in parts),
            frames=sum(p["frames"] for p in parts),
            bytes=sum(p["bytes"] for p in parts),
            lost=sum(p["lost"] for p in parts),
            errors=sum(p["errors"] for p in parts),
            pings=sum(p["pings"] for p in parts),
            lowest=lowest,
            cpu_s=sum(p["usage"]["cpu_user_s"] + p["usage"]["cpu_system_s"] for p in parts),
        )


@dataclass(slots=True)
class ScreensResult:
    """What the screens saw; see the module docstring for the three latency figures."""

    topics: tuple[str, ...]
    workers: list[WorkerReport]
    #: Per topic, one table per worker.
    arrivals: dict[str, list[Arrivals]]
    records: list[ScreenRecord]

    def total(self, counter: str) -> int:
        """A counter of `COUNTERS` added over the workers."""
        return sum(int(getattr(w, counter)) for w in self.workers)

    @property
    def cpu_s(self) -> float:
        return sum(w.usage.cpu_s for w in self.workers if w.usage is not None)

    @property
    def max_rss_mb(self) -> float:
        """The largest peak RSS of one worker."""
        return max((w.usage.max_rss_mb for w in self.workers if w.usage is not None), default=0.0)

    @property
    def rss_mb(self) -> float:
        """The workers' peak RSS added up (an upper bound of what they held together)."""
        return sum(w.usage.max_rss_mb for w in self.workers if w.usage is not None)

    def _topics(self, topic: str | None) -> list[str]:
        if topic is not None and topic not in self.arrivals:
            raise KeyError(f"no screen followed {topic!r}")
        return list(self.arrivals) if topic is None else [topic]

    def frame_latency(self, acks: AckTimes, topic: str | None = None) -> LatencyStats:
        """Every delta of every screen: arrival minus the acknowledgement of the highest
        acknowledged position it carries (after the previous delta position any screen of
        the worker got). Frames that carry none count as `unattributed`."""
        histogram = Histogram()
        unattributed = early = 0
        for name in self._topics(topic):
            for table in self.arrivals[name]:
                previous = table.floor
                for slot in sorted(range(len(table.positions)), key=table.positions.__getitem__):
                    position = table.positions[slot]
                    acked = acks.carried(position, previous)
                    previous = position
                    offsets = table.offsets[slot]
                    if acked is None:
                        unattributed += len(offsets)
                        continue
                    base_us = (table.first_ns[slot] - acked) // 1000
                    if base_us < 0:
                        early += sum(1 for o in offsets if base_us + o < 0)
                    histogram.add_offsets(base_us, offsets)
        return LatencyStats.from_histogram(histogram, unattributed=unattributed, early=early)

    def reach_latency(self, acks: AckTimes, topic: str | None = None) -> LatencyStats:
        """For each recorded screen and each acknowledged request whose last position is
        after the screen's snapshot: from the acknowledgement to the first delta at or
        after that position; `missed` when none came."""
        names = self._topics(topic)
        values: list[float] = []
        missed = early = 0
        for record in self.records:
            if record.topic not in names:
                continue
            start = bisect.bisect_right(acks.request_positions, record.snapshot_position)
            for i in range(start, len(acks.request_positions)):
                arrived = record.reached(acks.request_positions[i])
                if arrived is None:
                    missed += 1
                    continue
                latency = arrived - acks.request_ack_ns[i]
                if latency < 0:
                    early += 1
                    latency = 0
                values.append(latency / 1e6)
        return LatencyStats.from_values(values, missed=missed, early=early)

    def spread(self, topic: str | None = None) -> LatencyStats:
        """From the first screen (of any worker) getting a delta position to each screen
        getting it: the fan-out alone."""
        histogram = Histogram()
        for name in self._topics(topic):
            first: dict[int, int] = {}
            for table in self.arrivals[name]:
                for position, at in zip(table.positions, table.first_ns, strict=True):
                    if at < first.get(position, at + 1):
                        first[position] = at
            for table in self.arrivals[name]:
                for slot, position in enumerate(table.positions):
                    base_us = (table.first_ns[slot] - first[position]) // 1000
                    histogram.add_offsets(base_us, table.offsets[slot])
        return LatencyStats.from_histogram(histogram)

    def summary(self) -> dict[str, Any]:
        """Counters, CPU and memory in one flat mapping (for reports)."""
        body: dict[str, Any] = {name: self.total(name) for name in COUNTERS}
        body["cpu_s"] = self.cpu_s
        body["max_rss_mb"] = self.max_rss_mb
        body["processes"] = len(self.workers)
        return body

    def as_json(self) -> dict[str, Any]:
        return {
            "topics": list(self.topics),
            "summary": self.summary(),
            "workers": [w.as_json() for w in self.workers],
            "arrivals": {t: [a.as_json() for a in tables] for t, tables in self.arrivals.items()},
            "records": [r.as_json() for r in self.records],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ScreensResult:
        return cls(
            topics=tuple(body["topics"]),
            workers=[WorkerReport.from_json(w) for w in body["workers"]],
            arrivals={
                t: [Arrivals.from_json(a) for a in tables] for t, tables in body["arrivals"].items()
            },
            records=[ScreenRecord.from_json(r) for r in body["records"]],
        )


class Screens:
    """Screens in worker processes: `start`, then `status`/`wait_reached`, then `stop`.

    As a context manager, entering starts and leaving stops (or, after an exception,
    ends the workers). Blocking: from async code, call the methods in a thread.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        topics: Sequence[str] = ("overview",),
        screens: int = 1,
        processes: int = 1,
        unit: str | None = None,
        record: int = 0,
        ready_timeout: float = READY_TIMEOUT,
        concurrency: int = CONNECT_CONCURRENCY,
        token_in_query: bool = False,
    ) -> None:
        if screens < 1 or processes < 1 or not topics:
            raise ValueError("screens, processes and topics must not be empty")
        host, port, path = ws_address(url)
        self.config = ScreensConfig(
            host=host,
            port=port,
            path=path,
            key=key,
            topics=tuple(topics),
            unit=unit,
            screens=screens,
            processes=min(processes, screens),
            record=record,
            ready_timeout=ready_timeout,
            concurrency=concurrency,
            token_in_query=token_in_query,
        )
        self.workers: list[Worker] = []
        self.result: ScreensResult | None = None

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def start(self) -> ScreensStatus:
        """Start the workers; return once every screen is connected and got its first
        snapshot, or failed (see the counters), or `ready_timeout` passed."""
        if self.workers:
            raise LoadClientError("the screens were already started")
        for i in range(self.config.processes):
            self.workers.append(Worker(_worker_main, (self.config, i), f"screens-{i}"))
        try:
            parts = [w.recv(self.config.ready_timeout + 30)[1] for w in self.workers]
        except BaseException:
            self._end()
            raise
        return ScreensStatus.add(parts)

    def status(self) -> ScreensStatus:
        for w in self.workers:
            w.send("status")
        return ScreensStatus.add([w.recv(30)[1] for w in self.workers])

    def wait_reached(
        self, position: int, timeout: float, topic: str | None = None, poll: float = 0.05
    ) -> bool:
        """Wait until every open screen (of `topic`, or of all) is at `position` or
        later (screens that ended are not waited for); False if that did not happen
        within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            lowest = self.status().lowest
            values = [v for t, v in lowest.items() if topic is None or t == topic]
            if all(v >= position for v in values):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def stop(self) -> ScreensResult:
        """Close every screen and collect what the workers recorded."""
        if self.result is not None:
            return self.result
        try:
            for w in self.workers:
                w.send("stop")
            parts = [w.recv(60) for w in self.workers]
        finally:
            self._end()
        arrivals: dict[str, list[Arrivals]] = {t: [] for t in self.config.topics}
        reports: list[WorkerReport] = []
        records: list[ScreenRecord] = []
        for _, report, tables, recorded in parts:
            reports.append(report)
            for name, table in zip(self.config.topics, tables, strict=True):
                arrivals[name].append(table)
            records += recorded
        records.sort(key=lambda r: r.index)
        self.result = ScreensResult(self.config.topics, reports, arrivals, records)
        return self.result

    def _end(self) -> None:
        for w in self.workers:
            w.close()

    def __enter__(self) -> Screens:
        self.start()
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.stop()
        else:
            for w in self.workers:
                w.process.terminate()
            self._end()


# -- command line ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ops_center.tools.loadclients.screens",
        description="Open lean WebSocket screens on a server's /ws for a while and write "
        "what they received (counters, arrival tables, recorded screens) as JSON.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the server (http://HOST:PORT)")
    p.add_argument(
        "--key", default=os.environ.get("OPS_CENTER_TOKEN"), help="a viewer key ($OPS_CENTER_TOKEN)"
    )
    p.add_argument(
        "--topic", action="append", help="topic to follow (repeatable: screens take turns)"
    )
    p.add_argument("--unit", help="unit code of the subscriptions")
    p.add_argument("--screens", type=int, default=100, help="screens in all (100)")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--record", type=int, default=0, help="screens that record every frame (0)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds once all are ready")
    p.add_argument("--token-in-query", action="store_true", help="send the key as ?token=")
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import orjson

    args = parser().parse_args(argv)
    if not args.key:
        print("screens: a key is needed (--key or $OPS_CENTER_TOKEN)", file=sys.stderr)
        return 2
    screens = Screens(
        args.url,
        args.key,
        topics=args.topic or ["overview"],
        screens=args.screens,
        processes=args.processes,
        unit=args.unit,
        record=args.record,
        token_in_query=args.token_in_query,
    )
    try:
        ready = screens.start()
        print(
            f"screens: {ready.opened} open, {ready.failed} failed, {ready.snapshots} snapshots; "
            f"listening {args.duration:g} s",
            file=sys.stderr,
        )
        time.sleep(args.duration)
        result = screens.stop()
    except LoadClientError as exc:
        print(f"screens: {exc}", file=sys.stderr)
        return 1
    body: dict[str, Any] = {"url": args.url, "ready": dataclasses.asdict(ready)}
    body.update(result.as_json())
    args.out.write_bytes(orjson.dumps(body))
    s = result.summary()
    print(
        f"screens: {s['frames']:,} frames ({s['bytes']:,} bytes), {s['deltas']:,} deltas, "
        f"{s['errors']} errors, {s['lost']} lost; CPU {s['cpu_s']:.2f} s in "
        f"{s['processes']} processes, peak RSS {s['max_rss_mb']:.0f} MB; wrote {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
