"""The overview: devices, broadcasts, services, KPIs, alarms and citizens' reports at a
glance, at one consistent position (the smallest of the projections it combines)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from ops_center.province.calendar import local_date, local_day
from projections import services
from projections.projection import Connection
from projections.read import alarms as alarms_read
from projections.read.checkpoints import device_counts_at, overdue_at
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
from projections.read.reports import report_counts
from projections.read.services import service_group, service_sums, units_present

# -- overview ---------------------------------------------------------------------------


async def overview(
    conn: Connection,
    scope: Scope,
    *,
    clock: datetime,
    as_of: datetime | None = None,
    checkpoints: bool = True,
) -> dict[str, Any]:
    """The overview of docs/CONTRACT.md §5, at the projections' position (or as of a time).

    `clock` is now; with `as_of` the clock is `as_of` and the state that of the events
    recorded by then. A past position reads the devices and the overdue dossiers from the
    last checkpoint before it and the history since (`projections.read.checkpoints`);
    ``checkpoints=False`` reads them from the history alone (the reference: the same
    answer, slower).
    """
    known = await positions(conn)
    at = [known.get(name, 0) for name in OVERVIEW_PROJECTIONS]
    position = min(at)
    historic = as_of is not None or len(set(at)) > 1
    if as_of is not None:
        clock = as_of
        position = await position_at(conn, as_of, position)
    parts = await overview_at(
        conn, scope, clock=clock, position=position if historic else None, checkpoints=checkpoints
    )
    return {"position": position, **parts}


async def overview_at(
    conn: Connection,
    scope: Scope,
    *,
    clock: datetime,
    position: int | None,
    checkpoints: bool = True,
) -> dict[str, Any]:
    """The overview's parts at `position` (None: the tables as they stand) and `clock`."""
    if position is not None and checkpoints:
        devices = _counted(await device_counts_at(conn, scope.units, position))
    else:
        devices = await _device_counts(conn, scope, position)
    broadcasts = await _broadcast_counts(conn, scope, position)
    services = await _service_counts(conn, scope, clock, position, checkpoints=checkpoints)
    kpis = await scoped_kpis(conn, scope.owners, position)
    today = local_date(clock)
    on_track = off_track = 0
    for kpi in kpis:
        if kpi_status_of(kpi, today) == "off_track":
            off_track += 1
        else:
            on_track += 1
    return {
        "devices": devices,
        "broadcasts": broadcasts,
        "services": services,
        "kpis": {"on_track": on_track, "off_track": off_track},
        "alarms": {"active": await alarms_read.active_count(conn, scope.units, position)},
        "reports": await report_counts(conn, scope.units, clock, position),
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
    return _counted((row["kind"], row["status"], row["n"]) for row in rows)


def _counted(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {
        "camera": dict.fromkeys(CAMERA_STATUSES, 0),
        "radio": dict.fromkeys(RADIO_STATUSES, 0),
    }
    for kind, status, n in rows:
        group = counts.get(kind)
        if group is not None and status in group:
            group[status] = n
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
    conn: Connection, scope: Scope, clock: datetime, position: int | None, *, checkpoints: bool
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
    if checkpoints:
        row = await conn.fetchrow(_PAST_SERVICES, start, end, position, units)
    else:
        row = await conn.fetchrow(_PAST_SERVICES_REFERENCE, start, end, position, units, clock)
    completed = row["completed"]
    overdue = await overdue_at(conn, units, clock, position) if checkpoints else row["overdue"]
    return {
        "received_today": row["received"],
        "completed_today": completed,
        "on_time_rate": rate(row["on_time"], completed),
        "overdue": overdue,
    }


# $1-$2 the local day of the moment, $3 the position, $4 the units (and $5 the moment).
_PAST_SERVICES: Final = """
        SELECT
          (SELECT count(*) FROM rm_dossiers
             WHERE unit = ANY($4::text[]) AND received_at >= $1 AND received_at < $2
             AND received_position <= $3) AS received,
          (SELECT count(*) FROM rm_dossiers
             WHERE unit = ANY($4::text[]) AND closed_at >= $1 AND closed_at < $2
             AND closed_position <= $3 AND state = 'completed') AS completed,
          (SELECT count(*) FROM rm_dossiers
             WHERE unit = ANY($4::text[]) AND closed_at >= $1 AND closed_at < $2
             AND closed_position <= $3 AND state = 'completed' AND on_time) AS on_time
"""
#: The same and the overdue dossiers from the dossiers alone (the reference of `overdue_at`).
_PAST_SERVICES_REFERENCE: Final = (
    _PAST_SERVICES
    + """,
          (SELECT count(*) FROM rm_dossiers
             WHERE state = 'open' AND due_at < $5 AND received_position <= $3
             AND unit = ANY($4::text[]))
          + (SELECT count(*) FROM rm_dossiers
             WHERE closed_position IS NOT NULL AND open_positions @> $3::int8
             AND due_at < $5 AND unit = ANY($4::text[])) AS overdue
"""
)
