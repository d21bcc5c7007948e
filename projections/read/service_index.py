"""The Decision 766 service index, live: ``GET /api/v1/services/index`` and its ranking.

The index is the center's own estimate from its events, not the official score (the
reading of the decision is in docs/READ_MODELS.md, *service_index*). For the dossiers of
a period (a local month ``2026-11``, quarter ``2026-Q4`` or year ``2026``):

* ``progress`` (20): (completed on time + in progress and not overdue) / (completed + in
  progress); in progress: received before the period's end and not closed before it (by
  the events recorded), overdue when due before the period's end or the clock, whichever
  is earlier (a period that has not begun has none);
* ``online`` (22): 11 x filed online / received for procedures that can be filed online,
  plus 11 x completed with the fee paid online / completed with a fee;
* ``digitisation`` (22): 11 x digitised at intake / received, plus 11 x completed with an
  electronic result / completed;
* ``satisfaction`` (18): (very satisfied + satisfied) / rated;
* ``transparency`` (18): status events that reached the center within 24 h of their
  CloudEvent time / status events (receptions, supplement requests, completions,
  withdrawals).

A part with no denominator scores its maximum and says ``no_data``. Facts are counted in
the period by their CloudEvent time.

**Now**: the period's sums come from the monthly counters of `projections.service_index`
(a few rows per group); the dossiers in progress are a prefix sum of the same counters up
to the period's end, and so are the overdue ones of a period that has ended; for the
current period the dossiers overdue now are read from the open dossiers past due (an
index range). **As of** a moment
(`as_of`), every figure is read from the dossiers' rows with the positions of their
events at or before the moment's position (a scan of the period's dossiers: slower, and
growing with the period's size; docs/READ_MODELS.md gives figures).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any, Final, Literal

from ops_center.province.calendar import TZ, iso
from projections import service_index as idx
from projections.projection import Connection
from projections.read.common import Query, position_at, positions

By = Literal["agency", "unit"]
BY: Final[tuple[By, ...]] = ("agency", "unit")

_PERIOD: Final = re.compile(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?")
_US: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period of the index: ``[start, end)`` in local time."""

    code: str
    start: datetime
    end: datetime


def parse_period(text: str) -> Period:
    """``2026-11`` (a month), ``2026-Q4`` (a quarter) or ``2026`` (a year); ValueError
    otherwise."""
    match = _PERIOD.fullmatch(text)
    if match is None or not 1970 <= int(match.group(1)) <= 9998:
        raise ValueError("must be a month (2026-11), a quarter (2026-Q4) or a year (2026)")
    year = int(match.group(1))
    month, quarter = match.group(2), match.group(3)
    if month is not None:
        first, months = int(month), 1
    elif quarter is not None:
        first, months = (int(quarter) - 1) * 3 + 1, 3
    else:
        first, months = 1, 12
    start = date(year, first, 1)
    last = first + months
    end = date(year + 1, 1, 1) if last > 12 else date(year, last, 1)
    return Period(text, datetime.combine(start, time(), TZ), datetime.combine(end, time(), TZ))


def month_of(clock: datetime) -> Period:
    """The local month containing `clock`, as a period."""
    return parse_period(clock.astimezone(TZ).strftime("%Y-%m"))


@dataclass(slots=True)
class Tally:
    """The numerators and denominators of the index for one group of dossiers."""

    received: int = 0
    eligible: int = 0
    filed: int = 0
    digitised: int = 0
    completed: int = 0
    on_time: int = 0
    fee: int = 0
    paid: int = 0
    e_result: int = 0
    rated: int = 0
    satisfied: int = 0
    status: int = 0
    timely: int = 0
    in_progress: int = 0
    overdue: int = 0

    def add(self, **counts: int) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + int(n or 0))

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, slots=True)
class Part:
    """A scored part of a group: its maximum and how its fraction is counted."""

    group: str
    name: str
    max: int

    def fraction(self, t: Tally) -> tuple[int, int]:
        """(numerator, denominator) of the part for a tally."""
        match self.name:
            case "on_time":
                return t.on_time + t.in_progress - t.overdue, t.completed + t.in_progress
            case "online_share":
                return t.filed, t.eligible
            case "online_payment":
                return t.paid, t.fee
            case "digitised_intake":
                return t.digitised, t.received
            case "e_result":
                return t.e_result, t.completed
            case "satisfied":
                return t.satisfied, t.rated
            case "timely":
                return t.timely, t.status
        raise LookupError(self.name)  # pragma: no cover - PARTS lists every name


