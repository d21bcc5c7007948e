"""``ops-center projections rebuild [NAME]`` and ``ops-center projections status``.

`rebuild` empties the projections and applies the whole log again from one pass (each
chunk is read and decoded once for every projection rebuilt), with a progress bar and the
rate on stderr. When no pipeline follows the log, the command does it itself; when one
does (a running server), the command resets the projections and the running follower
rebuilds them while the others keep following (their queries answer 503 ``rebuilding``
meanwhile); the command follows its progress until it has caught up with the log as it
was when the rebuild started.

`status` prints each projection's position (and the alarm rules' position), the log's
head, the lag between them, when the position last moved, and the last error if the
runner is failing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import asyncpg

from ops_center.pipeline.follower import FOLLOWER_LOCK, Follower
from ops_center.province.calendar import TZ
from ops_center.runtime.progress import Progress
from ops_center.store.database import Database, as_database
from projections.checkpoints import CHECKPOINT_INTERVAL
from projections.projection import (
    POSITIONS_TABLE,
    REBUILD_BATCH,
    ensure_schema,
    head_position,
    read_positions,
    reset,
)
from projections.registry import PROJECTIONS, create_projections


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(
    parser: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """The ``projections`` subcommands, for `ops_center.cli`.

    `parents` (the options shared by every level, ``--data-dir`` among them) are added to
    each subcommand, so they may be written before or after its name.
    """
    commands = parser.add_subparsers(dest="projections_command", required=True, metavar="COMMAND")
    rebuild_cmd = commands.add_parser(
        "rebuild",
        parents=parents,
        help="rebuild projections from the event log (all, or the one named)",
    )
    rebuild_cmd.add_argument("name", nargs="?", choices=sorted(PROJECTIONS), help="projection")
    rebuild_cmd.add_argument(
        "--batch",
        type=_at_least_one,
        default=REBUILD_BATCH,
        help=f"most events per transaction (default {REBUILD_BATCH})",
    )
    commands.add_parser("status", parents=parents, help="position and lag of every projection")


def run(args: argparse.Namespace, database: Database | str) -> int:
    """Run the chosen subcommand against `database`; the exit status."""
    if args.projections_command == "rebuild":
        names = [args.name] if args.name else None
        results = asyncio.run(rebuild(database, names, batch=args.batch))
        for result in results:
            print(result.summary())
        return 0
    rows = asyncio.run(status(database))
    print(format_status(rows))
    return 0


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuild did: the projection, up to which position, and how fast."""

    name: str
    position: int
    applied: int
    seconds: float
    by_server: bool

    @property
    def rate(self) -> float:
        return self.position / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        who = "by the running server" if self.by_server else "here"
        return (
            f"{self.name}: rebuilt {who} up to position {self.position:,} "
            f"({self.applied:,} events applied) in {self.seconds:.2f} s: "
            f"{self.rate:,.0f} log events/s"
        )


async def rebuild(
    database: Database | str,
    names: Sequence[str] | None = None,
    *,
    batch: int = REBUILD_BATCH,
    out: TextIO | None = None,
    checkpoint_interval: int = CHECKPOINT_INTERVAL,
) -> list[Rebuilt]:
    """Rebuild the named projections (all when None) from position 0, reading the log
    once for all of them.

    When no follower runs (nobody holds `FOLLOWER_LOCK`), this command takes the lock and
    does the work itself, in chunks of `batch` events. When one runs (a server's pipeline),
    the projections are reset (``rebuilding``: their queries answer 503 meanwhile) and the
    running follower rebuilds them from one pass while the others keep following; this
    command shows its progress until it has caught up with the log as it was at the start.
    Checkpoints are rebuilt with their projections, every `checkpoint_interval` positions
    (the benchmark compares with 0, none; a running follower keeps its own interval).
    """
    projections = create_projections(
        list(names) if names else None, checkpoint_interval=checkpoint_interval
    )
    db = as_database(database)
    conn = await asyncpg.connect(**db.asyncpg_args({"synchronous_commit": "off"}))
    try:
        await ensure_schema(conn, projections)
        target = await head_position(conn)
        progress = Progress(target, out)
        started = time.monotonic()
        chosen = [p.name for p in projections]
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", FOLLOWER_LOCK):
            try:
                for projection in projections:
                    await reset(conn, projection)
                follower = Follower(db, projections, batch=batch, rebuild_batch=batch)
                await follower.catch_up(conn, target, progress.show)
                await conn.execute(
                    f"UPDATE {POSITIONS_TABLE} SET rebuilding = false WHERE name = ANY($1::text[])",
                    chosen,
                )
                for projection in projections:  # fresh statistics for the planner
                    for table in projection.tables:
                        await conn.execute(f"ANALYZE {table}")
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", FOLLOWER_LOCK)
            seconds = time.monotonic() - started
            progress.show(target, final=True)
            return [
                Rebuilt(t.name, t.position, t.applied, seconds, False)
                for t in follower.tracks.values()
            ]
        # A running follower holds the lock: reset, and follow its progress.
        for projection in projections:
            await reset(conn, projection)
        while True:
            positions = await read_positions(conn)
            done = min(positions.get(name, 0) for name in chosen)
            progress.show(min(done, target))
            if done >= target:
                break
            await asyncio.sleep(0.2)
        seconds = time.monotonic() - started
        progress.show(target, final=True)
        return [Rebuilt(name, positions.get(name, 0), 0, seconds, True) for name in chosen]
    finally:
        await conn.close()


async def status(database: Database | str) -> list[dict[str, Any]]:
    """Every projection's position, the head of the log, lag, last update and error."""
    conn = await asyncpg.connect(**as_database(database).asyncpg_args())
    try:
        await ensure_schema(conn, create_projections())
        head = await head_position(conn)
        rows = list(
            await conn.fetch(
                f"SELECT name, position, updated_at, rebuilt_at, last_error, error_at, "
                f"rebuilding FROM {POSITIONS_TABLE} ORDER BY name"
            )
        )
        # the alarm rules follow the log too (ops_center.alarms.rules): shown as one more row
        if await conn.fetchval("SELECT to_regclass('alarm_rules_position') IS NOT NULL"):
            rows += await conn.fetch(
                "SELECT 'alarm_rules' AS name, position, updated_at, NULL AS rebuilt_at, "
                "NULL AS last_error, NULL AS error_at, false AS rebuilding "
                "FROM alarm_rules_position"
            )
    finally:
        await conn.close()
    return [
        {
            "name": r["name"],
            "position": r["position"],
            "head": head,
            "lag": head - r["position"],
            "updated_at": r["updated_at"],
            "rebuilt_at": r["rebuilt_at"],
            "last_error": r["last_error"],
            "error_at": r["error_at"],
            "rebuilding": r["rebuilding"],
        }
        for r in rows
    ]


def format_status(rows: Sequence[dict[str, Any]]) -> str:
    """The status as a table for a terminal."""
    lines = [f"{'PROJECTION':<12} {'POSITION':>12} {'HEAD':>12} {'LAG':>10}  UPDATED / ERROR"]
    for r in rows:
        updated = (
            r["updated_at"].astimezone(TZ).isoformat(timespec="seconds") if r["updated_at"] else "-"
        )
        error = f"  ERROR: {r['last_error']}" if r["last_error"] else ""
        if r.get("rebuilding"):
            error = f"  REBUILDING{error}"
        lines.append(
            f"{r['name']:<12} {r['position']:>12,} {r['head']:>12,} {r['lag']:>10,}  "
            f"{updated}{error}"
        )
    return "\n".join(lines)
