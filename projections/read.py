"""Reading the read models: the answers of the leaders' queries, as plain JSON-ready dicts.

Every function takes a connection inside a REPEATABLE READ transaction (so positions and
tables are one snapshot) and returns what `web.queries` sends. Times are answered in
Vietnam time (+07:00); "today", days, months and buckets are Asia/Ho_Chi_Minh.

Time travel (`as_of`): the state "as the projection stood at moment T" is the state after
the events recorded at or before T. `position_at` finds the last such position by binary
search over the log (about 25 index probes at 10 million events); then

* devices from ``rm_device_history`` (the latest change at or before the position: one
  primary-key probe per device, whatever the moment) and broadcasts from
  ``rm_broadcasts.on_air`` (a GiST index on the range of positions it was on air);
* dossiers from ``rm_dossiers`` (``received_position``, ``closed_position`` and the
  GiST-indexed ``open_positions``), with the clock set to T for "today" and "overdue";
* KPIs from ``rm_kpi_log`` up to the position, in SQL (per indicator and period the
  event with the latest CloudEvent time wins, as in the projection's fold; cost: a scan
  of the indicator events up to then, a small log since indicators report monthly or
  quarterly).

The overview combines three projections. When their positions differ (one is catching up
or rebuilding) it answers from the history at the smallest of them, so an answer is always
one consistent position of the log.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import orjson

from ops_center.domain import subject_id
from ops_center.domain.kpi_status import Status, kpi_status
from ops_center.province.calendar import Bucket, buckets, iso, local_date, local_day, period_key
from ops_center.store.log import EVENTS_TABLE
from projections import alarms_read, services
from projections.runner import POSITIONS_TABLE, Connection

OVERVIEW_PROJECTIONS: Final = ("devices", "services", "kpis", "alarms")
CAMERA_STATUSES: Final = ("online", "offline", "degraded")
RADIO_STATUSES: Final = ("online", "offline")
DUE_SOON: Final = timedelta(hours=24)


class Query:
    """A WHERE clause and its arguments, built up safely ($n placeholders only)."""

    def __init__(self, *args: Any) -> None:
        self.args: list[Any] = list(args)
        self.conditions: list[str] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def where(self, condition: str) -> None:
        self.conditions.append(condition)

    def clause(self, prefix: str = "WHERE") -> str:
        return f"{prefix} {' AND '.join(self.conditions)}" if self.conditions else ""


async def positions(conn: Connection) -> dict[str, int]:
    """Every projection's applied position (0 for one that has not started)."""
    rows = await conn.fetch(f"SELECT name, position FROM {POSITIONS_TABLE}")
    return {row["name"]: row["position"] for row in rows}


async def position_at(
    conn: Connection, moment: datetime, upto: int, table: str = EVENTS_TABLE
) -> int:
    """The last position at or below `upto` whose event was recorded at or before `moment`.

    Binary search on the log's positions, reading each probe's recorded timestamp: about
    log2(upto) index lookups, run by the server in one statement. Recorded times rise with
    positions except within one group commit (events are grouped by subject there), so
    the answer is exact to within a commit's few milliseconds.
    """
    if upto <= 0:
        return 0
    last = await conn.fetchrow(
        f"SELECT notification_id, state FROM {table} WHERE notification_id <= $1 "
        f"ORDER BY notification_id DESC LIMIT 1",
        upto,
    )
    if last is None:
        return 0
    if datetime.fromisoformat(orjson.loads(last[1])["timestamp"]) <= moment:
        return int(last[0])
    found: int = await conn.fetchval(_SEARCH.format(table=table), moment, int(last[0]) - 1)
    return found


