"""The feed: the latest events, newest first."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from ops_center.province.calendar import iso
from projections.projection import Connection
from projections.read.common import Query, positions

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
