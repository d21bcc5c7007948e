"""``ops-center bench projections``: projection rebuild and leaders' queries at scale.

One run, one machine, one PostgreSQL server, one fresh database (``ops_bench_<hex>``,
dropped at the end):

1. **Fill**: N events of a sized simulated province (device status, alerts, broadcasts,
   cluster faults, dossiers, indicators; `ops_center.tools.bench.fill`), recorded exactly
   as ingest would record them, only faster.
2. **Rebuild**: the rate (log events per second) of rebuilding all projections together
   without checkpoints, then with them (what they cost), and each alone, beside the
   baseline of reading the same log with a plain asyncpg ``SELECT ... ORDER BY
   notification_id`` scan.
3. **Queries**: p50/p99 of every leaders' query (`ops_center.tools.bench.queries`; the
   overview `as_of` from checkpoints and from the history alone, side by side), beside
   the baseline of a ``SELECT 1`` round trip in the same transaction shape.

Results, budgets and the report: `ops_center.tools.bench.projections_results`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable
from typing import Final

import asyncpg
import psycopg

from ops_center.runtime.progress import Progress
from ops_center.settings import Settings
from ops_center.store.database import Database
from ops_center.tools.bench.fill import fill_log
from ops_center.tools.bench.harness import BenchError, bench_settings, scratch_database
from ops_center.tools.bench.meters import EVENTS_TABLE, CpuMeter
from ops_center.tools.bench.options import ProjectionsOptions, projections_options
from ops_center.tools.bench.projections_results import (
    ProjectionsResults,
    Rebuild,
    Scan,
    Setup,
    format_report,
    judge,
)
from ops_center.tools.bench.queries import time_queries
from ops_center.tools.bench.report import describe_machine, note, publish
from projections.checkpoints import CHECKPOINT_INTERVAL

#: Rows per fetch of the baseline scan.
SCAN_PREFETCH: Final = 10_000


async def scan_log(database_url: str) -> Scan:
    """``SELECT ... FROM ops_events ORDER BY notification_id`` through an asyncpg cursor."""
    conn = await asyncpg.connect(**Database.parse(database_url).asyncpg_args())
    try:
        total = await conn.fetchval(f"SELECT count(*) FROM {EVENTS_TABLE}")
        progress = Progress(total, sys.stderr, label="  baseline: plain scan of the log")
        count = 0
        with CpuMeter() as meter:
            started = time.perf_counter()
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                async for _ in conn.cursor(
                    "SELECT notification_id, originator_id, originator_version, topic, state "
                    f"FROM {EVENTS_TABLE} ORDER BY notification_id",
                    prefetch=SCAN_PREFETCH,
                ):
                    count += 1
                    if not count % SCAN_PREFETCH:
                        progress.show(count)
            seconds = time.perf_counter() - started
        progress.show(count, final=True)
    finally:
        await conn.close()
    return Scan(count, seconds, count / seconds, meter.use)


async def rebuild_rate(
    database_url: str,
    names: list[str] | None,
    label: str,
    checkpoint_interval: int = CHECKPOINT_INTERVAL,
) -> Rebuild:
    """Rebuild the named projections (all when None) together; log events per second."""
    from ops_center.pipeline.rebuild import rebuild

    note(f"  rebuilding {label}")
    with CpuMeter() as meter:
        started = time.perf_counter()
        results = await rebuild(
            database_url, names, out=sys.stderr, checkpoint_interval=checkpoint_interval
        )
        seconds = time.perf_counter() - started
    events = min(r.position for r in results)
    return Rebuild(
        label,
        [r.name for r in results],
        events,
        sum(r.applied for r in results),
        seconds,
        events / seconds,
        meter.use,
    )


async def drop_checkpoint_indexes(database_url: str) -> None:
    """Drop the indexes only the readers of checkpoints need, so that the rebuild without
    checkpoints goes without them as well (the rebuild with checkpoints makes them again)."""
    from projections import devices, services

    conn = await asyncpg.connect(**Database.parse(database_url).asyncpg_args())
    try:
        for name in (*devices.CHECKPOINT_INDEXES, *services.CHECKPOINT_INDEXES):
            await conn.execute(f"DROP INDEX IF EXISTS {name}")
    finally:
        await conn.close()


async def vacuum(database_url: str, tables: Iterable[str]) -> float:
    """VACUUM (ANALYZE) tables, as autovacuum would in a running system; seconds."""
    conn = await asyncpg.connect(**Database.parse(database_url).asyncpg_args())
    try:
        started = time.perf_counter()
        for table in tables:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        return time.perf_counter() - started
    finally:
        await conn.close()


def run(options: ProjectionsOptions, server_url: str, *, where: str) -> ProjectionsResults:
    """The whole benchmark in a scratch database on the server of `server_url`."""
    from ops_center.province.calendar import now
    from projections.registry import PROJECTIONS, create_projections

    machine = describe_machine()
    started = time.perf_counter()
    with scratch_database(server_url) as url:
        dbname = Database.parse(url).dbname
        note(f"ops-center bench projections: scratch database {dbname} ({where})")
        filled = fill_log(url, options.events, seed=options.seed)
        if filled.stored != options.events:  # pragma: no cover - fill_log stores exactly that
            raise BenchError(f"{filled.stored} events stored of {options.events}")
        clock = now()
        vacuumed = asyncio.run(vacuum(url, [EVENTS_TABLE]))
        scan = asyncio.run(scan_log(url))
        asyncio.run(drop_checkpoint_indexes(url))
        plain = asyncio.run(
            rebuild_rate(url, None, "all together, no checkpoints", checkpoint_interval=0)
        )
        together = asyncio.run(rebuild_rate(url, None, "all projections together"))
        alone = [asyncio.run(rebuild_rate(url, [name], name)) for name in PROJECTIONS]
        tables = [t for p in create_projections() for t in p.tables]
        note("  vacuuming the read models (as autovacuum would after a rebuild)")
        vacuumed += asyncio.run(vacuum(url, tables))
        queries = asyncio.run(
            time_queries(
                url, options.rounds, clock, camera=filled.camera, indicator=filled.indicator
            )
        )
        with psycopg.connect(Database.parse(url).conninfo) as conn:
            version_row = conn.execute("SELECT current_setting('server_version')").fetchone()
            dossiers_row = conn.execute("SELECT count(*) FROM rm_dossiers").fetchone()
        version = str(version_row[0]) if version_row else "?"
        dossiers = int(dossiers_row[0]) if dossiers_row else 0
    setup = Setup(
        database=where,
        server_version=version,
        scratch_database=dbname,
        events=filled.stored,
        rejected=filled.rejected,
        cameras=filled.cameras,
        stations=filled.stations,
        fill_seconds=filled.seconds,
        dossiers=dossiers,
        vacuum_seconds=vacuumed,
        total_seconds=time.perf_counter() - started,
        mix=filled.mix,
    )
    return judge(machine, options, setup, scan, together, alone, queries, plain)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench projections``: run, print the report, write JSON if asked."""
    from ops_center.embedded.default import database_url

    try:
        options = projections_options(args)
    except ValueError as exc:
        print(f"ops-center bench projections: {exc}", file=sys.stderr)
        return 2
    settings, where = bench_settings(args, settings)
    try:
        with database_url(settings) as server_url:
            outcome = run(options, server_url, where=where)
    except BenchError as exc:
        print(f"\nops-center bench projections: {exc}", file=sys.stderr)
        return 1
    return publish(outcome, format_report(outcome), options.json_path, options.check)
