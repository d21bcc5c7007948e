"""Devices: cameras and radio stations by kind, status and unit, and one device."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final
from uuid import UUID

from ops_center.domain import subject_id
from ops_center.province.calendar import iso
from projections.projection import Connection
from projections.read.common import Query, positions

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


async def devices_by_id(
    conn: Connection, ids: Sequence[UUID]
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The devices with these aggregate ids as the devices query answers them (cameras,
    then stations, by code), and their rows (``originator_id``, ``kind``, ``unit``...)."""
    rows = await conn.fetch(
        f"SELECT {_DEVICE_FIELDS} FROM rm_devices "
        "WHERE originator_id = ANY($1::uuid[]) ORDER BY kind, code",
        ids,
    )
    items = [_device_json(row) for row in rows]
    radio = [row["originator_id"] for row in rows if row["kind"] == "radio"]
    faults, on_air = await _radio_extras(conn, radio)
    for item, row in zip(items, rows, strict=True):
        if row["kind"] == "radio":
            item["faults"] = faults[row["originator_id"]]
            item["broadcasts_active"] = len(on_air[row["originator_id"]])
    return items, list(rows)
