"""``ops-center alarms what-if``: the alarm rules over a period of the history with other
thresholds, beside the alarms really raised (``POST /api/v1/alarms/what-if`` without the
server).

``--set NAME=SECONDS`` (repeatable) changes a threshold by its settings name
(``offline_grace_seconds``, ...); the others keep the settings. The log is read in one
read-only snapshot with a progress line on stderr; nothing is written. The output is a
short summary, or the whole answer as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

import asyncpg
import orjson

from ops_center.alarms.history import replay
from ops_center.alarms.whatif import (
    THRESHOLD_NAMES,
    BadThreshold,
    Outcome,
    answer,
    in_force,
    overridden,
    thresholds_of,
)
from ops_center.province.calendar import now
from ops_center.province.profile import load_profile
from ops_center.runtime.failures import USAGE
from ops_center.runtime.progress import Progress
from ops_center.settings import Settings
from ops_center.store.database import Database, as_database
from projections.alarms import AlarmsProjection
from projections.projection import ensure_schema
from projections.read import alarms as alarms_read


def _setting(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=SECONDS")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None


def add_arguments(parser: argparse.ArgumentParser, time: Any) -> None:
    """The options of ``alarms what-if`` (`time` parses ``--from``/``--to``)."""
    parser.add_argument("--from", dest="start", type=time, metavar="TIME", required=True)
    parser.add_argument("--to", dest="end", type=time, metavar="TIME", required=True)
    parser.add_argument(
        "--set",
        dest="changes",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help=f"a threshold to change ({', '.join(THRESHOLD_NAMES)})",
    )
    parser.add_argument("--json", action="store_true", help="print the whole answer as JSON")


def print_summary(body: dict[str, Any], out: TextIO) -> None:
    """The answer as a few readable lines."""
    counts = body["summary"]
    print(f"what-if of the alarm rules from {body['from']} to {body['to']}", file=out)
    for name, value in body["thresholds"].items():
        print(f"  {name} = {value:g}", file=out)
    print(
        f"would raise {counts['would_raise']} alarms; {counts['raised']} were raised; "
        f"{counts['only_what_if']} only in the what-if, {counts['only_raised']} only raised",
        file=out,
    )


async def _run(
    database: Database, settings: Settings, values: dict[str, float], args: argparse.Namespace
) -> dict[str, Any]:
    unit_of = load_profile(settings.profile).unit_of
    progress = Progress(label="what-if", unit="positions")

    def show(position: int, head: int) -> None:
        progress.total = head
        progress.show(position)

    conn = await asyncpg.connect(**database.asyncpg_args())
    try:
        await ensure_schema(conn, [AlarmsProjection()])
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            progress.restart()
            would = await replay(
                conn,
                thresholds_of(values),
                unit_of,
                args.start,
                args.end,
                now=now(),
                progress=show,
            )
            progress.show(progress.total or 0, final=True)
            rows = await alarms_read.alarms_raised(conn, start=args.start, end=args.end)
    finally:
        await conn.close()
    return answer(args.start, args.end, values, would, [Outcome(**r) for r in rows])


def run(args: argparse.Namespace, settings: Settings, database: Database | str) -> int:
    """Run ``alarms what-if``; the exit status."""
    if args.start >= args.end:
        print("ops-center alarms what-if: --from must be before --to", file=sys.stderr)
        return USAGE
    try:
        values = overridden(in_force(settings), dict(args.changes))
    except BadThreshold as exc:
        print(f"ops-center alarms what-if: {exc}", file=sys.stderr)
        return USAGE
    body = asyncio.run(_run(as_database(database), settings, values, args))
    if args.json:
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_summary(body, sys.stdout)
    return 0
