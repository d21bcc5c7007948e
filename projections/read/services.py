"""Public services: dossier statistics per bucket (from the hourly, daily and monthly
counters) and the overdue dossiers."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from ops_center.province.calendar import Bucket, buckets, iso
from projections import services
from projections.projection import Connection
from projections.read.common import Query, positions, rate

# -- services -----------------------------------------------------------------------------
#
# Sums of the counters of `projections.services` over intervals of time, for a group of
# dossiers (an agency, units, both or all). An interval is cut into whole months, days and
# hours (as far as the group's level keeps that grain: `services.LEVELS`), summed from the
# counter tables, and pieces shorter than the finest grain, read from ``rm_dossiers``.


@dataclass(frozen=True, slots=True)
class ServiceGroup:
    """Which dossiers: `agency` (None: all) and `units` (None: all), and the counter rows
    that hold them."""

    agency: str | None
    units: tuple[str, ...] | None

    @property
    def level(self) -> str:
        if self.units is None:
            return "total" if self.agency is None else "agency"
        return "unit" if self.agency is None else "both"


async def service_group(
    conn: Connection, agency: str | None, units: Collection[str] | None
) -> ServiceGroup:
    """The group of `agency` and `units`; units that include every unit that ever had a
    dossier select all dossiers (so the province-wide counters answer)."""
    if units is not None and len(units) > 1 and set(await units_present(conn)) <= set(units):
        units = None
    return ServiceGroup(agency, None if units is None else tuple(sorted(units)))


# The units with dossiers: one index probe per unit (a loose scan of the monthly counters).
_UNITS_PRESENT: Final = f"""
WITH RECURSIVE u(unit) AS (
    SELECT min(unit) FROM {services.GRAINS["month"]} WHERE agency = '{services.ALL}'
    UNION ALL
    SELECT (SELECT min(unit) FROM {services.GRAINS["month"]}
            WHERE agency = '{services.ALL}' AND unit > u.unit)
    FROM u WHERE u.unit IS NOT NULL
)
SELECT unit FROM u
"""

Interval = tuple[datetime | None, datetime]
_GRAIN_ORDER: Final = ("month", "day", "hour")


def pieces(
    start: datetime | None, end: datetime, grains: Collection[str]
) -> list[tuple[str | None, datetime | None, datetime]]:
    """``[start, end)`` (start None: from the beginning of time) as whole buckets of the
    given grains, coarsest first, and what is left shorter than the finest (grain None)."""
    out: list[tuple[str | None, datetime | None, datetime]] = []
    order = [g for g in _GRAIN_ORDER if g in grains]

    def cut(a: datetime | None, b: datetime, level: int) -> None:
        if a is not None and a >= b:
            return
        if level == len(order):
            out.append((None, a, b))
            return
        grain = order[level]
        low = None
        if a is not None:
            low = services.grain_start(a, grain)
            if low < a:
                low = services.grain_next(low, grain)
        high = services.grain_start(b, grain)
        if low is not None and low >= high:
            cut(a, b, level + 1)
            return
        if low is not None:
            cut(a, low, level + 1)
        out.append((grain, low, high))
        cut(high, b, level + 1)

    cut(start, end, 0)
    return out


async def service_sums(
    conn: Connection, group: ServiceGroup, intervals: Sequence[Interval]
) -> list[list[int]]:
    """The sum of every counter (`services.COUNTERS`) over each interval, for the group."""
    totals = [[0] * len(services.COUNTERS) for _ in intervals]
    counted: dict[str, list[tuple[int, datetime | None, datetime]]] = {}
    raw: list[tuple[int, datetime, datetime]] = []
    for k, (start, end) in enumerate(intervals):
        for grain, low, high in pieces(start, end, services.LEVELS[group.level]):
            if grain is not None:
                counted.setdefault(grain, []).append((k, low, high))
            else:
                assert low is not None  # months are counted at every level
                raw.append((k, low, high))
    if counted:
        await _add_counted(conn, group, counted, totals)
    if raw:
        await _add_raw(conn, group, raw, totals)
    return totals


async def _add_counted(
    conn: Connection,
    group: ServiceGroup,
    counted: dict[str, list[tuple[int, datetime | None, datetime]]],
    totals: list[list[int]],
) -> None:
    query = Query(
        services.ALL if group.agency is None else group.agency,
        [services.ALL] if group.units is None else list(group.units),
    )
    sums = ", ".join(f"sum({c})" for c in services.COUNTERS)
    selects = []
    for grain, spans in counted.items():
        lows = [low for _, low, _ in spans if low is not None]
        since = "" if len(lows) < len(spans) else f"AND start >= {query.arg(min(lows))}"
        until = query.arg(max(high for _, _, high in spans))
        selects.append(
            f"(SELECT '{grain}' AS grain, start, {sums} FROM {services.GRAINS[grain]} "
            f"WHERE agency = $1 AND unit = ANY($2::text[]) {since} AND start < {until} "
            "GROUP BY start)"
        )
    rows = await conn.fetch(" UNION ALL ".join(selects), *query.args)
    by_grain: dict[str, list[Any]] = {}
    for row in rows:
        by_grain.setdefault(row[0], []).append(row)
    for grain, spans in counted.items():
        found = sorted(by_grain.get(grain, []), key=lambda r: r[1])
        starts = [r[1] for r in found]
        for k, low, high in spans:
            first = 0 if low is None else bisect_left(starts, low)
            for row in found[first : bisect_left(starts, high)]:
                total = totals[k]
                for i in range(len(total)):
                    total[i] += row[2 + i]


# Counter changes of dossiers at instants within windows [lo, hi), read from the dossiers:
# the same sums as the counters', by the rules of `projections.services` (a dossier enters
# its class at reception, moves just after due_at - 24 h and just after due_at while in
# progress, and leaves at its closing from the class it was in just before). Each part
# reads one index range per unit ($4, all of the windows' span $5-$6, shifted for due
# times) and assigns rows to the windows ($1-$3).
_WINDOWS: Final = """
WITH w AS MATERIALIZED (
    SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::timestamptz[]) AS w(k, lo, hi)
)
SELECT k, sum(received), sum(online), sum(on_time), sum(late), sum(withdrawn), sum(not_due),
    sum(due_soon), sum(overdue), sum(open_due)
