"""Citizens' field reports: the list, one report with its history, the statistics per
day or month, the open reports of the live topic and the overview's figures.

A report's ``state`` in answers is its stored state, except that an assigned report whose
due time has passed at the clock is ``overdue``. Lists are newest first (``received_at``,
then ``code``, descending), paged by a cursor (`encode_cursor`): the ``next`` of a page is
passed back as ``cursor`` and continues after its last item.

**Open at a moment m** (business time, the statistics): received at or before m and not
resolved or rejected at or before m. Its class at m follows the assignment in effect at m
(the latest by CloudEvent time up to m): *overdue* when its due time is before m, *due
within 24 h* when ``m <= due_at < m + 24 h``, *not yet due* otherwise, including a report
not assigned yet. **Open at a position P** (`as_of`): received by P and not closed by P;
its due time is that of the assignment in effect among those up to P.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from ops_center.domain.report import ASSIGNED, NEW, STATES
from ops_center.province.calendar import Bucket, buckets, iso, local_day
from projections.projection import Connection
from projections.read.common import Query, positions, rate
from projections.read.places import BBox, Places, placed_within

#: ``state`` filter values: the stored states, ``overdue`` (assigned and past due),
#: ``open`` (new or assigned, overdue included). ``assigned`` means not yet overdue.
STATE_FILTERS: Final = (NEW, ASSIGNED, "overdue", *STATES[2:], "open")
#: The window of the overview's satisfaction rate: ratings of the last 30 days.
SATISFACTION_WINDOW: Final = timedelta(days=30)

_FIELDS: Final = (
    "originator_id, code, category, title, unit, agency, state, channel, received_at, due_at, "
    "closed_at, on_time, rating, lat, lon"
)
_DETAIL_FIELDS: Final = (
    f"{_FIELDS}, description, photo_url, result, reject_reason, duplicate_of, rated_at, assignments"
)


def _position(known: dict[str, int]) -> int:
    return known.get("reports", 0)


def state_at(state: str, due_at: datetime | None, clock: datetime) -> str:
    """The state shown: ``overdue`` for an assigned report past its due time."""
    if state == ASSIGNED and due_at is not None and due_at < clock:
        return "overdue"
    return state


def report_json(row: Any, clock: datetime, places: Places) -> dict[str, Any]:
    lat, lon, located_by = places.locate(row["unit"], row["lat"], row["lon"])
    resolved = row["state"] == "resolved"
    return {
        "code": row["code"],
        "category": row["category"],
        "title": row["title"],
        "unit": row["unit"],
        "agency": row["agency"],
        "state": state_at(row["state"], row["due_at"], clock),
        "channel": row["channel"],
        "received_at": iso(row["received_at"]),
        "due_at": iso(row["due_at"]),
        "resolved_at": iso(row["closed_at"]) if resolved else None,
        "on_time": row["on_time"] if resolved else None,
        "rating": row["rating"],
        "lat": lat,
        "lon": lon,
        "located_by": located_by,
    }


def encode_cursor(received_at: datetime, code: str) -> str:
    """The cursor continuing a list after the report received at `received_at` with `code`."""
    raw = orjson.dumps([received_at.isoformat(), code])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor continues after; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, code = orjson.loads(raw)
        moment = datetime.fromisoformat(at)
    except Exception as exc:  # any malformed cursor
        raise ValueError("is not a cursor given as `next` by this list") from exc
    if moment.tzinfo is None or not isinstance(code, str):
        raise ValueError("is not a cursor given as `next` by this list")
    return moment, code


def _filters(
    query: Query,
    *,
    clock: datetime,
    state: str | None,
    category: str | None,
    units: Collection[str] | None,
    agency: str | None,
    bbox: BBox | None,
    places: Places,
) -> None:
    if state == "open":
        query.where("state IN ('new', 'assigned')")
    elif state == "overdue":
        query.where(f"state = 'assigned' AND due_at < {query.arg(clock)}")
    elif state == ASSIGNED:
        query.where(f"state = 'assigned' AND due_at >= {query.arg(clock)}")
    elif state is not None:
        query.where(f"state = {query.arg(state)}")
    if category is not None:
        query.where(f"category = {query.arg(category)}")
    if units is not None:
        query.where(f"unit = ANY({query.arg(sorted(units))}::text[])")
    if agency is not None:
        query.where(f"agency = {query.arg(agency)}")
    if bbox is not None:
        placed_within(query, bbox, places)


async def report_list(
    conn: Connection,
    *,
    clock: datetime,
    places: Places,
    state: str | None = None,
    category: str | None = None,
    units: Collection[str] | None = None,
    agency: str | None = None,
    bbox: BBox | None = None,
    limit: int,
    cursor: tuple[datetime, str] | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/reports``: reports newest first, a page at a time (`cursor`: where
    the previous page ended, from its ``next``)."""
    position = _position(await positions(conn))
    query = Query()
    _filters(
        query,
        clock=clock,
        state=state,
        category=category,
        units=units,
        agency=agency,
        bbox=bbox,
        places=places,
    )
    if cursor is not None:
        query.where(f"(received_at, code) < ({query.arg(cursor[0])}, {query.arg(cursor[1])})")
    rows = await conn.fetch(
        f"SELECT {_FIELDS} FROM rm_reports {query.clause()} "
        f"ORDER BY received_at DESC, code DESC LIMIT {query.arg(limit + 1)}",
        *query.args,
    )
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        following = encode_cursor(rows[-1]["received_at"], rows[-1]["code"])
    return {
        "position": position,
        "items": [report_json(row, clock, places) for row in rows],
        "next": following,
    }


