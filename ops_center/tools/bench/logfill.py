"""The synthetic log of the projection benchmarks, and quick measurements on an existing
database.

`synthetic` generates a realistic mix of CloudEvents; ``ops-center bench projections``
(`ops_center.tools.bench.projections`, the documented benchmark) records them in a scratch
database and measures rebuilds and the leaders' queries against their baselines.

Here, for a database at hand: `fill` records the mix with `OpsCenter.ingest` (1,000 per
transaction, like the group-commit writer under load); `measure_rebuild` rebuilds every
projection from position 0 and reports log events per second; `measure_queries` times
some leaders' queries (the functions of `projections.read`, without HTTP) and reports
p50 and p99. ``python -m ops_center.tools.bench.logfill`` runs them against ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ops_center.pipeline.rebuild import rebuild
from ops_center.province.calendar import TZ, now
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.store.database import Database
from ops_center.tools.testing import Events, Raw, submissions
from projections import read
from projections.projection import Connection, head_position


def synthetic(count: int, *, seed: int = 7, start: datetime | None = None) -> Iterator[Raw]:
    """`count` CloudEvents: 2,000 cameras, 1,000 stations, 200 KPIs, then a stream of
    status reports (most), alerts, broadcasts, cluster faults, dossiers and KPI reports,
    about 3 events a second of CloudEvent time."""
    rng = random.Random(seed)
    profile = load_profile()
    communes = [u.code for u in profile.units.values() if u.level not in ("province", "district")]
    agencies = list(profile.agencies)
    e = Events(source="/bench", prefix=f"bench{seed}")
    moment = start or now().astimezone(TZ) - timedelta(seconds=count / 3)
    cameras = [f"CAM-{i:05d}" for i in range(2_000)]
    stations = [f"ST-{i:04d}" for i in range(1_000)]
    kpis = [f"KPI-{i:03d}" for i in range(200)]
    emitted = 0
    for code in cameras:
        yield e.camera(code, rng.choice(communes), moment)
    for code in stations:
        yield e.station(code, rng.choice(communes), moment)
    for code in kpis:
        yield e.kpi(code, moment, target=rng.choice([50, 80, 95]), deadline="2027-12-31")
    emitted = len(cameras) + len(stations) + len(kpis)
    open_dossiers: list[str] = []
    on_air: dict[str, str] = {}
    dossier_count = broadcast_count = 0
    while emitted < count:
        moment += timedelta(seconds=rng.random() * 0.66)
        roll = rng.random()
        if roll < 0.55:
            yield e.camera_status(
                rng.choice(cameras), rng.choice(("online", "online", "offline", "degraded")), moment
            )
        elif roll < 0.70:
            yield e.station_status(rng.choice(stations), rng.choice(("online", "offline")), moment)
        elif roll < 0.73:
            yield e.camera_alert(rng.choice(cameras), f"a{emitted}", moment)
        elif roll < 0.76:
            station = rng.choice(stations)
            if station in on_air:
                yield e.broadcast_end(station, on_air.pop(station), moment)
            else:
                broadcast_count += 1
                on_air[station] = f"b{broadcast_count}"
                kind = rng.choice(("normal", "normal", "priority", "emergency"))
                yield e.broadcast(station, on_air[station], moment, kind=kind)
        elif roll < 0.78:
            station = rng.choice(stations)
            if rng.random() < 0.5:
                yield e.fault(station, rng.randint(1, 4), moment)
            else:
                yield e.restored(station, rng.randint(1, 4), moment)
        elif roll < 0.89 or not open_dossiers:
            dossier_count += 1
            code = f"HS-{seed}-{dossier_count:08d}"
            open_dossiers.append(code)
            yield e.dossier(
                code,
                moment,
                moment + timedelta(days=rng.choice((1, 3, 5, 10))),
                agency=rng.choice(agencies),
                unit=rng.choice(communes),
                channel=rng.choice(("online", "online", "counter", "postal")),
            )
        elif roll < 0.995:
            code = open_dossiers.pop(rng.randrange(len(open_dossiers)))
            yield e.completed(code, moment + timedelta(days=rng.random() * 6))
        else:
            yield e.report(
                rng.choice(kpis), f"2026-{rng.randint(1, 12):02d}", rng.random() * 100, moment
            )
        emitted += 1


def fill(database_url: str, count: int, *, batch: int = 1_000, seed: int = 7) -> float:
    """Record `count` synthetic events; the seconds it took."""
    profile = load_profile()
    store = OpsCenter(database_url)
    started = time.monotonic()
    try:
        pending: list[Raw] = []
        for raw in synthetic(count, seed=seed):
            pending.append(raw)
            if len(pending) >= batch:
                store.ingest(submissions(pending, profile))
                pending = []
        if pending:
            store.ingest(submissions(pending, profile))
    finally:
        store.close()
    return time.monotonic() - started


async def measure_rebuild(database_url: str) -> dict[str, Any]:
    """Rebuild every projection (concurrently) and each alone; log events per second."""
    conn = await asyncpg.connect(**Database.parse(database_url).asyncpg_args())
    try:
        head = await head_position(conn)
    finally:
        await conn.close()
    started = time.monotonic()
    together = await rebuild(database_url, out=io.StringIO())
    seconds = time.monotonic() - started
    alone = {}
    for name in [r.name for r in together]:
        result = (await rebuild(database_url, [name], out=io.StringIO()))[0]
        alone[name] = round(result.rate)
    return {
        "events": head,
        "seconds": round(seconds, 2),
        "rate": round(head / seconds),
        "alone": alone,
    }


async def measure_queries(database_url: str, rounds: int = 200) -> dict[str, dict[str, float]]:
    """p50 and p99 in milliseconds of each leaders' query, run `rounds` times."""
    clock = now()
    pool = await asyncpg.create_pool(
        **Database.parse(database_url).asyncpg_args(), min_size=1, max_size=2
    )
    profile = load_profile()
    district = next(u.code for u in profile.units.values() if u.level == "district")
    units = profile.descendants(district)
    queries: dict[str, Callable[[Connection], Awaitable[Any]]] = {
        "overview": lambda c: read.overview(c, read.Scope(), clock=clock),
        "overview unit": lambda c: read.overview(c, read.Scope(units, units), clock=clock),
        "overview as_of 1h": lambda c: read.overview(
            c, read.Scope(), clock=clock, as_of=clock - timedelta(hours=1)
        ),
        "devices": lambda c: read.device_list(
            c, kind="camera", status="offline", units=None, limit=100, offset=0
        ),
        "stats 7 days": lambda c: read.service_stats(
            c,
            start=clock - timedelta(days=7),
            end=clock,
            bucket="day",
            clock=clock,
        ),
        "overdue": lambda c: read.overdue_list(
            c, clock=clock, agency=None, units=None, limit=100, offset=0
        ),
        "kpis": lambda c: read.kpi_list(c, clock=clock),
        "feed": lambda c: read.feed(c, limit=50, before=None, units=None),
    }
    out: dict[str, dict[str, float]] = {}
    try:
        for name, query in queries.items():
            timings = []
            for _ in range(rounds):
                started = time.perf_counter()
                async with (
                    pool.acquire() as conn,
                    conn.transaction(isolation="repeatable_read", readonly=True),
                ):
                    await query(conn)
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            out[name] = {
                "p50_ms": round(statistics.median(timings), 2),
                "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 2),
            }
    finally:
        await pool.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fill", type=int, default=0, help="record this many events first")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("set DATABASE_URL", file=sys.stderr)
        return 2
    if args.fill:
        seconds = fill(url, args.fill)
        print(f"recorded {args.fill:,} events in {seconds:.1f} s")
    result = asyncio.run(measure_rebuild(url))
    print(f"rebuild: {result}")
    for name, timing in asyncio.run(measure_queries(url, args.rounds)).items():
        print(f"{name:<20} p50 {timing['p50_ms']:>7} ms  p99 {timing['p99_ms']:>7} ms")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