FROM (
    SELECT w.k, 1 AS received, (d.channel = 'online')::int AS online, 0 AS on_time,
        0 AS late, 0 AS withdrawn,
        (d.entered AND d.due_at >= d.received_at + interval '24 hours')::int AS not_due,
        (d.entered AND d.due_at >= d.received_at
         AND d.due_at < d.received_at + interval '24 hours')::int AS due_soon,
        (d.entered AND d.due_at < d.received_at)::int AS overdue, 0 AS open_due
    FROM (
        SELECT received_at, channel, due_at,
            closed_at IS NULL OR closed_at > received_at AS entered
        FROM rm_dossiers WHERE unit = ANY($4::text[]) {agency}
            AND received_at >= $5 AND received_at < $6
    ) d JOIN w ON d.received_at >= w.lo AND d.received_at < w.hi
  UNION ALL
    SELECT w.k, 0, 0, (d.state = 'completed' AND d.on_time IS TRUE)::int,
        (d.state = 'completed' AND d.on_time IS FALSE)::int, (d.state = 'withdrawn')::int,
        -(d.left_ AND d.due_at >= d.m + interval '24 hours')::int,
        -(d.left_ AND d.due_at >= d.m AND d.due_at < d.m + interval '24 hours')::int,
        -(d.left_ AND d.due_at < d.m)::int, 0
    FROM (
        SELECT closed_at, state, on_time, due_at, closed_at > received_at AS left_,
            closed_at - interval '1 microsecond' AS m
        FROM rm_dossiers WHERE unit = ANY($4::text[]) {agency}
            AND closed_at >= $5 AND closed_at < $6
    ) d JOIN w ON d.closed_at >= w.lo AND d.closed_at < w.hi
  UNION ALL
    SELECT w.k, 0, 0, 0, 0, 0, -1, 1, 0, 0
    FROM (
        SELECT due_at - interval '24 hours' + interval '1 microsecond' AS t
        FROM rm_dossiers WHERE unit = ANY($4::text[]) {agency}
            AND due_at >= $5 + interval '24 hours' - interval '1 microsecond'
            AND due_at < $6 + interval '24 hours' - interval '1 microsecond'
            AND received_at < due_at - interval '24 hours' + interval '1 microsecond'
            AND (closed_at IS NULL
                 OR closed_at > due_at - interval '24 hours' + interval '1 microsecond')
    ) d JOIN w ON d.t >= w.lo AND d.t < w.hi
  UNION ALL
    SELECT w.k, 0, 0, 0, 0, 0, 0, -1, 1, 0
    FROM (
        SELECT due_at + interval '1 microsecond' AS t
        FROM rm_dossiers WHERE unit = ANY($4::text[]) {agency}
            AND due_at >= $5 - interval '1 microsecond'
            AND due_at < $6 - interval '1 microsecond'
            AND received_at < due_at + interval '1 microsecond'
            AND (closed_at IS NULL OR closed_at > due_at + interval '1 microsecond')
    ) d JOIN w ON d.t >= w.lo AND d.t < w.hi
  UNION ALL
    SELECT w.k, 0, 0, 0, 0, 0, 0, 0, 0, 1
    FROM (
        SELECT due_at FROM rm_dossiers WHERE unit = ANY($4::text[]) {agency}
            AND due_at >= $5 AND due_at < $6 AND state = 'open'
    ) d JOIN w ON d.due_at >= w.lo AND d.due_at < w.hi
) x
GROUP BY k
"""
_AGENCY: Final = "AND agency = $7"


async def units_present(conn: Connection) -> list[str]:
    """Every unit that has dossiers (the dossiers' time indexes lead with the unit)."""
    return [
        row[0]
        for row in await conn.fetch(_UNITS_PRESENT)
        if row[0] is not None and row[0] != services.ALL
    ]


async def _add_raw(
    conn: Connection,
    group: ServiceGroup,
    windows: list[tuple[int, datetime, datetime]],
    totals: list[list[int]],
) -> None:
    units = list(group.units) if group.units is not None else await units_present(conn)
    args: list[Any] = [
        list(range(len(windows))),
        [low for _, low, _ in windows],
        [high for _, _, high in windows],
        units,
        min(low for _, low, _ in windows),
        max(high for _, _, high in windows),
    ]
    agency = ""
    if group.agency is not None:
        agency = _AGENCY
        args.append(group.agency)
    for row in await conn.fetch(_WINDOWS.format(agency=agency), *args):
        total = totals[windows[row[0]][0]]
        for i in range(len(total)):
            total[i] += row[1 + i]


async def service_stats(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    clock: datetime,
    agency: str | None = None,
    units: Collection[str] | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/services/stats``: per local bucket of ``[start, end)``.

    Received and completed count by the CloudEvent times of reception and closing. In
    progress is counted as of the bucket's end or `clock`, whichever is earlier (null for
    buckets that have not begun): not yet due, due within 24 h, overdue. Each is a sum
    of counters (`service_sums`): the classes at the end of a bucket are the changes
    before the first bucket plus those of every bucket up to its end.
    """
    position = (await positions(conn)).get("services", 0)
    group = await service_group(conn, agency, units)
    spans = buckets(start, end, bucket)
    # in progress at min(stop - 1 us, clock): the changes before min(stop, clock + 1 us)
    now = clock + timedelta(microseconds=1)
    intervals: list[Interval] = [(None, start)]
    parts: list[list[int]] = []  # per bucket, its intervals (two when cut by the clock)
    for begin, stop in spans:
        if begin < now < stop:
            parts.append([len(intervals), len(intervals) + 1])
            intervals += [(begin, now), (now, stop)]
        else:
            parts.append([len(intervals)])
            intervals.append((begin, stop))
    sums = await service_sums(conn, group, intervals)
    running = sums[0]
    items = []
    totals = [0] * len(services.COUNTERS)
    last: dict[str, int] | None = None
    for (begin, stop), part in zip(spans, parts, strict=True):
        counts = [sum(sums[k][i] for k in part) for i in range(len(totals))]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        in_progress = None
        if begin <= clock:
            running = [a + b for a, b in zip(running, sums[part[0]], strict=True)]
            last = in_progress = {
                "not_yet_due": running[services.NOT_DUE],
                "due_within_24h": running[services.DUE_SOON],
                "overdue": running[services.OVERDUE],
            }
            if len(part) == 2:  # cut by the clock: the rest comes after it
                running = [a + b for a, b in zip(running, sums[part[1]], strict=True)]
        items.append(_bucket_json(begin, stop, counts, in_progress))
    # buckets are contiguous: the last begun one is evaluated at min(end, clock)
    return {
        "position": position,
        "from": iso(start),
        "to": iso(end),
        "bucket": bucket,
        "agency": agency,
        "items": items,
        "totals": _bucket_json(start, end, totals, last),
    }


def _bucket_json(
    begin: datetime,
    stop: datetime,
    counts: Sequence[int],
    in_progress: dict[str, int] | None,
) -> dict[str, Any]:
    on_time, late = counts[services.ON_TIME], counts[services.LATE]
    received = counts[services.RECEIVED]
    return {
        "start": iso(begin),
        "end": iso(stop),
        "received": received,
        "completed": {"on_time": on_time, "late": late, "total": on_time + late},
        "withdrawn": counts[services.WITHDRAWN],
        "in_progress": in_progress,
        "online_share": rate(counts[services.ONLINE], received),
        "on_time_rate": rate(on_time, on_time + late),
    }


async def overdue_list(
    conn: Connection,
    *,
    clock: datetime,
    agency: str | None,
    units: Collection[str] | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """``GET /api/v1/services/overdue``: open dossiers past their due time at `clock`,
    most overdue first."""
    position = (await positions(conn)).get("services", 0)
    query = Query(clock)
    query.where("state = 'open'")
    query.where("due_at < $1")
    if agency is not None:
        query.where(f"agency = {query.arg(agency)}")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    group = await service_group(conn, agency, units)
    total = (await service_sums(conn, group, [(None, clock)]))[0][services.OPEN_DUE]
    rows = await conn.fetch(
        "SELECT code, procedure_code, procedure_name, level, channel, agency, unit, received_at, "
        f"due_at, supplements FROM rm_dossiers {query.clause()} ORDER BY due_at, code "
        f"LIMIT {query.arg(limit)} OFFSET {query.arg(offset)}",
        *query.args,
    )
    items = [
        {
            "code": r["code"],
            "procedure_code": r["procedure_code"],
            "procedure_name": r["procedure_name"],
            "level": r["level"],
            "channel": r["channel"],
            "agency": r["agency"],
            "unit": r["unit"],
            "received_at": iso(r["received_at"]),
            "due_at": iso(r["due_at"]),
            "overdue_hours": round((clock - r["due_at"]).total_seconds() / 3600, 2),
            "supplements": r["supplements"],
        }
        for r in rows
    ]
    return {
        "position": position,
        "as_of": iso(clock),
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": items,
    }
