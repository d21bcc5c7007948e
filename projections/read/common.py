"""What every reader shares: positions, `position_at` (the moment of an `as_of`), the
WHERE builder `Query`, the `Scope` of an answer."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from ops_center.store.log import EVENTS_TABLE
from projections.projection import POSITIONS_TABLE, Connection

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


@dataclass(frozen=True, slots=True)
class Scope:
    """Which units (with their descendants) and KPI owners an answer covers; None: all."""

    units: Collection[str] | None = None
    owners: Collection[str] | None = None


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)
