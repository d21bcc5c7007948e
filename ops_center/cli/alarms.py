"""``ops-center alarms stats``: how long alarms stayed open, as a table (``alarms what-if``
is in `ops_center.cli.whatif`).

The same figures as ``GET /api/v1/alarms/stats`` (`projections.read.alarms.alarm_stats`),
read from the database directly (the server need not run): per cause and unit of the
alarms raised in ``[--from, --to)`` (default: the seven days before now), the counts of
raised, acknowledged, resolved by an operator and resolved by themselves, the median and
90th percentile of the seconds to acknowledge and to resolve, and the seconds they were
open. ``--cause`` and ``--unit`` (with its descendants) narrow it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import asyncpg

from ops_center.alarms.rules.observe import CAUSES
from ops_center.cli import whatif as whatif_cli
from ops_center.province.calendar import now, parse_instant
from ops_center.province.profile import load_profile
from ops_center.runtime.failures import USAGE
from ops_center.settings import Settings
from ops_center.store.database import Database, as_database
from projections.alarms import AlarmsProjection
from projections.projection import ensure_schema
from projections.read import alarms as alarms_read

#: The default span of ``stats`` without ``--from``.
DEFAULT_SPAN = timedelta(days=7)

_COLUMNS = (
    ("CAUSE", 20),
    ("UNIT", 14),
    ("RAISED", 7),
    ("ACKED", 6),
    ("BY_OPERATOR", 12),
    ("BY_ITSELF", 10),
    ("ACK_MEDIAN_S", 13),
    ("ACK_P90_S", 10),
    ("RESOLVE_MEDIAN_S", 17),
    ("RESOLVE_P90_S", 14),
    ("OPEN_S", 12),
)


def _time(text: str) -> datetime:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(
    parser: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """The ``alarms`` subcommands, for `ops_center.cli`."""
    commands = parser.add_subparsers(dest="alarms_command", required=True, metavar="COMMAND")
    stats = commands.add_parser(
        "stats",
        parents=parents,
        help="how long the alarms raised in a period stayed open, per cause and unit",
    )
    stats.add_argument(
        "--from", dest="start", type=_time, metavar="TIME", help="start (default: 7 days ago)"
    )
    stats.add_argument("--to", dest="end", type=_time, metavar="TIME", help="end (default: now)")
    stats.add_argument("--cause", choices=CAUSES, help="only this cause")
    stats.add_argument("--unit", help="only this unit and the units below it")
    stats.add_argument(
        "--profile", type=Path, help="province profile file, for --unit (default: demo)"
    )
    what_if = commands.add_parser(
        "what-if",
        parents=parents,
        help="the alarm rules over a period of the history with other thresholds",
    )
    whatif_cli.add_arguments(what_if, _time)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def print_stats(body: dict[str, Any], out: TextIO) -> None:
    """The answer of `alarm_stats` as a table."""
    print(
        f"alarms raised from {body['from']} to {body['to']} (position {body['position']})",
        file=out,
    )
    print("  ".join(f"{name:<{width}}" for name, width in _COLUMNS).rstrip(), file=out)
    for item in body["items"]:
        cells = (
            item["cause"],
            item["unit"],
            item["raised"],
            item["acknowledged"],
            item["resolved_by_operator"],
            item["resolved_by_itself"],
            item["seconds_to_acknowledge"]["median"],
            item["seconds_to_acknowledge"]["p90"],
            item["seconds_to_resolve"]["median"],
            item["seconds_to_resolve"]["p90"],
            item["active_seconds"],
        )
        print(
            "  ".join(
                f"{_cell(c):<{w}}" for c, (_, w) in zip(cells, _COLUMNS, strict=True)
            ).rstrip(),
            file=out,
        )
    if not body["items"]:
        print("(no alarm was raised in this period)", file=out)


async def _stats(database: Database, args: argparse.Namespace, units: Any) -> dict[str, Any]:
    clock = now()
    end = args.end or clock
    start = args.start or end - DEFAULT_SPAN
    conn = await asyncpg.connect(**database.asyncpg_args())
    try:
        await ensure_schema(conn, [AlarmsProjection()])
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await alarms_read.alarm_stats(
                conn, start=start, end=end, clock=clock, cause=args.cause, units=units
            )
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings, database: Database | str) -> int:
    """Run ``alarms stats`` (or ``alarms what-if``); the exit status."""
    if args.alarms_command == "what-if":
        return whatif_cli.run(args, settings, database)
    units = None
    if args.unit is not None:
        profile = load_profile(args.profile or settings.profile)
        if not profile.has_unit(args.unit):
            print(
                f"ops-center alarms: no unit with code {args.unit!r} in the profile",
                file=sys.stderr,
            )
            return USAGE
        units = profile.descendants(args.unit)
    if args.start is not None and args.end is not None and args.start >= args.end:
        print("ops-center alarms: --from must be before --to", file=sys.stderr)
        return USAGE
    body = asyncio.run(_stats(as_database(database), args, units))
    print_stats(body, sys.stdout)
    return 0
