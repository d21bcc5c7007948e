"""``ops-center demo``: the server on the embedded default, driven by a simulated province.

One process: the server (`web.app.create_app`, the same app as ``serve``) listens on
`host`:`port`; once it is up, two keys are created: an ``integration`` key for the
simulator and an ``operator`` key for the ops-room page (viewer rights plus the alarm
buttons). The page's address with that key is printed, then the simulated province is
sent through the public HTTP API like any integration would:

* first its recent history (`history` hours, as fast as the server takes it) when the
  event log is empty, so the page has a day or two to show at once;
* then live, `speed` simulated seconds per real second. Event times are simulated
  times: with ``--speed`` above 1 they run ahead of the wall clock, and a later run on the
  same server goes on from the latest event time it finds in the feed.

SIGINT (Ctrl-C) or SIGTERM ends the broadcasts on air, stops sending, and shuts the
server down cleanly (the embedded PostgreSQL too, when this process started it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from datetime import datetime, timedelta
from typing import Final, TextIO

import aiohttp
from aiohttp import web

from ops_center.access.keystore import create_key
from ops_center.runtime.failures import CommandFailed, check_listen, describe, listen_failure
from ops_center.runtime.progress import Progress
from ops_center.settings import Settings
from ops_center.tools.loadgen import run_tag
from ops_center.tools.sender import Sender, SendError
from ops_center.tools.simulator import SCOPES, Province
from ops_center.tools.simulator.rhythm import VN

#: Real seconds between two hand-outs of live events.
TICK: Final = 0.25
#: Events sent at once while catching up on history.
HISTORY_CHUNK: Final = 2_000
SHUTDOWN_TIMEOUT: Final = 10.0
_HOUR: Final = timedelta(hours=1)


def _client_host(host: str) -> str:
    """Where to reach a server listening on `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


async def demo(
    settings: Settings,
    *,
    speed: float,
    history: timedelta,
    seed: int | None,
    stop: asyncio.Event,
    out: TextIO,
) -> None:
    """Serve, create the keys, print the page's address, drive the province until `stop`."""
    from web.app import create_app
    from web.appkeys import DATABASE

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        run = run_tag()
        database = app[DATABASE]
        feeder = await asyncio.to_thread(
            create_key, database, f"demo-simulator-{run}", "integration", scopes=SCOPES
        )
        room = await asyncio.to_thread(create_key, database, f"demo-ops-room-{run}", "operator")
        base = f"http://{_client_host(settings.host)}:{settings.port}"
        page = f"{base}/?token={room}"
        rule = "=" * 78
        print(
            f"\n{rule}\n  Ops room:  {page}\n{rule}\n"
            f"  operator key demo-ops-room-{run} (queries, live streams, alarm buttons)\n"
            f"  simulator key demo-simulator-{run} (integration: {', '.join(SCOPES)})\n"
            f"  speed x{speed:g}; Ctrl-C stops the province and the server.\n",
            file=out,
            flush=True,
        )
        # from here on, the page's address and the rate line are what matters
        logging.getLogger().setLevel(logging.WARNING)
        await drive(
            base, feeder, room, speed=speed, history=history, seed=seed, run=run, stop=stop, out=out
        )
    finally:
        await runner.cleanup()


async def drive(
    base: str,
    feeder: str,
    viewer: str,
    *,
    speed: float,
    history: timedelta,
    seed: int | None,
    run: str,
    stop: asyncio.Event,
    out: TextIO,
) -> None:
    """Send the province to the server at `base`: history first (if its log is empty)."""
    position, latest = await _last_seen(base, viewer)
    empty = position == 0
    now = datetime.now(VN) if latest is None else max(datetime.now(VN), latest)
    start = now - history if empty else now
    province = Province(start, seed=seed if seed is not None else int(time.time()), run=run)
    print(f"  simulating {province.size}", file=out, flush=True)
    async with Sender(base, feeder) as sender:
        tally = sender.tally
        line = Progress(
            None,
            sys.stderr,
            detail=lambda _: f"{tally.describe()} · sim {province.clock:%a %d %b %H:%M}",
        )
        shower = asyncio.create_task(line.follow(lambda: tally.answered))
        try:
            if empty and history:
                line.clear()
                print(
                    f"  sending the last {history / _HOUR:g} hours of history ...",
                    file=out,
                    flush=True,
                )
                backlog = province.advance(now)
                for begin in range(0, len(backlog), HISTORY_CHUNK):
                    if stop.is_set():
                        break
                    await sender.send(backlog[begin : begin + HISTORY_CHUNK])
            line.clear()
            print(f"  live from {now:%a %d %b %H:%M} (Vietnam time)", file=out, flush=True)
            began = time.monotonic()
            while not stop.is_set():
                moment = now + timedelta(seconds=(time.monotonic() - began) * speed)
                await sender.send(province.advance(moment))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK)
            await sender.send(province.wind_down(province.clock))
        finally:
            shower.cancel()
            await asyncio.gather(shower, return_exceptions=True)
        line.clear()
        print(
            f"ops-center demo: sent {tally.answered:,} events "
            f"({tally.accepted:,} accepted, {tally.rejected:,} rejected)",
            file=out,
            flush=True,
        )
        for result in tally.rejections:
            print(f"  rejected: {result}", file=out)


async def _last_seen(base: str, key: str) -> tuple[int, datetime | None]:
    """The feed's position (0: no events yet) and the latest event time among its newest.

    A demo that ran ahead of the wall clock (``--speed`` above 1) left events in the
    future: the next run goes on from there, so that its events are news, not history.
    """
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{base}/api/v1/feed",
            params={"limit": "50"},
            headers={"Authorization": f"Bearer {key}"},
        ) as reply,
    ):
        reply.raise_for_status()
        body = await reply.json()
    times = [datetime.fromisoformat(item["time"]) for item in body.get("items", ())]
    return int(body.get("position", 0)), max(times, default=None)


def main(settings: Settings, *, speed: float, history_hours: float, seed: int | None) -> int:
    """Run the demo until SIGINT or SIGTERM; 0 on a clean stop, 1 on a failure (the port
    already in use, the server not answering its own simulator)."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await demo(
            settings,
            speed=speed,
            history=timedelta(hours=history_hours),
            seed=seed,
            stop=stop,
            out=sys.stdout,
        )

    try:
        check_listen(settings.host, settings.port)  # before the database starts
    except CommandFailed as exc:
        print(f"ops-center demo: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(run())
    except SendError as exc:
        print(f"ops-center demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        failure = listen_failure(exc, settings.host, settings.port)
        print(f"ops-center demo: {describe(failure or exc)}", file=sys.stderr)
        return 1
    return 0