# The binary search of `position_at`: (low, high) narrows until low >= high; a probe is the
# first event in [middle, high] (positions may have gaps).
_SEARCH: Final = """
WITH RECURSIVE search(low, high) AS (
    SELECT 0::int8, $2::int8
  UNION ALL
    SELECT CASE WHEN p.at IS NULL OR p.at > $1 THEN s.low ELSE p.id END,
        CASE WHEN p.at IS NULL OR p.at > $1 THEN (s.low + s.high + 1) / 2 - 1 ELSE s.high END
    FROM search s
    LEFT JOIN LATERAL (
        SELECT notification_id AS id,
            (convert_from(state, 'UTF8')::jsonb ->> 'timestamp')::timestamptz AS at
        FROM {table} WHERE notification_id >= (s.low + s.high + 1) / 2
            AND notification_id <= s.high
        ORDER BY notification_id LIMIT 1
    ) p ON true
    WHERE s.low < s.high
)
SELECT low FROM search WHERE low >= high
"""


# -- overview ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Which units (with their descendants) and KPI owners an answer covers; None: all."""

    units: Collection[str] | None = None
    owners: Collection[str] | None = None


async def overview(
    conn: Connection, scope: Scope, *, clock: datetime, as_of: datetime | None = None
) -> dict[str, Any]:
    """The overview of docs/CONTRACT.md §5, at the projections' position (or as of a time).

    `clock` is now; with `as_of` the clock is `as_of` and the state that of the events
    recorded by then.
    """
    known = await positions(conn)
    at = [known.get(name, 0) for name in OVERVIEW_PROJECTIONS]
    position = min(at)
    historic = as_of is not None or len(set(at)) > 1
    if as_of is not None:
        clock = as_of
        position = await position_at(conn, as_of, position)
    devices = await _device_counts(conn, scope, position if historic else None)
    broadcasts = await _broadcast_counts(conn, scope, position if historic else None)
    services = await _service_counts(conn, scope, clock, position if historic else None)
    kpis = await _kpis(conn, scope.owners, position if historic else None)
    today = local_date(clock)
    on_track = off_track = 0
    for kpi in kpis:
        if kpi_status_of(kpi, today) == "off_track":
            off_track += 1
        else:
            on_track += 1
    return {
        "position": position,
        "devices": devices,
        "broadcasts": broadcasts,
        "services": services,
        "kpis": {"on_track": on_track, "off_track": off_track},
        "alarms": {
            "active": await alarms_read.active_count(
                conn, scope.units, position if historic else None
            )
        },
    }


async def _device_counts(
    conn: Connection, scope: Scope, position: int | None
) -> dict[str, dict[str, int]]:
    query = Query()
    if position is None:
        source = "rm_devices"
    else:
        # the latest change at or before the position, one index probe per device
        source = (
            "rm_devices d CROSS JOIN LATERAL (SELECT h.kind, h.unit, h.status "
            "FROM rm_device_history h WHERE h.originator_id = d.originator_id "
            f"AND h.from_position <= {query.arg(position)} "
            "ORDER BY h.from_position DESC LIMIT 1) AS s"
        )
    prefix = "" if position is None else "s."
    query.where(f"{prefix}status IS NOT NULL")
    if scope.units is not None:
        query.where(f"{prefix}unit = ANY({query.arg(list(scope.units))}::text[])")
    rows = await conn.fetch(
        f"SELECT {prefix}kind AS kind, {prefix}status AS status, count(*) AS n "
        f"FROM {source} {query.clause()} GROUP BY 1, 2",
        *query.args,
    )
    counts: dict[str, dict[str, int]] = {
        "camera": dict.fromkeys(CAMERA_STATUSES, 0),
        "radio": dict.fromkeys(RADIO_STATUSES, 0),
    }
    for row in rows:
        group = counts.get(row["kind"])
        if group is not None and row["status"] in group:
            group[row["status"]] = row["n"]
    return counts


async def _broadcast_counts(conn: Connection, scope: Scope, position: int | None) -> dict[str, int]:
    query = Query()
    if position is None:
        query.where("end_position IS NULL")
    else:
        query.where(f"on_air @> {query.arg(position)}::int8")
    if scope.units is not None:
        query.where(f"unit = ANY({query.arg(list(scope.units))}::text[])")
    row = await conn.fetchrow(
        "SELECT count(*) AS active, count(*) FILTER (WHERE kind = 'emergency') AS emergency "
        f"FROM rm_broadcasts {query.clause()}",
        *query.args,
    )
    return {"active": row["active"], "emergency_active": row["emergency"]}