async def open_reports(
    conn: Connection, *, clock: datetime, places: Places, units: Collection[str] | None
) -> dict[str, Any]:
    """Every open report (new, assigned, overdue) of the scope, newest first, as
    ``{"position", "items"}``: the ``reports`` topic's state (every page of
    ``GET /api/v1/reports?state=open&unit=``)."""
    position = _position(await positions(conn))
    query = Query()
    _filters(
        query,
        clock=clock,
        state="open",
        category=None,
        units=units,
        agency=None,
        bbox=None,
        places=places,
    )
    rows = await conn.fetch(
        f"SELECT {_FIELDS} FROM rm_reports {query.clause()} ORDER BY received_at DESC, code DESC",
        *query.args,
    )
    return {"position": position, "items": [report_json(row, clock, places) for row in rows]}


async def report_detail(
    conn: Connection, code: str, *, clock: datetime, places: Places
) -> dict[str, Any] | None:
    """``GET /api/v1/reports/{code}``: the report, its details and every event of it
    (oldest first); None when no report has this code."""
    position = _position(await positions(conn))
    row = await conn.fetchrow(f"SELECT {_DETAIL_FIELDS} FROM rm_reports WHERE code = $1", code)
    if row is None:
        return None
    history = await conn.fetch(
        "SELECT position, event, type, time, recorded_at, source, event_id, key, data::text "
        "FROM rm_report_history WHERE originator_id = $1 ORDER BY position",
        row["originator_id"],
    )
    rejection = None
    if row["state"] == "rejected":
        rejection = {
            "reason": row["reject_reason"],
            "duplicate_of": row["duplicate_of"],
            "at": iso(row["closed_at"]),
        }
    return {
        "position": position,
        **report_json(row, clock, places),
        "description": row["description"],
        "photo_url": row["photo_url"],
        "result": row["result"],
        "rejection": rejection,
        "rated_at": iso(row["rated_at"]),
        "assignments": row["assignments"],
        "history": [
            {
                "position": h["position"],
                "event": h["event"],
                "type": h["type"],
                "time": iso(h["time"]),
                "recorded_at": iso(h["recorded_at"]),
                "source": h["source"],
                "id": h["event_id"],
                "key": h["key"],
                "data": orjson.loads(h["data"]),
            }
            for h in history
        ],
    }


# -- statistics ---------------------------------------------------------------------------

#: The due time in effect at a moment ``w.at`` (business time): the current assignment
#: when it is at or before the moment, else the latest earlier one (only reports assigned
#: more than once need the history).
_DUE_AT_MOMENT: Final = """CASE WHEN r.assigned_at IS NULL THEN NULL
    WHEN r.assigned_at <= w.at THEN r.due_at
    WHEN r.assignments = 1 THEN NULL
    ELSE (SELECT h.due_at FROM rm_report_history h
          WHERE h.originator_id = r.originator_id AND h.due_at IS NOT NULL AND h.time <= w.at
          ORDER BY h.time DESC, h.position DESC LIMIT 1) END"""

