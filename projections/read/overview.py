"""The overview: devices, broadcasts, services, KPIs and alarms at a glance, at one
consistent position (the smallest of the projections it combines)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ops_center.province.calendar import local_date, local_day
from projections import services
from projections.projection import Connection
from projections.read import alarms as alarms_read
from projections.read.common import (
    CAMERA_STATUSES,
    OVERVIEW_PROJECTIONS,
    RADIO_STATUSES,
    Query,
    Scope,
    position_at,
    positions,
    rate,
)
from projections.read.kpis import kpi_status_of, scoped_kpis
from projections.read.services import service_group, service_sums, units_present

# -- overview ---------------------------------------------------------------------------


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
    kpis = await scoped_kpis(conn, scope.owners, position if historic else None)
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
            "on_time_rate": rate(today[services.ON_TIME], completed),
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
        "on_time_rate": rate(row["on_time"], completed),
        "overdue": row["overdue"],
    }