async def _service_counts(
    conn: Connection, scope: Scope, clock: datetime, position: int | None
) -> dict[str, Any]:
    start, end = local_day(clock)
    if position is None:
        # from the counters: today's, and the open dossiers due before now
        group = await service_group(conn, None, scope.units)
        today, before = await service_sums(conn, group, [(start, end), (None, clock)])
        completed = today[services.ON_TIME] + today[services.LATE]
        return {
            "received_today": today[services.RECEIVED],
            "completed_today": completed,
            "on_time_rate": _rate(today[services.ON_TIME], completed),
            "overdue": before[services.OPEN_DUE],
        }
    # as the log stood at `position`: dossiers received, closed and open by then (the
    # dossiers' time indexes lead with the unit: every unit is named)
    units = list(scope.units) if scope.units is not None else await units_present(conn)
    query = Query(start, end, clock, position, units)
    row = await conn.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM rm_dossiers
             WHERE unit = ANY($5::text[]) AND received_at >= $1 AND received_at < $2
             AND received_position <= $4) AS received,
          (SELECT count(*) FROM rm_dossiers
             WHERE unit = ANY($5::text[]) AND closed_at >= $1 AND closed_at < $2
             AND closed_position <= $4 AND state = 'completed') AS completed,
          (SELECT count(*) FROM rm_dossiers
             WHERE unit = ANY($5::text[]) AND closed_at >= $1 AND closed_at < $2
             AND closed_position <= $4 AND state = 'completed' AND on_time) AS on_time,
          (SELECT count(*) FROM rm_dossiers
             WHERE state = 'open' AND due_at < $3 AND received_position <= $4
             AND unit = ANY($5::text[]))
          + (SELECT count(*) FROM rm_dossiers
             WHERE closed_position IS NOT NULL AND open_positions @> $4::int8
             AND due_at < $3 AND unit = ANY($5::text[])) AS overdue
        """,
        *query.args,
    )
    completed = row["completed"]
    return {
        "received_today": row["received"],
        "completed_today": completed,
        "on_time_rate": _rate(row["on_time"], completed),
        "overdue": row["overdue"],
    }


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


# -- KPIs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiView:
    """An indicator as the queries show it."""

    originator_id: UUID
    code: str
    name: str
    measure: str
    owner: str
    pillar: str
    direction: str
    reference: str | None
    target: float
    deadline: Any
    first: tuple[str, float] | None
    latest: tuple[str, float] | None
    periods: int


def kpi_status_of(kpi: KpiView, today: Any) -> Status:
    return kpi_status(kpi.direction, kpi.target, kpi.deadline, kpi.first, kpi.latest, today)


_KPIS_AT: Final = """
WITH log AS (
    SELECT position, originator_id, event, time, data FROM rm_kpi_log
    WHERE position <= $1 {only}
), definitions AS (
    SELECT DISTINCT ON (originator_id) originator_id, data FROM log
    WHERE event IN ('Indicator.Defined', 'Indicator.Redefined')
    ORDER BY originator_id, time DESC, position DESC
), targets AS (
    SELECT DISTINCT ON (originator_id) originator_id, (data->>'target')::float8 AS target,
        (data->>'deadline')::date AS deadline FROM log
    WHERE event IN ('Indicator.Defined', 'Indicator.Redefined', 'Indicator.TargetRevised')
    ORDER BY originator_id, time DESC, position DESC
)
SELECT c.originator_id, c.data->>'code' AS code, d.data, t.target, t.deadline
FROM log c JOIN definitions d USING (originator_id) JOIN targets t USING (originator_id)
WHERE c.event = 'Indicator.Defined'
"""

_VALUES_AT: Final = """
SELECT DISTINCT ON (originator_id, data->>'period') originator_id, data->>'period' AS period,
    (data->>'value')::float8 AS value, time