#: The groups of the index with their maximum, in the answer's order.
GROUPS: Final = {
    "progress": 20,
    "online": 22,
    "digitisation": 22,
    "satisfaction": 18,
    "transparency": 18,
}
#: Every part, by group, in the answer's order.
PARTS: Final = (
    Part("progress", "on_time", 20),
    Part("online", "online_share", 11),
    Part("online", "online_payment", 11),
    Part("digitisation", "digitised_intake", 11),
    Part("digitisation", "e_result", 11),
    Part("satisfaction", "satisfied", 18),
    Part("transparency", "timely", 18),
)


def scores(tally: Tally) -> tuple[float, dict[str, Any]]:
    """The total and the groups of the answer (rounded to two decimals only here)."""
    total = 0.0
    groups: dict[str, Any] = {}
    for group, maximum in GROUPS.items():
        parts = []
        score = 0.0
        for part in PARTS:
            if part.group != group:
                continue
            numerator, denominator = part.fraction(tally)
            value = float(part.max) if denominator == 0 else part.max * numerator / denominator
            score += value
            parts.append(
                {
                    "name": part.name,
                    "score": round(value, 2),
                    "max": part.max,
                    "numerator": numerator,
                    "denominator": denominator,
                    "no_data": denominator == 0,
                }
            )
        total += score
        groups[group] = {
            "score": round(score, 2),
            "max": maximum,
            "no_data": all(p["no_data"] for p in parts),
            "parts": parts,
        }
    return round(total, 2), groups


def counted_at(period: Period, clock: datetime) -> datetime:
    """When the dossiers in progress are judged overdue or not: the period's last instant,
    or the clock if earlier (the dossiers in progress are those received before the
    period's end and not closed before it, by the events recorded)."""
    return min(period.end - _US, clock)


# -- tallies ------------------------------------------------------------------------------

Key = str | None


def _group_sql(by: By | None) -> str:
    return "NULL::text" if by is None else by


def _row_filters(
    query: Query, agency: str | None, units: Collection[str] | None, alias: str = ""
) -> None:
    if agency is not None:
        query.where(f"{alias}agency = {query.arg(agency)}")
    if units is not None:
        query.where(f"{alias}unit = ANY({query.arg(list(units))}::text[])")


def _counter_filters(
    query: Query, by: By | None, agency: str | None, units: Collection[str] | None
) -> None:
    if by == "agency":
        query.where(f"agency <> '{idx.ALL}'")
    elif agency is not None:
        query.where(f"agency = {query.arg(agency)}")
    else:
        query.where(f"agency = '{idx.ALL}'")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    elif by == "unit":
        query.where(f"unit <> '{idx.ALL}'")
    else:
        query.where(f"unit = '{idx.ALL}'")


async def tallies(
    conn: Connection,
    *,
    period: Period,
    clock: datetime,
    position: int | None,
    by: By | None = None,
    agency: str | None = None,
    units: Collection[str] | None = None,
) -> dict[Key, Tally]:
    """The tally of every group (one, None, when `by` is None) of the period's dossiers:
    now (`position` None: from the counters) or as the log stood at `position`, with the
    dossiers in progress counted at `counted_at(period, clock)`."""
    if position is None:
        return await _counted(conn, period, clock, by, agency, units)
    return await _historic(conn, period, clock, position, by, agency, units)


