"""KPIs: the indicators with their status, now or `as_of`, and one indicator's history."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from ops_center.domain import subject_id
from ops_center.domain.kpi_status import Status, kpi_status
from ops_center.province.calendar import iso, local_date, period_key
from projections.projection import Connection
from projections.read.common import Query, position_at, positions

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


async def scoped_kpis(
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
    for kpi in sorted(await scoped_kpis(conn, owners, historic, pillar), key=lambda k: k.code):
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
