"""``ops-center simulate``: the simulated province's traffic against any running server.

Events come from `Province` (starting now) at a steady offered rate, or as fast as the
server acknowledges them without ``--rate``; simulated time runs as fast as the rate
needs (at 1,000 events/s a simulated day passes in about seven seconds). When the
server is slower than the offered rate, the backlog is not kept: the achieved rate is
what the final summary reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Final, TextIO

from ops_center.runtime.progress import Progress
from ops_center.tools.sender import Sender, SendError, Tally
from ops_center.tools.simulator import Province
from ops_center.tools.simulator.rhythm import VN

#: Seconds between two hand-outs of events at a steady rate.
TICK: Final = 0.05
#: Events taken at once when sending as fast as possible.
CHUNK: Final = 2_000
#: Seconds a load generator keeps retrying an unreachable or unavailable server.
GIVE_UP_AFTER: Final = 30.0


def run_tag() -> str:
    """A tag unique to this run (event ids and dossier codes never repeat across runs)."""
    return f"{datetime.now(UTC):%y%m%d%H%M%S}-{secrets.token_hex(2)}"


async def generate(
    url: str,
    key: str,
    *,
    rate: float | None,
    duration: float | None,
    seed: int | None,
    stop: asyncio.Event,
    stream: TextIO,
) -> Tally:
    """Send the province's events until `duration` elapsed or `stop` is set."""
    province = Province(datetime.now(VN), seed=_seed(seed), run=run_tag())
    began = time.monotonic()
    handed = 0
    async with Sender(url, key, give_up_after=GIVE_UP_AFTER) as sender:
        tally = sender.tally
        line = Progress(
            None,
            stream,
            detail=lambda _: f"{tally.describe()} · sim {province.clock:%Y-%m-%d %H:%M}",
        )
        shower = asyncio.create_task(line.follow(lambda: tally.answered))
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - began
                if duration is not None and elapsed >= duration:
                    break
                if rate is None:
                    count = CHUNK
                else:
                    offered = int(rate * elapsed)
                    handed = max(handed, offered - int(rate))  # no backlog beyond a second
                    count = min(offered - handed, CHUNK)
                    if count <= 0:
                        await _pause(stop, TICK)
                        continue
                events = province.take(count)
                handed += len(events)
                await sender.submit(events)
            await sender.submit(province.wind_down(province.clock))
            await sender.drain()
        finally:
            shower.cancel()
            await asyncio.gather(shower, return_exceptions=True)
        print(f"ops-center simulate: {line.text(tally.answered)}", file=stream)
        for result in sender.tally.rejections:
            print(f"  rejected: {result}", file=stream)
        return sender.tally


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbits(32)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def main(
    url: str, key: str, *, rate: float | None, duration: float | None, seed: int | None
) -> int:
    """Run the load generator; 0 when every event was accepted, 1 on rejections or when
    the server could not be reached (or refused the key)."""

    async def run() -> Tally:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await generate(
            url, key, rate=rate, duration=duration, seed=seed, stop=stop, stream=sys.stderr
        )

    try:
        tally = asyncio.run(run())
    except SendError as exc:
        print(f"ops-center simulate: {exc}", file=sys.stderr)
        return 1
    return 1 if tally.rejected else 0
