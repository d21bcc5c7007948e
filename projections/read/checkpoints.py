"""`as_of` from checkpoints: the counts at the last checkpoint at or before a position,
plus the history between them (`projections.checkpoints` writes them).

Each reader gives exactly what the history tables give at that position (the reference
readers in `projections.read.overview`, ``checkpoints=False``): a checkpoint holds the
state after every event at or before its position, and the history of the interval
turns it into the state at the position asked. Without a checkpoint at or before it the
readers start from position 0 (nothing): exact, only slower.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Final

from projections.checkpoints import MARKER, last_checkpoint
from projections.projection import Connection
from projections.read.common import Query
from projections.services import CHECKPOINTS, local_day

DEVICE_CHECKPOINTS: Final = "rm_device_checkpoints"

# $1 the checkpoint, $2 the position. The devices changed in ($1, $2]: their state at the
# checkpoint is taken back, their state at the position added (the latest history row at
# or before each, one primary-key probe per changed device).
_DEVICE_COUNTS: Final = f"""
WITH changed AS (
    SELECT DISTINCT originator_id FROM rm_device_history
    WHERE from_position > $1 AND from_position <= $2
), moves AS (
    SELECT kind, unit, status, devices::int8 AS n FROM {DEVICE_CHECKPOINTS}
    WHERE position = $1 AND unit <> '{MARKER}'
  UNION ALL
    SELECT b.kind, b.unit, b.status, -1 FROM changed c CROSS JOIN LATERAL (
        SELECT h.kind, h.unit, h.status FROM rm_device_history h
        WHERE h.originator_id = c.originator_id AND h.from_position <= $1
        ORDER BY h.from_position DESC LIMIT 1) b
  UNION ALL
    SELECT a.kind, a.unit, a.status, 1 FROM changed c CROSS JOIN LATERAL (
        SELECT h.kind, h.unit, h.status FROM rm_device_history h
        WHERE h.originator_id = c.originator_id AND h.from_position <= $2
        ORDER BY h.from_position DESC LIMIT 1) a
)
SELECT kind, status, sum(n)::int8 AS n FROM moves WHERE status IS NOT NULL {{units}}
GROUP BY 1, 2
"""


async def device_counts_at(
    conn: Connection, units: Collection[str] | None, position: int
) -> list[tuple[str, str, int]]:
    """(kind, status, devices) of the devices with a status at `position`, in `units`."""
    at = await last_checkpoint(conn, DEVICE_CHECKPOINTS, position)
    query = Query(at, position)
    where = "" if units is None else f"AND unit = ANY({query.arg(list(units))}::text[])"
    rows = await conn.fetch(_DEVICE_COUNTS.format(units=where), *query.args)
    return [(row["kind"], row["status"], int(row["n"])) for row in rows]


# $1 the checkpoint, $2 the position, $3 the moment, $4 its local midnight, $5 the units.
# In progress at $2 = in progress at $1, less those closed in ($1, $2], plus those received
# in ($1, $2] and not closed by $2; of those at $1, the days due before $4 are counted by
# the checkpoint and the day of $3 is read up to $3 (one day of dossiers per unit).
_OVERDUE: Final = f"""
SELECT
  (SELECT coalesce(sum(open), 0) FROM {CHECKPOINTS}
     WHERE position = $1 AND unit = ANY($5::text[]) AND due_day < $4)
  + (SELECT count(*) FROM rm_dossiers
     WHERE unit = ANY($5::text[]) AND due_at >= $4 AND due_at < $3
     AND received_position <= $1 AND (closed_position IS NULL OR closed_position > $1))
  - (SELECT count(*) FROM rm_dossiers
     WHERE closed_position > $1 AND closed_position <= $2 AND received_position <= $1
     AND due_at < $3 AND unit = ANY($5::text[]))
  + (SELECT count(*) FROM rm_dossiers
     WHERE received_position > $1 AND received_position <= $2
     AND (closed_position IS NULL OR closed_position > $2)
     AND due_at < $3 AND unit = ANY($5::text[]))
"""


async def overdue_at(conn: Connection, units: list[str], clock: datetime, position: int) -> int:
    """The dossiers of `units` in progress at `position` and due before `clock`."""
    at = await last_checkpoint(conn, CHECKPOINTS, position)
    found = await conn.fetchval(_OVERDUE, at, position, clock, local_day(clock), units)
    return int(found)
