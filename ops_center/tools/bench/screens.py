"""The screens and the sender of ``ops-center bench streams``, and what they saw.

`connect_screens` opens one WebSocket per `ScreenLog`, subscribed to its topic, and
returns once every one has its snapshot; recording screens keep the position and arrival
time of every delta frame. `send` offers lanes of events over HTTP in batches at a steady
rate and keeps, for every acknowledged batch, when and up to which position. `latencies`
and `spreads` join the two: from each acknowledgement to each screen's first frame at or
after its position, and from the first screen to each other one.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import orjson

from ops_center.tools.bench.harness import HOST

BATCH: Final = "application/cloudevents-batch+json"
#: Concurrent WebSocket handshakes while screens connect.
CONNECT_CONCURRENCY: Final = 100
#: Seconds to wait for the last frames once the sender stopped.
DRAIN_SECONDS: Final = 10.0


@dataclass(slots=True)
class ScreenLog:
    """Frames a screen received: positions and arrival times (monotonic seconds)."""

    topic: str
    record: bool
    positions: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    frames: int = 0

    def reached(self, position: int) -> float | None:
        """When the first frame at or after `position` arrived."""
        i = bisect.bisect_left(self.positions, position)
        return self.times[i] if i < len(self.positions) else None


@dataclass(slots=True)
class Screens:
    """Connected screens: their sockets and the tasks reading them."""

    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def _read(ws: aiohttp.ClientWebSocketResponse, log: ScreenLog) -> None:
    async for message in ws:
        now = time.monotonic()
        log.frames += 1
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        frame = orjson.loads(message.data)
        if frame.get("op") == "snapshot":
            log.snapshot.set()
        if log.record and frame.get("op") == "delta":
            log.positions.append(frame["position"])
            log.times.append(now)


async def connect_screens(
    session: aiohttp.ClientSession, port: int, token: str, logs: list[ScreenLog]
) -> Screens:
    """Connect one screen per log, each subscribed to its topic; return once every one
    received its snapshot."""
    url = f"ws://{HOST}:{port}/ws"
    headers = {"Authorization": f"Bearer {token}"}
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    screens = Screens()

    async def one(log: ScreenLog) -> None:
        async with gate:
            ws = await session.ws_connect(url, headers=headers, max_msg_size=0)
        await ws.send_str(f'{{"op": "subscribe", "topic": "{log.topic}"}}')
        screens.sockets.append(ws)
        screens.readers.append(asyncio.create_task(_read(ws, log)))

    await asyncio.gather(*(one(log) for log in logs))
    await asyncio.gather(*(log.snapshot.wait() for log in logs))
    return screens


@dataclass(slots=True)
class Acks:
    """Acknowledged batches: when, and the position of their last event."""

    times: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    events: int = 0
    errors: int = 0


async def send(
    session: aiohttp.ClientSession,
    port: int,
    token: str,
    lanes: list[list[dict[str, Any]]],
    *,
    rate: float,
    batch: int,
) -> Acks:
    """Send every lane's events in batches, together at `rate` events per second."""
    acks = Acks()
    url = f"http://{HOST}:{port}/api/v1/events"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": BATCH}
    per_lane = rate / max(1, len(lanes))

    async def lane(index: int, events: list[dict[str, Any]]) -> None:
        # lanes are staggered so that the offered load is even, not in bursts
        started = time.monotonic() + index * batch / per_lane / max(1, len(lanes))
        for sent in range(0, len(events), batch):
            chunk = events[sent : sent + batch]
            due = started + sent / per_lane
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            async with session.post(url, data=orjson.dumps(chunk), headers=headers) as response:
                body = await response.read()
            now = time.monotonic()
            if response.status != 200:
                acks.errors += 1
                continue
            results = orjson.loads(body)["results"]
            positions = [r["position"] for r in results if "position" in r]
            if positions:
                acks.times.append(now)
                acks.positions.append(max(positions))
                acks.events += len(chunk)

    await asyncio.gather(*(lane(i, events) for i, events in enumerate(lanes)))
    return acks


def latencies(acks: Acks, logs: list[ScreenLog]) -> tuple[list[float], int]:
    """Milliseconds from each acknowledgement to each screen's frame reaching it, and how
    many (batch, screen) pairs never got there."""
    samples: list[float] = []
    missed = 0
    for log in logs:
        for acked, position in zip(acks.times, acks.positions, strict=True):
            arrived = log.reached(position)
            if arrived is None:
                missed += 1
            else:
                samples.append(max(0.0, arrived - acked) * 1000)
    return samples, missed


def spreads(logs: list[ScreenLog]) -> list[float]:
    """Milliseconds from the first screen receiving a position to each other screen
    receiving it: the cost of the fan-out itself, without the way to the first screen."""
    first: dict[int, float] = {}
    for log in logs:
        for position, arrived in zip(log.positions, log.times, strict=True):
            if arrived < first.get(position, float("inf")):
                first[position] = arrived
    return [
        (arrived - first[position]) * 1000
        for log in logs
        for position, arrived in zip(log.positions, log.times, strict=True)
    ]


async def drained(logs: list[ScreenLog], position: int) -> None:
    """Wait (bounded) until every recording screen reached `position`."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        if all(log.positions and log.positions[-1] >= position for log in logs):
            return
        await asyncio.sleep(0.05)
