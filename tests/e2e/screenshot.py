"""Regenerate the ops-room page's screenshot, ``docs/screenshots/ops-room.png``.

    .venv/bin/python tests/e2e/screenshot.py [--out PATH] [--width 1920 --height 1080]
                                             [--phone PATH] [--database-url URL]

Starts the real server (on an embedded PostgreSQL in a temporary folder unless
``--database-url`` names an empty database), creates an integration key and an operator
key, posts the last two days of the simulated province (`demo_events`, seeded, as
``ops-center demo`` sends its history: the shipped profile's stations and cameras, their
broadcasts, the one-stop shops' dossiers, the resolutions' indicators), then the last
minutes as they would arrive live, opens the page in headless Chromium with ``?token=``
and captures it over the DevTools protocol once every panel has its data.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cdp import Chromium

from ops_center.access.keystore import create_key
from ops_center.settings import Settings
from ops_center.tools.simulator import Province
from ops_center.tools.simulator.rhythm import VN
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "screenshots" / "ops-room.png"
#: The simulated province's seed, and the hours of its history sent (as ``ops-center demo``
#: sends them): long enough for the overdue dossiers and the day's figures.
SEED = 20261122
HISTORY = timedelta(hours=48)


def demo_events(now: datetime, seed: int = SEED) -> tuple[list[dict[str, Any]], int]:
    """The simulated province's last `HISTORY` up to `now` (oldest first), and how many
    indicators it reports (the page draws a sparkline for each)."""
    start = (now - HISTORY).replace(minute=0, second=0, microsecond=0)
    province = Province(start, seed=seed, run=f"shot{now:%y%m%d%H%M}")
    return province.advance(now), len(province.kpis.indicators)


def batches(events: list[dict[str, Any]], size: int = 500) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


async def post_all(base: str, key: str, events: list[dict[str, Any]]) -> int:
    """Send the events in batches; the last position (every event must be accepted)."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    last = 0
    async with aiohttp.ClientSession() as session:
        for batch in batches(events):
            async with session.post(
                f"{base}/api/v1/events", data=orjson.dumps(batch), headers=headers
            ) as response:
                body = await response.json()
            rejected = [r for r in body["results"] if r["status"] == "rejected"]
            if rejected:
                raise RuntimeError(f"demo events rejected: {rejected[:3]}")
            last = max([last, *(r["position"] for r in body["results"])])
    return last


async def settled(base: str, key: str, position: int, within: float = 120.0) -> None:
    """Wait until the overview and the feed reflect `position`."""
    deadline = time.monotonic() + within
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{base}/api/v1/overview") as r:
                overview = await r.json()
            async with session.get(f"{base}/api/v1/feed?limit=1") as r:
                feed = await r.json()
            if overview["position"] >= position and feed["position"] >= position:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"projections still at {overview['position']}")
            await asyncio.sleep(0.2)


async def capture(
    url: str,
    out: Path,
    size: tuple[int, int],
    phone: Path | None,
    english: Path | None,
    kpis: int,
) -> None:
    browser = await Chromium.launch()
    try:
        shots = [(out, size, "vi"), (phone, (390, 844), "vi"), (english, size, "en")]
        for path, (w, h), lang in shots:
            if path is None:
                continue
            page = await browser.new_page(w, h)
            await page.goto(url)
            if lang == "en":
                await page.evaluate("document.getElementById('lang').click()")
            await page.wait_for("opsRoom.connection === 'live'", 20)
            await page.wait_for(
                "document.querySelectorAll('#feed .fitem').length > 0 && "
                f"document.querySelectorAll('.sparkline').length >= {kpis}",
                20,
            )
            await asyncio.sleep(1.0)  # let the page settle (animations, last frames)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(await page.screenshot(full_page=path is phone))
            if page.errors:
                raise RuntimeError(f"the page reported errors: {page.errors}")
            await page.close()
            print(f"wrote {path} ({w}x{h})")
    finally:
        await browser.close()


async def run(args: argparse.Namespace) -> None:
    server = None
    folder = None
    url = args.database_url
    if url is None:
        from ops_center.embedded.postgres import EmbeddedPostgres

        folder = Path(tempfile.mkdtemp(prefix="ops-center-shot-"))
        server = EmbeddedPostgres(folder / "data")
        url = await asyncio.to_thread(server.start)
    try:
        app = create_app(Settings(database_url=url, commit_max_wait_ms=1.0))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        try:
            ingest = create_key(url, f"shot-ingest-{port}", "integration", scopes=("*",))
            operator = create_key(url, f"shot-wall-{port}", "operator")
            clock = datetime.now(VN)
            events, kpis = demo_events(clock)
            # the days so far, then (once the rules raised their alarms) the last minutes,
            # as they would arrive live
            recent = clock - timedelta(minutes=12)
            earlier = [e for e in events if datetime.fromisoformat(e["time"]) < recent]
            position = await post_all(base, ingest, earlier)
            await settled(base, operator, position)
            await asyncio.sleep(2.0)
            position = await post_all(base, ingest, events[len(earlier) :])
            await settled(base, operator, position)
            await asyncio.sleep(1.0)
            await capture(
                f"{base}/?token={operator}",
                args.out,
                (args.width, args.height),
                args.phone,
                args.english,
                kpis=kpis,
            )

        finally:
            await runner.cleanup()
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument(
        "--phone",
        type=Path,
        default=None,
        help="also a whole-page capture 390 pixels wide (a phone) here",
    )
    parser.add_argument("--english", type=Path, default=None, help="also an English capture")
    parser.add_argument("--database-url", default=None, help="an empty database to use")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
