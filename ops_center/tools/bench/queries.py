"""The leaders' queries of ``ops-center bench projections``, timed as the HTTP routes run them.

`leader_queries` lists every query measured: the `projections.read` functions that the
HTTP handlers call, with parameters picked from the filled log (`Workbench`: a district,
its units, an agency, two moments for ``as_of``, a camera and an indicator);
`time_queries` runs each of them `rounds` times after `WARMUP` untimed runs, in a
read-only REPEATABLE READ transaction on a pooled connection, the answer encoded as
JSON, beside the baseline of ``SELECT 1`` in the same transaction shape.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import orjson

from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.runtime.progress import Progress
from ops_center.store.database import Database
from ops_center.tools.bench.meters import EVENTS_TABLE
from ops_center.tools.bench.report import percentile
from projections import read
from projections.checkpoints import CHECKPOINT_INTERVAL

#: Positions between the moments of the `as_of` queries and the checkpoint after them.
AS_OF_BEFORE_CHECKPOINT: Final = CHECKPOINT_INTERVAL // 20
#: Untimed runs of each query before its timed rounds.
WARMUP: Final = 5
#: The agency of the queries about one agency: building permits, about 5 % of the
#: province's dossiers (a typical department, neither the busiest nor a rare one).
AGENCY: Final = "SXD"


@dataclass(frozen=True, slots=True)
class QueryTiming:
    """Latency of one leaders' query (or of the baseline), in milliseconds."""

    name: str
    what: str
    rounds: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bytes: int


Call = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Workbench:
    """The parameters of the queries, picked from the filled log."""

    clock: datetime
    district: str
    units: frozenset[str]
    owners: frozenset[str]
    agency: str
    camera: str
    indicator: str
    as_of: dict[str, datetime] = field(default_factory=dict)


async def _recorded_at(conn: Any, position: int) -> datetime:
    state = await conn.fetchval(
        f"SELECT state FROM {EVENTS_TABLE} WHERE notification_id >= $1 "
        "ORDER BY notification_id LIMIT 1",
        position,
    )
    return datetime.fromisoformat(orjson.loads(state)["timestamp"])