async def _counted(
    conn: Connection,
    period: Period,
    clock: datetime,
    by: By | None,
    agency: str | None,
    units: Collection[str] | None,
) -> dict[Key, Tally]:
    at = counted_at(period, clock)
    ended = period.end <= clock
    query = Query(period.start, period.end)
    _counter_filters(query, by, agency, units)
    in_period = "FILTER (WHERE month >= $1)"
    sums = ", ".join(f"sum({c}) {in_period}" for c in idx.COUNTERS[: idx.IN_PROGRESS])
    rows = await conn.fetch(
        f"SELECT {_group_sql(by)} AS g, {sums}, sum(in_progress_change), sum(overdue_change) "
        f"FROM rm_index_months {query.clause()} AND month < $2 GROUP BY 1",
        *query.args,
    )
    out: dict[Key, Tally] = {}
    for row in rows:
        t = out[row[0]] = Tally()
        t.add(
            received=row[1],
            eligible=row[2],
            filed=row[3],
            digitised=row[4],
            completed=row[5],
            on_time=row[6],
            fee=row[7],
            paid=row[8],
            e_result=row[9],
            rated=row[10],
            satisfied=row[11],
            status=row[12],
            timely=row[13],
        )
        if at >= period.start:
            t.add(in_progress=row[14], overdue=row[15] if ended else 0)
    if at >= period.start and not ended:
        await _overdue_now(conn, period, at, by, agency, units, out)
    return out


async def _overdue_now(
    conn: Connection,
    period: Period,
    at: datetime,
    by: By | None,
    agency: str | None,
    units: Collection[str] | None,
    out: dict[Key, Tally],
) -> None:
    """Of the dossiers in progress in a period that has not ended, those due before `at`:
    the open dossiers past due (an index range), and those whose closing is dated after
    the period's end."""
    group = _group_sql(by)
    query = Query(at, period.end)
    _row_filters(query, agency, units)
    extra = query.clause("AND")
    for row in await conn.fetch(
        f"SELECT g, count(*) FROM ("
        f"SELECT {group} AS g FROM rm_index_dossiers WHERE state = 'open' AND due_at < $1 "
        f"AND received_at < $2 {extra} "
        f"UNION ALL SELECT {group} FROM rm_index_dossiers WHERE closed_at >= $2 "
        f"AND due_at < $1 AND received_at < $2 {extra}) x GROUP BY 1",
        *query.args,
    ):
        out.setdefault(row[0], Tally()).add(overdue=row[1])


async def _historic(
    conn: Connection,
    period: Period,
    clock: datetime,
    position: int,
    by: By | None,
    agency: str | None,
    units: Collection[str] | None,
) -> dict[Key, Tally]:
    at = counted_at(period, clock)
    group = _group_sql(by)
    out: dict[Key, Tally] = {}

    def tally(key: Key) -> Tally:
        return out.setdefault(key, Tally())

    query = Query(period.start, period.end, position)
    _row_filters(query, agency, units)
    extra = query.clause("AND")
    online = ", ".join(f"'{level}'" for level in idx.ONLINE_LEVELS)
    for row in await conn.fetch(
        f"SELECT {group}, count(*), count(*) FILTER (WHERE level IN ({online})), "
        f"count(*) FILTER (WHERE level IN ({online}) AND channel = 'online'), "
        "count(*) FILTER (WHERE digitised), count(*) FILTER (WHERE received_timely) "
        "FROM rm_index_dossiers WHERE received_at >= $1 AND received_at < $2 "
        f"AND received_position <= $3 {extra} GROUP BY 1",
        *query.args,
    ):
        tally(row[0]).add(
            received=row[1],
            eligible=row[2],
            filed=row[3],
            digitised=row[4],
            status=row[1],
            timely=row[5],
        )
    for row in await conn.fetch(
        f"SELECT {group}, count(*) FILTER (WHERE state = 'completed'), "
        "count(*) FILTER (WHERE state = 'completed' AND on_time), "
        "count(*) FILTER (WHERE state = 'completed' AND fee), "
        "count(*) FILTER (WHERE state = 'completed' AND fee AND paid_online), "
        "count(*) FILTER (WHERE state = 'completed' AND e_result), count(*), "
        "count(*) FILTER (WHERE closed_timely) "
        "FROM rm_index_dossiers WHERE closed_at >= $1 AND closed_at < $2 "
        f"AND closed_position <= $3 {extra} GROUP BY 1",
        *query.args,
    ):
        tally(row[0]).add(
            completed=row[1],
            on_time=row[2],
            fee=row[3],
            paid=row[4],
            e_result=row[5],
            status=row[6],
            timely=row[7],
        )
    satisfied = ", ".join(f"'{r}'" for r in idx.SATISFIED)
    for row in await conn.fetch(
        f"SELECT {group}, count(*), count(*) FILTER (WHERE rating IN ({satisfied})) "
        "FROM rm_index_dossiers WHERE rated_at >= $1 AND rated_at < $2 "
        f"AND rated_position <= $3 {extra} GROUP BY 1",
        *query.args,
    ):
        tally(row[0]).add(rated=row[1], satisfied=row[2])
    joined = Query(period.start, period.end, position)
    _row_filters(joined, agency, units, "d.")
    for row in await conn.fetch(
        f"SELECT {'NULL::text' if by is None else 'd.' + by}, count(*), "
        "count(*) FILTER (WHERE s.timely) FROM rm_index_supplements s "
        "JOIN rm_index_dossiers d USING (originator_id) "
        f"WHERE s.at >= $1 AND s.at < $2 AND s.position <= $3 {joined.clause('AND')} "
        "GROUP BY 1",
        *joined.args,
    ):
        tally(row[0]).add(status=row[1], timely=row[2])
    if at >= period.start:
        progress = Query(period.end, position, at)
        _row_filters(progress, agency, units)
        for row in await conn.fetch(
            f"SELECT g, count(*), count(*) FILTER (WHERE due_at < $3) FROM ("
            f"{in_progress_sql(group, progress.clause('AND'))}) x GROUP BY 1",
            *progress.args,
        ):
            tally(row[0]).add(in_progress=row[1], overdue=row[2])
    return out


