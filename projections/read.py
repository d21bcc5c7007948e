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

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import orjson

from ops_center.domain import subject_id
from projections.events import EVENTS_TABLE
from projections.kpis import Status, kpi_status
from projections.runner import POSITIONS_TABLE, Connection
from projections.timeutil import Bucket, buckets, iso, local_date, local_day, period_key

OVERVIEW_PROJECTIONS: Final = ("devices", "services", "kpis")
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
    log2(upto) index lookups. Recorded times rise with positions except within one group
    commit (events are grouped by subject there), so the answer is exact to within a
    commit's few milliseconds.
    """

    async def recorded(at_least: int, at_most: int) -> tuple[int, datetime] | None:
        row = await conn.fetchrow(
            f"SELECT notification_id, state FROM {table} "
            f"WHERE notification_id >= $1 AND notification_id <= $2 "
            f"ORDER BY notification_id LIMIT 1",
            at_least,
            at_most,
        )
        if row is None:
            return None
        stamp = orjson.loads(row[1])["timestamp"]
        return row[0], datetime.fromisoformat(stamp)

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
    low, high = 0, int(last[0]) - 1
    while low < high:
        middle = (low + high + 1) // 2
        probe = await recorded(middle, high)
        if probe is None or probe[1] > moment:
            high = middle - 1
        else:
            low = probe[0]
    return low


# -- overview ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Which units (with their descendants) and KPI owners an answer covers; None: all."""

    units: Collection[str] | None = None
    owners: Collection[str] | None = None


async def overview(
    conn: Connection, scope: Scope, *, clock: datetime, as_of: datetime | None = None
) -> dict[str, Any]:
    """The overview of contract section 5, at the projections' position (or as of a time).

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
        "alarms": {"active": 0},
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
    query = Query(start, end, clock)
    units = ""
    if scope.units is not None:
        units = f"AND unit = ANY({query.arg(list(scope.units))}::text[])"
    if position is None:
        received_at = closed_at = ""
        overdue = "state = 'open'"
    else:
        at = query.arg(position)
        received_at = f"AND received_position <= {at}"
        closed_at = f"AND closed_position <= {at}"
        overdue = f"open_positions @> {at}::int8"
    row = await conn.fetchrow(
        f"""
        SELECT
          (SELECT count(*) FROM rm_dossiers
             WHERE received_at >= $1 AND received_at < $2 {received_at} {units}) AS received,
          (SELECT count(*) FROM rm_dossiers
             WHERE state = 'completed' AND closed_at >= $1 AND closed_at < $2
             {closed_at} {units}) AS completed,
          (SELECT count(*) FROM rm_dossiers
             WHERE state = 'completed' AND on_time AND closed_at >= $1 AND closed_at < $2
             {closed_at} {units}) AS on_time,
          (SELECT count(*) FROM rm_dossiers
             WHERE {overdue} AND due_at < $3 {units}) AS overdue
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
    buckets that have not begun): not yet due, due within 24 h, overdue.
    """
    position = (await positions(conn)).get("services", 0)
    spans = buckets(start, end, bucket)
    starts = [s for s, _ in spans]

    def filtered(query: Query, alias: str = "") -> Query:
        if agency is not None:
            query.where(f"{alias}agency = {query.arg(agency)}")
        if units is not None:
            query.where(f"{alias}unit = ANY({query.arg(list(units))}::text[])")
        return query

    query = filtered(Query(starts, start, end))
    received_rows = await conn.fetch(
        "SELECT width_bucket(received_at, $1::timestamptz[]) AS i, count(*) AS received, "
        "count(*) FILTER (WHERE channel = 'online') AS online FROM rm_dossiers "
        f"WHERE received_at >= $2 AND received_at < $3 {query.clause('AND')} GROUP BY 1",
        *query.args,
    )
    query = filtered(Query(starts, start, end))
    closed_rows = await conn.fetch(
        "SELECT width_bucket(closed_at, $1::timestamptz[]) AS i, "
        "count(*) FILTER (WHERE state = 'completed' AND on_time) AS on_time, "
        "count(*) FILTER (WHERE state = 'completed' AND NOT on_time) AS late, "
        "count(*) FILTER (WHERE state = 'withdrawn') AS withdrawn FROM rm_dossiers "
        f"WHERE closed_at >= $2 AND closed_at < $3 {query.clause('AND')} GROUP BY 1",
        *query.args,
    )
    # in progress just before each begun bucket's end, or at the clock if earlier
    moments = [min(stop - timedelta(microseconds=1), clock) for begin, stop in spans]
    begun = sum(1 for begin, _ in spans if begin <= clock)
    query = filtered(Query(moments[:begun], DUE_SOON), "d.")
    progress_rows = await conn.fetch(
        "SELECT e.i, count(*) FILTER (WHERE d.due_at < e.t) AS overdue, "
        "count(*) FILTER (WHERE d.due_at >= e.t AND d.due_at < e.t + $2::interval) AS due_soon, "
        "count(*) FILTER (WHERE d.due_at >= e.t + $2::interval) AS not_due "
        "FROM unnest($1::timestamptz[]) WITH ORDINALITY AS e(t, i) "
        f"JOIN rm_dossiers d ON d.open_during @> e.t {query.clause('AND')} GROUP BY e.i",
        *query.args,
    )
    received = {r["i"]: r for r in received_rows}
    closed = {r["i"]: r for r in closed_rows}
    progress = {r["i"]: r for r in progress_rows}
    items = []
    totals = dict.fromkeys(("received", "online", "on_time", "late", "withdrawn"), 0)
    for i, (begin, stop) in enumerate(spans, start=1):
        r, c, p = received.get(i), closed.get(i), progress.get(i)
        counts = {
            "received": r["received"] if r else 0,
            "online": r["online"] if r else 0,
            "on_time": c["on_time"] if c else 0,
            "late": c["late"] if c else 0,
            "withdrawn": c["withdrawn"] if c else 0,
        }
        for name, value in counts.items():
            totals[name] += value
        in_progress = None
        if i <= begun:
            in_progress = {
                "not_yet_due": p["not_due"] if p else 0,
                "due_within_24h": p["due_soon"] if p else 0,
                "overdue": p["overdue"] if p else 0,
            }
        items.append(_bucket_json(begin, stop, counts, in_progress))
    # buckets are contiguous: the last begun one is evaluated at min(end, clock)
    last = items[begun - 1]["in_progress"] if begun else None
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
    counts: dict[str, int],
    in_progress: dict[str, int] | None,
) -> dict[str, Any]:
    completed = counts["on_time"] + counts["late"]
    return {
        "start": iso(begin),
        "end": iso(stop),
        "received": counts["received"],
        "completed": {"on_time": counts["on_time"], "late": counts["late"], "total": completed},
        "withdrawn": counts["withdrawn"],
        "in_progress": in_progress,
        "online_share": _rate(counts["online"], counts["received"]),
        "on_time_rate": _rate(counts["on_time"], completed),
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
    total = await conn.fetchval(f"SELECT count(*) FROM rm_dossiers {query.clause()}", *query.args)
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