_STATS: Final = """
WITH w AS MATERIALIZED (
    SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
        AS w(k, lo, hi, at)
), received AS (
    SELECT w.k, count(*) AS n FROM w JOIN rm_reports r
        ON r.received_at >= w.lo AND r.received_at < w.hi {filters} GROUP BY w.k
), resolved AS (
    SELECT w.k, count(*) FILTER (WHERE r.on_time) AS on_time,
        count(*) FILTER (WHERE NOT r.on_time) AS late,
        percentile_cont(0.5) WITHIN GROUP (
            ORDER BY extract(epoch FROM r.closed_at - r.received_at)) AS median
    FROM w JOIN rm_reports r ON r.closed_at >= w.lo AND r.closed_at < w.hi
        AND r.state = 'resolved' {filters} GROUP BY w.k
), rated AS (
    SELECT w.k, count(*) AS rated, count(*) FILTER (WHERE r.rating = 'satisfied') AS satisfied
    FROM w JOIN rm_reports r ON r.rated_at >= w.lo AND r.rated_at < w.hi {filters}
    GROUP BY w.k
), opened AS (
    SELECT k, count(*) FILTER (WHERE due IS NULL OR due >= at + interval '24 hours') AS not_due,
        count(*) FILTER (WHERE due >= at AND due < at + interval '24 hours') AS due_soon,
        count(*) FILTER (WHERE due < at) AS overdue
    FROM (
        SELECT w.k, w.at, {due} AS due FROM w JOIN rm_reports r
            ON w.at IS NOT NULL AND r.open_times @> w.at {filters}
    ) o GROUP BY k
)
SELECT w.k, coalesce(received.n, 0), coalesce(resolved.on_time, 0), coalesce(resolved.late, 0),
    resolved.median, coalesce(rated.rated, 0), coalesce(rated.satisfied, 0),
    coalesce(opened.not_due, 0), coalesce(opened.due_soon, 0), coalesce(opened.overdue, 0)
FROM w LEFT JOIN received USING (k) LEFT JOIN resolved USING (k) LEFT JOIN rated USING (k)
    LEFT JOIN opened USING (k)
ORDER BY w.k
"""


def _group_filters(
    query: Query,
    category: str | None,
    units: Collection[str] | None,
    agency: str | None,
) -> str:
    parts = []
    if category is not None:
        parts.append(f"AND r.category = {query.arg(category)}")
    if units is not None:
        parts.append(f"AND r.unit = ANY({query.arg(sorted(units))}::text[])")
    if agency is not None:
        parts.append(f"AND r.agency = {query.arg(agency)}")
    return " ".join(parts)


