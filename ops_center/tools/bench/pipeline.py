"""``ops-center bench pipeline``: what the event pipeline costs per event, catching up.

One run, one PostgreSQL server, databases made for it and dropped at the end:

1. **Fill**: N events of a sized simulated province (`ops_center.tools.bench.fill`, as
   ingest records them) into one database, the template of the others.
2. **Baseline**: a plain asyncpg scan of the same log in position order.
3. **Catch-ups** from position 0, each on its own copy of the filled database (``CREATE
   DATABASE ... TEMPLATE``), so that each reads the same log: the pipeline as ``ops-center
   pipeline`` runs it (every projection and the alarm rules, one follower, chunks of
   ``--chunk`` events), then the projections alone and the alarm rules alone (the split of
   the cost). Each reports events/s and the CPU of this process (the pipeline) and of the
   PostgreSQL server's processes per log event, against the budgets of issue 14.

A catch-up is the pipeline's work at its heaviest and most repeatable: the chunk size the
follower reaches under load, no HTTP process beside it, nothing else on the server.
``--profile DIR`` records each catch-up with py-spy (this process: the follower's task and
the rules' thread).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Final

import asyncpg
import psycopg

from ops_center.settings import Settings
from ops_center.store.database import Database
from ops_center.tools.bench.fill import fill_log
from ops_center.tools.bench.harness import BenchError, Profiler, bench_settings, scratch_database
from ops_center.tools.bench.meters import ALARM_TOPICS, EVENTS_TABLE, CpuMeter, postmaster_of
from ops_center.tools.bench.options import PipelineOptions, pipeline_options
from ops_center.tools.bench.pipeline_results import (
    CatchUp,
    PipelineResults,
    PipelineSetup,
    format_report,
    judge,
)
from ops_center.tools.bench.projections import scan_log
from ops_center.tools.bench.report import describe_machine, note, publish

#: The catch-ups of one run: label, with the projections, with the alarm rules.
VARIANTS: Final = (
    ("pipeline: projections + alarm rules", True, True),
    ("projections alone", True, False),
    ("alarm rules alone", False, True),
)


async def catch_up(
    url: str,
    settings: Settings,
    label: str,
    *,
    projections: bool,
    rules: bool,
    chunk: int,
    postmaster: int | None,
    profiler: Profiler,
) -> CatchUp:
    """Follow the log of `url` from position 0 to its head as the pipeline would."""
    from ops_center.alarms.engine import AlarmDesk, RulesEngine
    from ops_center.pipeline.assembly import thresholds
    from ops_center.pipeline.follower import FOLLOWER_LOCK, Follower
    from ops_center.province.profile import load_profile
    from ops_center.runtime.progress import Progress
    from projections.projection import head_position
    from projections.registry import create_projections

    database = Database.parse(url)
    desk = await asyncio.to_thread(AlarmDesk, database) if rules else None
    engine = (
        RulesEngine(desk, thresholds(settings), load_profile(settings.profile).unit_of)
        if desk is not None
        else None
    )
    follower = Follower(
        database,
        create_projections() if projections else [],
        rules=engine,
        batch=chunk,
        rebuild_batch=chunk,
    )
    await follower.setup()
    conn = await asyncpg.connect(**database.asyncpg_args({"synchronous_commit": "off"}))
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", FOLLOWER_LOCK):
            raise BenchError("another follower holds the scratch database's lock")
        target = await head_position(conn)
        progress = Progress(target, sys.stderr, label=f"  {label}")
        profiled = profiler.start(os.getpid(), label.split(":")[0].replace(" ", "-"), gil=True)
        with CpuMeter(postmaster) as meter:
            started = time.perf_counter()
            await follower.catch_up(conn, target, progress.show)
            if engine is not None:
                await asyncio.to_thread(engine.flush)
            seconds = time.perf_counter() - started
        profile = profiler.stop() if profiled else None
        progress.show(target, final=True)
        alarm_events = int(
            await conn.fetchval(
                f"SELECT count(*) FROM {EVENTS_TABLE} WHERE topic LIKE $1", ALARM_TOPICS
            )
        )
    finally:
        conn.terminate()
        if desk is not None:
            await asyncio.to_thread(desk.close)
    reached = min((t.position for t in follower.tracks.values()), default=0)
    if reached < target:
        raise BenchError(f"{label}: caught up only to {reached:,} of {target:,}")
    return CatchUp(
        label,
        [t.name for t in follower.tracks.values()],
        target,
        sum(t.applied for t in follower.tracks.values()),
        alarm_events,
        seconds,
        target / seconds,
        meter.use,
        1e6 * meter.use.client * seconds / target,
        1e6 * meter.use.postgres * seconds / target,
        profile,
    )


def run(
    options: PipelineOptions,
    server_url: str,
    settings: Settings,
    *,
    where: str,
    variants: Sequence[tuple[str, bool, bool]] = VARIANTS,
) -> PipelineResults:
    """The whole benchmark on the server of `server_url`."""
    machine = describe_machine()
    profiler = Profiler(options.profile_dir, options.profile_format)
    started = time.perf_counter()
    with scratch_database(server_url) as template:
        dbname = Database.parse(template).dbname
        note(f"ops-center bench pipeline: scratch database {dbname} ({where})")
        filled = fill_log(template, options.events, seed=options.seed)
        if filled.stored != options.events:  # pragma: no cover - fill_log stores exactly that
            raise BenchError(f"{filled.stored} events stored of {options.events}")
        postmaster = postmaster_of(template)
        with psycopg.connect(Database.parse(template).conninfo, autocommit=True) as conn:
            conn.execute(f"VACUUM (ANALYZE) {EVENTS_TABLE}")
            row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('fsync')"
            ).fetchone()
        version, fsync = (str(row[0]), str(row[1])) if row else ("?", "?")
        scan = asyncio.run(scan_log(template))
        runs = []
        for label, projections, rules in variants:
            with scratch_database(server_url, template=template) as url:
                runs.append(
                    asyncio.run(
                        catch_up(
                            url,
                            settings,
                            label,
                            projections=projections,
                            rules=rules,
                            chunk=options.chunk,
                            postmaster=postmaster,
                            profiler=profiler,
                        )
                    )
                )
    setup = PipelineSetup(
        database=where,
        server_version=version,
        fsync=fsync,
        scratch_database=dbname,
        events=filled.stored,
        cameras=filled.cameras,
        stations=filled.stations,
        fill_seconds=filled.seconds,
        postgres_measured="this server's processes" if postmaster else "every postgres process",
        total_seconds=time.perf_counter() - started,
        mix=filled.mix,
    )
    return judge(machine, options, setup, scan, runs)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench pipeline``: run, print the report, write JSON if asked."""
    from ops_center.embedded.default import database_url

    try:
        options = pipeline_options(args)
    except ValueError as exc:
        print(f"ops-center bench pipeline: {exc}", file=sys.stderr)
        return 2
    settings, where = bench_settings(args, settings)
    try:
        with database_url(settings) as server_url:
            outcome = run(options, server_url, settings, where=where)
    except BenchError as exc:
        print(f"\nops-center bench pipeline: {exc}", file=sys.stderr)
        return 1
    return publish(outcome, format_report(outcome), options.json_path, options.check)
