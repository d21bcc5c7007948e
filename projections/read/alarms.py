"""Reading the alarms read model: the answers of ``GET /api/v1/alarms`` and
``GET /api/v1/alarms/{id}``, and the overview's count.

Like `projections.read`, every function takes a connection inside a REPEATABLE READ
transaction. Lists are newest first (``raised_at`` descending, then ``id`` descending):
the order of the ``alarms`` live topic (`streams.topics.ALARMS`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from ops_center.province.calendar import iso
from projections.projection import POSITIONS_TABLE
from projections.read.common import Query
from projections.read.places import BBox, Places

#: ``state`` filter values: one state, or ``open`` (active or acknowledged).
STATE_FILTERS: Final = ("active", "acknowledged", "resolved", "open")


async def _position(conn: Any) -> int:
    position: int | None = await conn.fetchval(
        f"SELECT position FROM {POSITIONS_TABLE} WHERE name = 'alarms'"
    )
    return position or 0


_FIELDS: Final = (
    "id, cause, subject_kind, subject, occurrence, unit, severity, summary, detail::text, "
    "state, repeats, raised_at, updated_at, acknowledged_at, acknowledged_by, "
    "acknowledged_note, resolved_at, resolved_by, resolved_note, resolved_automatically"
)


def _json(row: Any) -> dict[str, Any]:
    acknowledged = None
    if row["acknowledged_at"] is not None:
        acknowledged = {
            "at": iso(row["acknowledged_at"]),
            "by": row["acknowledged_by"],
            "note": row["acknowledged_note"],
        }
    resolved = None
    if row["resolved_at"] is not None:
        resolved = {
            "at": iso(row["resolved_at"]),
            "by": row["resolved_by"],
            "note": row["resolved_note"],
            "automatic": bool(row["resolved_automatically"]),
        }
    return {
        "id": str(row["id"]),
        "cause": row["cause"],
        "subject_kind": row["subject_kind"],
        "subject": row["subject"],
        "occurrence": row["occurrence"],
        "unit": row["unit"],
        "severity": row["severity"],
        "state": row["state"],
        "summary": row["summary"],
        "detail": orjson.loads(row["detail"]),
        "raised_at": iso(row["raised_at"]),
        "updated_at": iso(row["updated_at"]),
        "repeats": row["repeats"],
        "acknowledged": acknowledged,
        "resolved": resolved,
    }


#: The place of an alarm's subject from its own coordinates: a device's or a report's.
_SUBJECT_PLACE: Final = """ LEFT JOIN LATERAL (
    SELECT d.lat, d.lon FROM rm_devices d WHERE d.kind = a.subject_kind AND d.code = a.subject
        AND d.lat IS NOT NULL AND d.lon IS NOT NULL
    UNION ALL
    SELECT r.lat, r.lon FROM rm_reports r WHERE a.subject_kind = 'report' AND r.code = a.subject
        AND r.lat IS NOT NULL AND r.lon IS NOT NULL
    LIMIT 1) place ON true"""


def _source(bbox: BBox | None) -> str:
    return "rm_alarms a" if bbox is None else f"rm_alarms a{_SUBJECT_PLACE}"


def _placed(query: Query, bbox: BBox, places: Places) -> None:
    """The alarm's subject is in the box: by the subject's own coordinates (a device's or
    a report's), else by the alarm's unit's centroid."""
    min_lon, min_lat, max_lon, max_lat = (query.arg(float(v)) for v in bbox)
    units = query.arg(places.units_in(bbox))
    query.where(
        f"(CASE WHEN place.lat IS NOT NULL THEN place.lon BETWEEN {min_lon} AND {max_lon} "
        f"AND place.lat BETWEEN {min_lat} AND {max_lat} ELSE a.unit = ANY({units}::text[]) END)"
    )


def _filters(
    query: Query,
    state: str | None,
    units: Collection[str] | None,
    severity: str | None,
    cause: str | None,
    bbox: BBox | None = None,
    places: Places | None = None,
) -> None:
    if state == "open":
        query.where("state <> 'resolved'")
    elif state is not None:
        query.where(f"state = {query.arg(state)}")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    if severity is not None:
        query.where(f"severity = {query.arg(severity)}")
    if cause is not None:
        query.where(f"cause = {query.arg(cause)}")
    if bbox is not None:
        _placed(query, bbox, places or Places({}))


async def alarm_list(
    conn: Any,
    *,
    state: str | None = None,
    units: Collection[str] | None = None,
    severity: str | None = None,
    cause: str | None = None,
    bbox: BBox | None = None,
    places: Places | None = None,
    limit: int,
    offset: int = 0,
) -> dict[str, Any]:
    """``GET /api/v1/alarms``: alarms newest first, a page at a time. `bbox` keeps the
    alarms whose subject is placed in the box (its own coordinates, else the alarm's
    unit's centroid from `places`)."""
    position = await _position(conn)
    query = Query()
    _filters(query, state, units, severity, cause, bbox, places)
    source = _source(bbox)
    total = await conn.fetchval(f"SELECT count(*) FROM {source} {query.clause()}", *query.args)
    rows = await conn.fetch(
        f"SELECT {_FIELDS} FROM {source} {query.clause()} ORDER BY raised_at DESC, id DESC "
        f"LIMIT {query.arg(limit)} OFFSET {query.arg(offset)}",
        *query.args,
    )
    return {
        "position": position,
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [_json(row) for row in rows],
    }


async def open_alarms(conn: Any, units: Collection[str] | None) -> dict[str, Any]:
    """Every open alarm (active or acknowledged) of the scope, as ``{"position",
    "items"}``: the ``alarms`` topic's state."""
    page = await alarm_list(conn, state="open", units=units, limit=2**31 - 1)
    return {"position": page["position"], "items": page["items"]}


async def alarm_detail(conn: Any, alarm: UUID) -> dict[str, Any] | None:
    """``GET /api/v1/alarms/{id}``: the alarm, its full history (every event, oldest
    first) and every occurrence of the same cause on the same subject (its active
    periods); None when unknown."""
    position = await _position(conn)
    row = await conn.fetchrow(f"SELECT {_FIELDS} FROM rm_alarms WHERE id = $1", alarm)
    if row is None:
        return None
    history = await conn.fetch(
        "SELECT position, event, at, recorded_at, by, note, state, severity, summary, "
        "detail::text FROM rm_alarm_history WHERE id = $1 ORDER BY position",
        alarm,
    )
    periods = alarm_periods(history)
    occurrences = await conn.fetch(
        "SELECT id, occurrence, state, raised_at, resolved_at FROM rm_alarms "
        "WHERE cause = $1 AND subject_kind = $2 AND subject = $3 ORDER BY occurrence",
        row["cause"],
        row["subject_kind"],
        row["subject"],
    )
    return {
        "position": position,
        **_json(row),
        "history": [
            {
                "position": h["position"],
                "event": h["event"],
                "at": iso(h["at"]),
                "recorded_at": iso(h["recorded_at"]),
                "by": h["by"],
                "note": h["note"],
                "state": h["state"],
                "severity": h["severity"],
                "summary": h["summary"],
                "detail": orjson.loads(h["detail"]),
            }
            for h in history
        ],
        "periods": periods,
        "occurrences": [
            {
                "id": str(o["id"]),
                "occurrence": o["occurrence"],
                "state": o["state"],
                "raised_at": iso(o["raised_at"]),
                "resolved_at": iso(o["resolved_at"]),
            }
            for o in occurrences
        ],
    }


async def active_count(conn: Any, units: Collection[str] | None, position: int | None) -> int:
    """Alarms in state ``active`` (raised, not yet acknowledged nor resolved): now, or at
    a log position (history by the positions of each change)."""
    query = Query()
    if position is None:
        query.where("state = 'active'")
    else:
        p = query.arg(position)
        query.where(f"raised_position <= {p}")
        query.where(f"(acknowledged_position IS NULL OR acknowledged_position > {p})")
        query.where(f"(resolved_position IS NULL OR resolved_position > {p})")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM rm_alarms {query.clause()}", *query.args
    )
    return count