FROM rm_kpi_log WHERE position <= $1 AND event = 'Indicator.Reported' {only}
ORDER BY originator_id, data->>'period', time DESC, position DESC
"""


async def _kpi_values_at(
    conn: Connection, position: int, originator_id: UUID | None = None
) -> dict[UUID, list[tuple[str, float, datetime]]]:
    """Every indicator's value per period at `position`: per period, the report with the
    latest CloudEvent time (ties: the later position), as the projection's fold keeps."""
    only = "" if originator_id is None else "AND originator_id = $2"
    args = [position] if originator_id is None else [position, originator_id]
    values: dict[UUID, list[tuple[str, float, datetime]]] = {}
    for row in await conn.fetch(_VALUES_AT.format(only=only), *args):
        values.setdefault(row[0], []).append((row[1], row[2], row[3]))
    return values


async def _kpis_at(
    conn: Connection, position: int, originator_id: UUID | None = None
) -> list[KpiView]:
    """The indicators as they stood at `position`, from ``rm_kpi_log`` in SQL: for the
    definition, the target and every period, the event with the latest CloudEvent time
    (ties: the later position) wins, exactly like the projection's fold."""
    only = "" if originator_id is None else "AND originator_id = $2"
    args = [position] if originator_id is None else [position, originator_id]
    rows = await conn.fetch(_KPIS_AT.format(only=only), *args)
    values = await _kpi_values_at(conn, position, originator_id)
    views = []
    for row in rows:
        data = orjson.loads(row["data"])
        reported = values.get(row["originator_id"], [])
        first = min(reported, key=lambda v: period_key(v[0]), default=None)
        latest = max(reported, key=lambda v: period_key(v[0]), default=None)
        views.append(
            KpiView(
                row["originator_id"],
                row["code"],
                data["name"],
                data["measure"],
                data["owner"],
                data["pillar"],
                data["direction"],
                data.get("reference"),
                row["target"],
                row["deadline"],
                None if first is None else (first[0], first[1]),
                None if latest is None else (latest[0], latest[1]),
                len(reported),
            )
        )
    return views


async def _kpis(
    conn: Connection,
    owners: Collection[str] | None,
    position: int | None,
    pillar: str | None = None,
) -> list[KpiView]:
    if position is not None:
        views = await _kpis_at(conn, position)
        return [
            v
            for v in views
            if (owners is None or v.owner in owners) and (pillar is None or v.pillar == pillar)
        ]
    query = Query()
    if owners is not None:
        query.where(f"owner = ANY({query.arg(list(owners))}::text[])")
    if pillar is not None:
        query.where(f"pillar = {query.arg(pillar)}")
    rows = await conn.fetch(
        "SELECT originator_id, code, name, measure, owner, pillar, direction, reference, target, "
        "deadline, first_period, first_value, latest_period, latest_value, periods "
        f"FROM rm_kpis {query.clause()}",
        *query.args,
    )
    return [
        KpiView(
            r["originator_id"],
            r["code"],
            r["name"],
            r["measure"],
            r["owner"],
            r["pillar"],
            r["direction"],
            r["reference"],
            r["target"],
            r["deadline"],
            None if r["first_period"] is None else (r["first_period"], r["first_value"]),
            None if r["latest_period"] is None else (r["latest_period"], r["latest_value"]),
            r["periods"],
        )
        for r in rows
    ]


def _kpi_json(kpi: KpiView, status: Status) -> dict[str, Any]:
    def value(pair: tuple[str, float] | None) -> dict[str, Any] | None:
        return None if pair is None else {"period": pair[0], "value": pair[1]}

    return {
        "code": kpi.code,
        "name": kpi.name,
        "measure": kpi.measure,
        "owner": kpi.owner,
        "pillar": kpi.pillar,
        "direction": kpi.direction,
        "reference": kpi.reference,
        "target": kpi.target,
        "deadline": kpi.deadline.isoformat(),
        "first": value(kpi.first),
        "latest": value(kpi.latest),
        "periods": kpi.periods,
        "status": status,
    }