def in_progress_sql(columns: str, extra: str, end: str = "$1", position: str = "$2") -> str:
    """The dossiers in progress in a period ending at `end`, as the log stood at
    `position` (placeholders): received before the end by an event up to the position,
    and not closed before the end by one. Three disjoint parts, each on an index (open
    now; closed after the position; closed at or after the end). `columns` is what each
    row yields besides ``due_at``, as ``g``."""
    base = f"SELECT {columns} AS g, due_at FROM rm_index_dossiers WHERE"
    received = f"received_position <= {position} AND received_at < {end} {extra}"
    return (
        f"{base} state = 'open' AND {received} "
        f"UNION ALL {base} state <> 'open' AND closed_position > {position} AND {received} "
        f"UNION ALL {base} state <> 'open' AND closed_position <= {position} "
        f"AND closed_at >= {end} AND {received}"
    )


# -- the answers --------------------------------------------------------------------------


async def index_position(conn: Connection, as_of: datetime | None) -> tuple[int, int | None]:
    """The position of an answer and the historic position to read at (None: now)."""
    position = (await positions(conn)).get(idx.NAME, 0)
    if as_of is None:
        return position, None
    historic = await position_at(conn, as_of, position)
    return historic, historic


async def service_index(
    conn: Connection,
    *,
    period: Period,
    clock: datetime,
    as_of: datetime | None = None,
    agency: str | None = None,
    unit: str | None = None,
    units: Collection[str] | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/services/index``: the index of one group of dossiers (an agency,
    the units `units` that `unit` names, both, or the province)."""
    position, historic = await index_position(conn, as_of)
    if as_of is not None:
        clock = as_of
    found = await tallies(
        conn, period=period, clock=clock, position=historic, agency=agency, units=units
    )
    total, groups = scores(found.get(None, Tally()))
    return {
        "period": period.code,
        "position": position,
        "as_of": iso(as_of),
        "agency": agency,
        "unit": unit,
        "total": total,
        "groups": groups,
    }


async def index_ranking(
    conn: Connection,
    *,
    period: Period,
    by: By,
    clock: datetime,
    names: Mapping[str, str],
    as_of: datetime | None = None,
    unit: str | None = None,
    units: Collection[str] | None = None,
    within: Collection[str] | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/services/index/ranking``: every agency (or unit of `within`, the
    communes) with dossiers in the period, best total first (ties by code)."""
    position, historic = await index_position(conn, as_of)
    if as_of is not None:
        clock = as_of
    found = await tallies(conn, period=period, clock=clock, position=historic, by=by, units=units)
    items: list[dict[str, Any]] = []
    for code, tally in found.items():
        if code is None or not tally.any() or (within is not None and code not in within):
            continue
        total, groups = scores(tally)
        items.append(
            {"code": code, "name": names.get(code, code), "total": total, "groups": groups}
        )
    items.sort(key=lambda item: (-item["total"], item["code"]))
    return {
        "period": period.code,
        "by": by,
        "position": position,
        "as_of": iso(as_of),
        "unit": unit,
        "items": items,
    }