async def report_stats(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    clock: datetime,
    category: str | None = None,
    units: Collection[str] | None = None,
    agency: str | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/reports/stats``: per local day or month of ``[start, end)``.

    Received, resolved (on time or late, and the median hours from reception to
    resolution) and rated (the satisfaction rate: satisfied / rated) count by the
    CloudEvent time of each fact in the bucket. The open counts are as of the bucket's
    end or `clock`, whichever is earlier (null for a bucket that has not begun). `agency`
    is the agency a report is assigned to now.
    """
    position = _position(await positions(conn))
    spans = buckets(start, end, bucket)
    moments: list[datetime | None] = [
        min(stop - timedelta(microseconds=1), clock) if begin <= clock else None
        for begin, stop in spans
    ]
    query = Query(
        list(range(len(spans))),
        [begin for begin, _ in spans],
        [stop for _, stop in spans],
        moments,
    )
    filters = _group_filters(query, category, units, agency)
    rows = await conn.fetch(_STATS.format(filters=filters, due=_DUE_AT_MOMENT), *query.args)
    items = []
    for (begin, stop), moment, row in zip(spans, moments, rows, strict=True):
        begun = moment is not None
        median = row[4]
        items.append(
            {
                "start": iso(begin),
                "end": iso(stop),
                "received": row[1],
                "resolved_on_time": row[2],
                "resolved_late": row[3],
                "open_not_due": row[7] if begun else None,
                "open_due_24h": row[8] if begun else None,
                "overdue": row[9] if begun else None,
                "median_hours_to_resolve": None if median is None else round(median / 3600, 2),
                "satisfaction_rate": rate(row[6], row[5]),
            }
        )
    return {
        "position": position,
        "from": iso(start),
        "to": iso(end),
        "bucket": bucket,
        "buckets": items,
    }


# -- overview -----------------------------------------------------------------------------

#: The due time in effect at position $P (the current assignment when made by then).
_DUE_AT_POSITION: Final = """CASE WHEN r.assigned_position IS NULL THEN NULL
    WHEN r.assigned_position <= {p} THEN r.due_at
    WHEN r.assignments = 1 THEN NULL
    ELSE (SELECT h.due_at FROM rm_report_history h
          WHERE h.originator_id = r.originator_id AND h.due_at IS NOT NULL AND h.position <= {p}
          ORDER BY h.time DESC, h.position DESC LIMIT 1) END"""


def report_figures(
    query: Query,
    clock: datetime,
    position: int | None,
    *,
    at: str | None = None,
    only: str | None = None,
) -> dict[str, tuple[str, str]]:
    """The overview's report figures as SQL over ``rm_reports r``: by figure, the condition
    of a report counted in it (its placeholders added to `query`, only those it uses; `at`:
    a placeholder the query already has for `position`; `only`: that one figure) and the
    column of the position that put it there (`lineage` lists them, `report_counts` counts
    them)."""
    start, end = local_day(clock)
    values: dict[str, object] = {"s": start, "e": end, "c": clock, "w": clock - SATISFACTION_WINDOW}
    if position is not None:
        values["p"] = position
    placeholders: dict[str, str] = {} if at is None else {"p": at}

    def arg(name: str) -> str:
        if name not in placeholders:
            placeholders[name] = query.arg(values[name])
        return placeholders[name]

    def received() -> str:
        base = f"r.received_at >= {arg('s')} AND r.received_at < {arg('e')}"
        return base if position is None else f"{base} AND r.received_position <= {arg('p')}"

    def open_() -> str:
        if position is None:
            return "r.state IN ('new', 'assigned')"
        return f"r.open_positions @> {arg('p')}::int8"

    def overdue() -> str:
        if position is None:
            return f"r.state = 'assigned' AND r.due_at < {arg('c')}"
        return f"{open_()} AND ({_DUE_AT_POSITION.format(p=arg('p'))}) < {arg('c')}"

    def resolved() -> str:
        base = f"r.state = 'resolved' AND r.closed_at >= {arg('s')} AND r.closed_at < {arg('e')}"
        return base if position is None else f"{base} AND r.closed_position <= {arg('p')}"

    def rated() -> str:
        base = f"r.rated_at > {arg('w')} AND r.rated_at <= {arg('c')}"
        return base if position is None else f"{base} AND r.rated_position <= {arg('p')}"

    figures = {
        "received_today": (received, "r.received_position"),
        "open": (open_, "r.received_position"),
        "overdue": (overdue, "coalesce(r.assigned_position, r.received_position)"),
        "resolved_today": (resolved, "r.closed_position"),
        "satisfaction_rate": (rated, "r.rated_position"),
    }
    return {
        name: (condition(), column)
        for name, (condition, column) in figures.items()
        if only is None or name == only
    }


async def report_counts(
    conn: Connection, units: Collection[str] | None, clock: datetime, position: int | None
) -> dict[str, Any]:
    """The overview's ``reports``: received and resolved today, open, overdue at `clock`,
    and the satisfaction rate of the ratings of the last 30 days (null when none); now,
    or as the log stood at `position`."""
    query = Query()
    figures = report_figures(query, clock, position)
    scoped = "" if units is None else f"AND r.unit = ANY({query.arg(sorted(units))}::text[])"
    received = figures["received_today"][0]
    open_ = figures["open"][0]
    overdue = figures["overdue"][0]
    resolved = figures["resolved_today"][0]
    rated = figures["satisfaction_rate"][0]
    row = await conn.fetchrow(
        f"""SELECT
          (SELECT count(*) FROM rm_reports r WHERE {received} {scoped}) AS received,
          (SELECT count(*) FROM rm_reports r WHERE {open_} {scoped}) AS open,
          (SELECT count(*) FROM rm_reports r WHERE {overdue} {scoped}) AS overdue,
          (SELECT count(*) FROM rm_reports r WHERE {resolved} {scoped}) AS resolved,
          (SELECT count(*) FROM rm_reports r WHERE {rated} {scoped}) AS rated,
          (SELECT count(*) FROM rm_reports r WHERE {rated} AND r.rating = 'satisfied' {scoped})
              AS satisfied""",
        *query.args,
    )
    return {
        "received_today": row["received"],
        "open": row["open"],
        "overdue": row["overdue"],
        "resolved_today": row["resolved"],
        "satisfaction_rate": rate(row["satisfied"], row["rated"]),
    }