async def kpi_list(
    conn: Connection,
    *,
    clock: datetime,
    as_of: datetime | None = None,
    owners: Collection[str] | None = None,
    pillar: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/kpis``: indicators with their status, sorted by code."""
    position = (await positions(conn)).get("kpis", 0)
    historic = None
    if as_of is not None:
        clock = as_of
        position = historic = await position_at(conn, as_of, position)
    today = local_date(clock)
    items = []
    for kpi in sorted(await _kpis(conn, owners, historic, pillar), key=lambda k: k.code):
        state = kpi_status_of(kpi, today)
        if status is None or state == status:
            items.append(_kpi_json(kpi, state))
    return {"position": position, "as_of": iso(as_of), "items": items}


async def kpi_history(
    conn: Connection, code: str, *, as_of: datetime | None = None
) -> dict[str, Any] | None:
    """``GET /api/v1/kpis/{code}/history``: the value of every period, oldest period first;
    None when the indicator is unknown (at that moment)."""
    position = (await positions(conn)).get("kpis", 0)
    oid = subject_id("indicator", code)
    if as_of is not None:
        position = await position_at(conn, as_of, position)
        if not await _kpis_at(conn, position, oid):
            return None
        values = (await _kpi_values_at(conn, position, oid)).get(oid, [])
    else:
        found = await conn.fetchval("SELECT true FROM rm_kpis WHERE originator_id = $1", oid)
        if not found:
            return None
        rows = await conn.fetch(
            "SELECT period, value, reported_at FROM rm_kpi_history WHERE originator_id = $1", oid
        )
        values = [(r[0], r[1], r[2]) for r in rows]
    values.sort(key=lambda v: period_key(v[0]))
    return {
        "position": position,
        "as_of": iso(as_of),
        "code": code,
        "items": [{"period": p, "value": v, "reported_at": iso(t)} for p, v, t in values],
    }


# -- devices ------------------------------------------------------------------------------


def _device_json(row: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "code": row["code"],
        "kind": row["kind"],
        "name": row["name"],
        "unit": row["unit"],
        "status": row["status"],
        "status_at": iso(row["status_at"]),
        "registered_at": iso(row["registered_at"]),
        "lat": row["lat"],
        "lon": row["lon"],
    }
    if row["kind"] == "camera":
        item["camera_kind"] = row["camera_kind"]
        item["last_alert"] = (
            None
            if row["last_alert_id"] is None
            else {
                "alert_id": row["last_alert_id"],
                "category": row["last_alert_category"],
                "severity": row["last_alert_severity"],
                "time": iso(row["last_alert_at"]),
            }
        )
    else:
        item["clusters"] = row["clusters"]
    return item


_DEVICE_FIELDS: Final = (
    "originator_id, code, kind, name, unit, status, status_at, registered_at, lat, lon, "
    "camera_kind, clusters, last_alert_id, last_alert_category, last_alert_severity, "
    "last_alert_at"
)


async def _radio_extras(
    conn: Connection, ids: Sequence[UUID]
) -> tuple[dict[UUID, list[dict[str, Any]]], dict[UUID, list[dict[str, Any]]]]:
    faults: dict[UUID, list[dict[str, Any]]] = {i: [] for i in ids}
    on_air: dict[UUID, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return faults, on_air
    for row in await conn.fetch(
        "SELECT originator_id, cluster, fault, reported_at FROM rm_radio_clusters "
        "WHERE originator_id = ANY($1::uuid[]) AND fault IS NOT NULL ORDER BY cluster",
        list(ids),
    ):
        faults[row[0]].append(
            {"cluster": row[1], "fault": row[2], "since": iso(row[3])},
        )
    for row in await conn.fetch(
        "SELECT originator_id, broadcast_id, program, kind, started_at FROM rm_broadcasts "
        "WHERE originator_id = ANY($1::uuid[]) AND end_position IS NULL "
        "ORDER BY started_at, broadcast_id",
        list(ids),
    ):
        on_air[row[0]].append(
            {
                "broadcast_id": row[1],
                "program": row[2],
                "kind": row[3],
                "started_at": iso(row[4]),
            }
        )
    return faults, on_air


async def device_list(
    conn: Connection,
    *,
    kind: str,
    status: str | None,
    units: Collection[str] | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """``GET /api/v1/devices``: devices of one kind sorted by code, a page at a time.

    `status` ``unknown`` selects devices that never reported one.
    """
    position = (await positions(conn)).get("devices", 0)
    query = Query(kind)
    query.where("kind = $1")
    if status == "unknown":
        query.where("status IS NULL")
    elif status is not None:
        query.where(f"status = {query.arg(status)}")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    total = await conn.fetchval(f"SELECT count(*) FROM rm_devices {query.clause()}", *query.args)
    rows = await conn.fetch(
        f"SELECT {_DEVICE_FIELDS} FROM rm_devices {query.clause()} ORDER BY code "
        f"LIMIT {query.arg(limit)} OFFSET {query.arg(offset)}",
        *query.args,
    )
    items = [_device_json(row) for row in rows]
    if kind == "radio":
        faults, on_air = await _radio_extras(conn, [row["originator_id"] for row in rows])
        for item, row in zip(items, rows, strict=True):
            item["faults"] = faults[row["originator_id"]]
            item["broadcasts_active"] = len(on_air[row["originator_id"]])
    return {
        "position": position,
        "kind": kind,
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": items,
    }


async def device_detail(conn: Connection, code: str, kind: str | None) -> list[dict[str, Any]]:
    """``GET /api/v1/devices/{code}``: the devices with this code (of this kind): none, one,
    or a camera and a station sharing the code."""
    position = (await positions(conn)).get("devices", 0)
    ids = []
    if kind in (None, "camera"):
        ids.append(subject_id("camera", code))
    if kind in (None, "radio"):
        ids.append(subject_id("station", code))
    rows = await conn.fetch(
        f"SELECT {_DEVICE_FIELDS} FROM rm_devices WHERE originator_id = ANY($1::uuid[]) "
        "ORDER BY kind",
        ids,
    )
    out = []
    radio_ids = [row["originator_id"] for row in rows if row["kind"] == "radio"]
    faults, on_air = await _radio_extras(conn, radio_ids)
    for row in rows:
        item = {"position": position, **_device_json(row)}
        if row["kind"] == "radio":
            item["faults"] = faults[row["originator_id"]]
            item["broadcasts"] = on_air[row["originator_id"]]
        out.append(item)
    return out


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
        "online_share": _rate(counts[services.ONLINE], received),
        "on_time_rate": _rate(on_time, on_time + late),
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


# -- feed ---------------------------------------------------------------------------------


async def feed(
    conn: Connection, *, limit: int, before: int | None, units: Collection[str] | None
) -> dict[str, Any]:
    """``GET /api/v1/feed``: the latest events, newest first."""
    position = (await positions(conn)).get("feed", 0)
    query = Query()
    if before is not None:
        query.where(f"position < {query.arg(before)}")
    if units is not None:
        query.where(f"unit = ANY({query.arg(list(units))}::text[])")
    rows = await conn.fetch(
        "SELECT position, recorded_at, time, type, event, subject_kind, subject, unit, source, "
        f"data FROM rm_feed {query.clause()} ORDER BY position DESC LIMIT {query.arg(limit)}",
        *query.args,
    )
    items = [
        {
            "position": r["position"],
            "type": r["type"],
            "event": r["event"],
            "subject": r["subject"],
            "subject_kind": r["subject_kind"],
            "unit": r["unit"],
            "time": iso(r["time"]),
            "recorded_at": iso(r["recorded_at"]),
            "source": r["source"],
            "data": orjson.loads(r["data"]),
        }
        for r in rows
    ]
    return {"position": position, "items": items}