async def workbench(conn: Any, clock: datetime, camera: str, indicator: str) -> Workbench:
    """The parameters of the queries for a log filled with `camera` and `indicator`."""
    profile = load_profile()
    district = next(u.code for u in profile.units.values() if u.level == "district")
    units = profile.descendants(district)
    head = await conn.fetchval(f"SELECT max(notification_id) FROM {EVENTS_TABLE}")
    as_of = {
        "recent": await _recorded_at(conn, _far_from_a_checkpoint(head * 95 // 100)),
        "old": await _recorded_at(conn, _far_from_a_checkpoint(head // 10)),
    }
    owners = profile.owners_within(units)
    return Workbench(clock, district, units, owners, AGENCY, camera, indicator, as_of)


def _far_from_a_checkpoint(position: int) -> int:
    """A position near `position` with most of a checkpoint interval of history before it
    (`AS_OF_BEFORE_CHECKPOINT` positions before the next checkpoint): nearly the worst
    case of `as_of` from checkpoints."""
    interval = CHECKPOINT_INTERVAL
    if position < interval:
        return max(1, position)
    return max(1, (position // interval + 1) * interval - AS_OF_BEFORE_CHECKPOINT)


def _as_of_queries(w: Workbench) -> list[tuple[str, str, Call]]:
    """The overview `as_of` (province and one district, a recent and an old moment), each
    from checkpoints (what the HTTP route answers) and from the history alone."""
    out: list[tuple[str, str, Call]] = []
    for which, share in (("recent", "95%"), ("old", "10%")):
        moment = w.as_of[which]
        for scope_name, scope, query in (
            ("", read.Scope(), ""),
            (", unit", read.Scope(w.units, w.owners), f"unit={w.district}&"),
        ):
            what = f"/api/v1/overview?{query}as_of=(recorded time near {share} of the log)"
            for checkpoints in (True, False):
                name = f"overview{scope_name}, as_of {which}"
                out.append(
                    (
                        name if checkpoints else f"{name}, no checkpoints",
                        what if checkpoints else f"{what} (the history alone)",
                        _overview_as_of(w, scope, moment, checkpoints=checkpoints),
                    )
                )
    return out


def _overview_as_of(
    w: Workbench, scope: read.Scope, moment: datetime, *, checkpoints: bool
) -> Call:
    return lambda c: read.overview(c, scope, clock=w.clock, as_of=moment, checkpoints=checkpoints)


def leader_queries(w: Workbench) -> list[tuple[str, str, Call]]:
    """(name, HTTP equivalent, call) of every leaders' query measured."""
    clock = w.clock
    today = datetime.combine(clock.astimezone(TZ).date(), datetime.min.time(), TZ)
    month_ago = today - timedelta(days=29)
    year = datetime(today.year, 1, 1, tzinfo=TZ)
    unit = f"unit={w.district}"
    agency = f"agency={w.agency}"

    def stats(start: datetime, end: datetime, bucket: Any, **f: Any) -> Call:
        return lambda c: read.service_stats(
            c, start=start, end=end, bucket=bucket, clock=clock, **f
        )

    def shape(bucket: str, span: str, *filters: str) -> str:
        query = "&".join((f"from={span}", f"bucket={bucket}", *filters))
        return f"/api/v1/services/stats?{query}"

    return [
        ("overview", "/api/v1/overview", lambda c: read.overview(c, read.Scope(), clock=clock)),
        (
            "overview, unit",
            f"/api/v1/overview?{unit}",
            lambda c: read.overview(c, read.Scope(w.units, w.owners), clock=clock),
        ),
        *_as_of_queries(w),
        (
            "devices",
            "/api/v1/devices?kind=camera&status=offline",
            lambda c: read.device_list(
                c, kind="camera", status="offline", units=None, limit=100, offset=0
            ),
        ),
        (
            "devices, unit",
            f"/api/v1/devices?kind=radio&{unit}",
            lambda c: read.device_list(
                c, kind="radio", status=None, units=w.units, limit=100, offset=0
            ),
        ),
        (
            "device",
            f"/api/v1/devices/{w.camera}",
            lambda c: read.device_detail(c, w.camera, None),
        ),
        (
            "stats hour x 24",
            shape("hour", "today"),
            stats(today, today + timedelta(days=1), "hour"),
        ),
        (
            "stats hour x 24, unit",
            shape("hour", "today", unit),
            stats(today, today + timedelta(days=1), "hour", units=w.units),
        ),
        (
            "stats day x 30",
            shape("day", "30 days to tomorrow"),
            stats(month_ago, today + timedelta(days=1), "day"),
        ),
        (
            "stats day x 30, agency",
            shape("day", "30 days to tomorrow", agency),
            stats(month_ago, today + timedelta(days=1), "day", agency=w.agency),
        ),
        (
            "stats day x 30, agency+unit",
            shape("day", "30 days to tomorrow", agency, unit),
            stats(month_ago, today + timedelta(days=1), "day", agency=w.agency, units=w.units),
        ),
        (
            "stats month x 12",
            shape("month", "this year"),
            stats(year, year.replace(year=year.year + 1), "month"),
        ),
        (
            "stats month x 12, unit",
            shape("month", "this year", unit),
            stats(year, year.replace(year=year.year + 1), "month", units=w.units),
        ),
        (
            "overdue",
            "/api/v1/services/overdue",
            lambda c: read.overdue_list(
                c, clock=clock, agency=None, units=None, limit=100, offset=0
            ),
        ),
        ("kpis", "/api/v1/kpis", lambda c: read.kpi_list(c, clock=clock)),
        (
            "kpi history",
            f"/api/v1/kpis/{w.indicator}/history",
            lambda c: read.kpi_history(c, w.indicator),
        ),
        ("feed", "/api/v1/feed", lambda c: read.feed(c, limit=50, before=None, units=None)),
    ]


async def time_queries(
    database_url: str, rounds: int, clock: datetime, *, camera: str, indicator: str
) -> list[QueryTiming]:
    """Each query `rounds` times (after `WARMUP` untimed runs), as the HTTP handlers run
    them: a pooled connection, a read-only REPEATABLE READ transaction, the answer encoded
    as JSON. The baseline is ``SELECT 1`` in the same transaction."""
    pool = await asyncpg.create_pool(
        **Database.parse(database_url).asyncpg_args(), min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn:
            bench = await workbench(conn, clock, camera, indicator)
        calls: list[tuple[str, str, Call]] = [
            ("baseline: SELECT 1", "(round trip)", lambda c: c.fetchval("SELECT 1")),
            *leader_queries(bench),
        ]
        out = []
        progress = Progress(
            len(calls) * rounds, sys.stderr, label="  timing queries", unit="queries"
        )
        done = 0
        for name, what, call in calls:
            timings = []
            size = 0
            for i in range(WARMUP + rounds):
                started = time.perf_counter()
                async with (
                    pool.acquire() as conn,
                    conn.transaction(isolation="repeatable_read", readonly=True),
                ):
                    answer = await call(conn)
                size = len(orjson.dumps(answer))
                elapsed = (time.perf_counter() - started) * 1000
                if i >= WARMUP:
                    timings.append(elapsed)
                    done += 1
                    progress.show(done)
            out.append(
                QueryTiming(
                    name,
                    what,
                    rounds,
                    percentile(timings, 50),
                    percentile(timings, 90),
                    percentile(timings, 99),
                    max(timings),
                    size,
                )
            )
        progress.show(done, final=True)
        return out
    finally:
        await pool.close()