def alarm_periods(history: Sequence[Any]) -> list[dict[str, Any]]:
    """The alarm's periods from its history (oldest first): ``active`` from its raising,
    ``acknowledged`` from the acknowledgement, each ending at the next change of state
    (``to`` null while it lasts); a resolution ends the last. A period never ends before
    it starts (an action timed before the raising ends it at its start)."""
    periods: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for h in history:
        event = h["event"]
        if event not in ("raised", "acknowledged", "resolved"):
            continue
        if current is not None:
            current["to"] = max(current["from"], h["at"])
            current = None
        if event != "resolved":
            current = {"state": "active" if event == "raised" else "acknowledged", "from": h["at"]}
            current["to"] = None
            periods.append(current)
    return [{"state": p["state"], "from": iso(p["from"]), "to": iso(p["to"])} for p in periods]


_STATS: Final = """
SELECT cause, unit, count(*) AS raised,
    count(*) FILTER (WHERE acknowledged_at <= $3) AS acknowledged,
    count(*) FILTER (WHERE resolved_at <= $3 AND NOT resolved_automatically) AS by_operator,
    count(*) FILTER (WHERE resolved_at <= $3 AND resolved_automatically) AS by_itself,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY to_ack) FILTER (WHERE acknowledged_at <= $3),
    percentile_cont(0.9) WITHIN GROUP (ORDER BY to_ack) FILTER (WHERE acknowledged_at <= $3),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY to_resolve) FILTER (WHERE resolved_at <= $3),
    percentile_cont(0.9) WITHIN GROUP (ORDER BY to_resolve) FILTER (WHERE resolved_at <= $3),
    sum(open_for) AS active_seconds
FROM (
    SELECT cause, unit, acknowledged_at, resolved_at, resolved_automatically,
        greatest(0, extract(epoch FROM acknowledged_at - raised_at))::float8 AS to_ack,
        greatest(0, extract(epoch FROM resolved_at - raised_at))::float8 AS to_resolve,
        greatest(0, extract(epoch FROM
            least(coalesce(resolved_at, $3), $3) - raised_at))::float8 AS open_for
    FROM rm_alarms WHERE raised_at >= $1 AND raised_at < $2 {filters}
) a
GROUP BY cause, unit ORDER BY cause, unit NULLS LAST
"""


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def alarm_stats(
    conn: Any,
    *,
    start: datetime,
    end: datetime,
    clock: datetime,
    cause: str | None = None,
    units: Collection[str] | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/alarms/stats``: how long the alarms raised in ``[start, end)`` stayed
    open, per cause and unit (the alarm's own unit; null for an indicator whose owner has
    none). Everything is judged at ``min(end, clock)``: an acknowledgement or resolution
    after it has not happened yet, and an alarm still open then counts its open time
    (active or acknowledged) up to it. Medians and 90th percentiles interpolate
    (``percentile_cont``); null when no alarm of the row was acknowledged (resolved)."""
    position = await _position(conn)
    query = Query()
    query.args = [start, end, min(end, clock)]
    if cause is not None:
        query.where(f"cause = {query.arg(cause)}")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    filters = "".join(f" AND {c}" for c in query.conditions)
    rows = await conn.fetch(_STATS.format(filters=filters), *query.args)
    items = [
        {
            "cause": r["cause"],
            "unit": r["unit"],
            "raised": r["raised"],
            "acknowledged": r["acknowledged"],
            "resolved_by_operator": r["by_operator"],
            "resolved_by_itself": r["by_itself"],
            "seconds_to_acknowledge": {"median": _seconds(r[6]), "p90": _seconds(r[7])},
            "seconds_to_resolve": {"median": _seconds(r[8]), "p90": _seconds(r[9])},
            "active_seconds": _seconds(r["active_seconds"]) or 0.0,
        }
        for r in rows
    ]
    return {"from": iso(start), "to": iso(end), "position": position, "items": items}


async def alarms_raised(conn: Any, *, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The alarms raised in ``[start, end)`` as the what-if compares them
    (``POST /api/v1/alarms/what-if``): cause, subject, unit, raised_at and resolved_at
    (null when not resolved before `end`: the what-if cannot see later), oldest first."""
    rows = await conn.fetch(
        "SELECT cause, subject, unit, raised_at, "
        "CASE WHEN resolved_at < $2 THEN resolved_at END AS resolved_at "
        "FROM rm_alarms WHERE raised_at >= $1 AND raised_at < $2 "
        "ORDER BY raised_at, cause, subject",
        start,
        end,
    )
    return [dict(r) for r in rows]
