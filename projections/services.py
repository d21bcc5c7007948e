"""Public services: the dossiers of the one-stop-shop system.

Tables (documented for analysts in docs/READ_MODELS.md):

* ``rm_dossiers``: one row per dossier, from reception to completion or withdrawal.
* ``rm_dossier_hours``, ``rm_dossier_days``, ``rm_dossier_months``: counters per bucket (a
  UTC hour; a day or month of Asia/Ho_Chi_Minh), per agency and unit and rolled up (agency
  ``*`` = every agency, unit ``*`` = every unit), at the levels in `LEVELS`.

**Counters.** Per bucket: dossiers received (and of those online), completed on time, late
and withdrawn, by the CloudEvent time of the fact; and the changes of the dossiers in
progress per class. A dossier is in progress at moment m (business time) when received at
or before m and not closed at or before m; at m it is *overdue* when ``due_at < m``, *due
within 24 h* when ``m <= due_at < m + 24 h``, *not yet due* otherwise. So it enters a class
at reception, moves to "due within 24 h" just after ``due_at - 24 h`` and to "overdue" just
after ``due_at``, and leaves at its closing: each move is a -1/+1 pair of ``*_change``
counters in the bucket of the instant it happens, and the dossiers of a class at the end of
a bucket are the sum of its changes over all buckets up to it (a prefix sum: months, then
days, then hours; tens of rows per group, not a row per dossier). In progress thus follows
the clock without any new event. At reception the closing is not known yet: the moves are
counted as if the dossier stayed open, and its closing takes back those that come after
it, at their own instants (so every bucket sums to the same whatever the order of chunks).

``open_due`` is state, not business time: the dossiers not closed by any recorded event
(state ``open``) whose ``due_at`` falls in the bucket; "overdue now" (overview, overdue
list) is its sum over the buckets before now.

``rm_dossier_checkpoints``: at every checkpoint (`projections.checkpoints`), the dossiers
in progress by unit and local day of their due time, from which `as_of` counts the
overdue ones at any moment (`projections.read.checkpoints`).

**Levels.** Hours are counted province-wide and per agency; days also per unit; months
also per agency and unit (see `LEVELS`): a finer grain for a finer group would cost about a
row per dossier and per move. What the counters of a group do not resolve, the queries
read from ``rm_dossiers`` through indexes that lead with unit and agency, where a group's
dossiers are few (`projections.read`).

Events commute (a dossier is received once and closed once; supplement requests only count;
counters are sums): chunks are applied with set-based statements, receptions first, then
closings, which gives the same rows however the log is cut into chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, Final
from uuid import UUID

from ops_center.domain.dossier import Dossier
from ops_center.domain.events import names_of
from ops_center.province.calendar import TZ
from ops_center.store.log import Event
from projections.checkpoints import MARKER, Checkpointed, create_indexes
from projections.projection import Connection, copy_rows

#: Counter tables by grain.
GRAINS: Final = {"hour": "rm_dossier_hours", "day": "rm_dossier_days", "month": "rm_dossier_months"}
#: The agency or unit of a rolled-up counter row: every one.
ALL: Final = "*"
#: Which grains are counted for which groups: ``total`` (agency and unit ``*``),
#: ``agency`` (unit ``*``), ``unit`` (agency ``*``), ``both`` (an agency in a unit).
LEVELS: Final[dict[str, tuple[str, ...]]] = {
    "total": ("hour", "day", "month"),
    "agency": ("hour", "day", "month"),
    "unit": ("day", "month"),
    "both": ("day", "month"),
}
#: The counters of a bucket row, in table order.
COUNTERS: Final = (
    "received",
    "received_online",
    "completed_on_time",
    "completed_late",
    "withdrawn",
    "not_yet_due_change",
    "due_soon_change",
    "overdue_change",
    "open_due",
)
RECEIVED, ONLINE, ON_TIME, LATE, WITHDRAWN, NOT_DUE, DUE_SOON, OVERDUE, OPEN_DUE = range(
    len(COUNTERS)
)
#: The classes of dossiers in progress, as the counters name their changes.
CLASSES: Final = (NOT_DUE, DUE_SOON, OVERDUE)
STATES: Final = ("open", "completed", "withdrawn")

_COUNTER_COLUMNS: Final = ",\n    ".join(f"{c} integer NOT NULL DEFAULT 0" for c in COUNTERS)
_COUNTER_TABLES: Final = "\n".join(
    f"""CREATE TABLE IF NOT EXISTS {table} (
    agency text COLLATE "C" NOT NULL,
    unit text COLLATE "C" NOT NULL,
    start timestamptz NOT NULL,
    {_COUNTER_COLUMNS},
    PRIMARY KEY (agency, unit, start)
) WITH (fillfactor = 80);"""
    for table in GRAINS.values()
)

#: The checkpoints of the dossiers in progress.
CHECKPOINTS: Final = "rm_dossier_checkpoints"

SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS rm_dossiers (
    originator_id uuid PRIMARY KEY,
    code text NOT NULL,
    procedure_code text NOT NULL,
    procedure_name text,
    level text NOT NULL,
    channel text NOT NULL,
    agency text COLLATE "C" NOT NULL,
    unit text COLLATE "C" NOT NULL,
    due_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    received_position bigint NOT NULL,
    state text NOT NULL DEFAULT 'open',
    closed_at timestamptz,
    closed_position bigint,
    result text,
    on_time boolean,
    supplements integer NOT NULL DEFAULT 0,
    last_supplement_at timestamptz,
    updated_position bigint NOT NULL,
    open_positions int8range GENERATED ALWAYS AS (
        int8range(received_position, closed_position)) STORED
);
CREATE INDEX IF NOT EXISTS rm_dossiers_received ON rm_dossiers (unit, received_at)
    INCLUDE (agency, channel, due_at, closed_at, received_position);
CREATE INDEX IF NOT EXISTS rm_dossiers_closed ON rm_dossiers (unit, closed_at)
    INCLUDE (agency, state, on_time, received_at, due_at, closed_position)
    WHERE closed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS rm_dossiers_due ON rm_dossiers (unit, due_at)
    INCLUDE (agency, state, received_at, closed_at);
CREATE INDEX IF NOT EXISTS rm_dossiers_open_due ON rm_dossiers (due_at)
    INCLUDE (agency, unit, received_position) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS rm_dossiers_closed_positions ON rm_dossiers USING gist (open_positions)
    WHERE closed_position IS NOT NULL;
{_COUNTER_TABLES}
CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
    position bigint NOT NULL,
    unit text COLLATE "C" NOT NULL,
    due_day timestamptz NOT NULL,
    open integer NOT NULL,
    PRIMARY KEY (position, unit, due_day)
);
"""

#: The indexes the `as_of` readers need to find the dossiers received and closed since a
#: checkpoint (made only with checkpoints on).
CHECKPOINT_INDEXES: Final = {
    "rm_dossiers_received_position": (
        "ON rm_dossiers (received_position) INCLUDE (unit, due_at, closed_position)"
    ),
    "rm_dossiers_closing_position": (
        "ON rm_dossiers (closed_position) INCLUDE (unit, due_at, received_position) "
        "WHERE closed_position IS NOT NULL"
    ),
}

#: A checkpoint (`projections.checkpoints`): the dossiers in progress (state ``open``) by
#: unit and local day of their due time, and the marker row.
_CHECKPOINT: Final = f"""
INSERT INTO {CHECKPOINTS} (position, unit, due_day, open)
SELECT $1::int8, unit, date_trunc('day', due_at, '{TZ.key}'), count(*) FROM rm_dossiers
WHERE state = 'open' GROUP BY 2, 3
UNION ALL SELECT $1::int8, '{MARKER}', '-infinity', 0
"""

#: Objects of earlier versions of this projection, dropped when the counters are created.
_OBSOLETE: Final = """
DROP TABLE IF EXISTS rm_dossiers;
"""

_INSERT_COLUMNS: Final = (
    "originator_id",
    "code",
    "procedure_code",
    "procedure_name",
    "level",
    "channel",
    "agency",
    "unit",
    "due_at",
    "received_at",
    "received_position",
    "updated_position",
)

_SUPPLEMENTS: Final = """
UPDATE rm_dossiers d SET supplements = d.supplements + s.n,
    last_supplement_at = greatest(d.last_supplement_at, s.at),
    updated_position = greatest(d.updated_position, s.position)
FROM unnest($1::uuid[], $2::int4[], $3::timestamptz[], $4::int8[]) AS s(o, n, at, position)
WHERE d.originator_id = s.o
"""

_CLOSE: Final = """
UPDATE rm_dossiers d SET state = c.state, closed_at = c.at, closed_position = c.position,
    result = c.result, on_time = c.on_time,
    updated_position = greatest(d.updated_position, c.position)
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[], $5::text[], $6::bool[])
    AS c(o, state, at, position, result, on_time)
WHERE d.originator_id = c.o
RETURNING d.agency, d.unit, d.received_at AS r, d.due_at AS due, c.at AS c, c.state, c.on_time
"""

# The UPDATEs above join a chunk's few thousand ids with a table of millions of dossiers:
# probing the primary key per id costs the same at any size, where the hash join the
# planner picks for large chunks reads the whole table every time.
_INDEX_JOINS: Final = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
_DEFAULT_JOINS: Final = (
    "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT"
)


_LEVEL_COLUMNS: Final = {
    "total": (),
    "agency": ("agency",),
    "unit": ("unit",),
    "both": ("agency", "unit"),
}
_DAY: Final = "interval '24 hours'"
_US_SQL: Final = "interval '1 microsecond'"


def _upsert(grain: str, source: str) -> str:
    levels = [level for level, grains in LEVELS.items() if grain in grains]
    sets = ", ".join(f"({', '.join((*_LEVEL_COLUMNS[level], grain))})" for level in levels)
    grouped = {c for level in levels for c in _LEVEL_COLUMNS[level]}
    agency = "coalesce(agency, '*')" if "agency" in grouped else f"'{ALL}'"
    unit = "coalesce(unit, '*')" if "unit" in grouped else f"'{ALL}'"
    sums = ", ".join(f"sum({c})::int4" for c in COUNTERS)
    updates = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in COUNTERS)
    return f"""INSERT INTO {GRAINS[grain]} AS t (agency, unit, start, {", ".join(COUNTERS)})
    SELECT {agency}, {unit}, {grain}, {sums} FROM {source}
    GROUP BY GROUPING SETS ({sets}) ORDER BY 1, 2, 3
    ON CONFLICT (agency, unit, start) DO UPDATE SET {updates}"""


#: One statement per chunk: closes the dossiers closed ($1-$6, as `_CLOSE`), and adds the
#: counter changes of those and of the dossiers received ($7, their ids; already stored)
#: to the three tables. Each dossier makes a few points in time with changes (see the
#: module docstring); points are summed per agency, unit, UTC hour and local day, then
#: rolled up to the rows of `LEVELS` with GROUPING SETS.
_SUMS: Final = ", ".join(f"sum({c}) AS {c}" for c in COUNTERS)
_APPLY: Final = f"""
WITH closed AS ({_CLOSE}), received AS (
    SELECT agency, unit, received_at AS r, due_at AS due, channel FROM rm_dossiers
    WHERE originator_id = ANY($7::uuid[])
), points (agency, unit, t, {", ".join(COUNTERS)}) AS (
    SELECT agency, unit, p.* FROM received, LATERAL (VALUES
        (r, 1, (channel = 'online')::int, 0, 0, 0, 1, 0, 0, 0),
        (greatest(r, due - {_DAY} + {_US_SQL}), 0, 0, 0, 0, 0, -1, 1, 0, 0),
        (greatest(r, due + {_US_SQL}), 0, 0, 0, 0, 0, 0, -1, 1, 0),
        (due, 0, 0, 0, 0, 0, 0, 0, 0, 1)) AS p
    UNION ALL
    SELECT agency, unit, p.* FROM closed, LATERAL (VALUES
        (c, 0, 0, (state = 'completed' AND on_time IS TRUE)::int,
            (state = 'completed' AND on_time IS FALSE)::int, (state = 'withdrawn')::int,
            0, 0, 0, 0),
        (greatest(r, c), 0, 0, 0, 0, 0, -1, 0, 0, 0),
        (greatest(r, due - {_DAY} + {_US_SQL}, c), 0, 0, 0, 0, 0, 1, -1, 0, 0),
        (greatest(r, due + {_US_SQL}, c), 0, 0, 0, 0, 0, 0, 1, -1, 0),
        (due, 0, 0, 0, 0, 0, 0, 0, 0, -1)) AS p
), cells AS MATERIALIZED (
    SELECT agency, unit, hour, day, date_trunc('month', day, '{TZ.key}') AS month,
        {", ".join(COUNTERS)}
    FROM (
        SELECT agency, unit, date_trunc('hour', t, 'UTC') AS hour,
            date_trunc('day', t, '{TZ.key}') AS day, {_SUMS}
        FROM points GROUP BY 1, 2, 3, 4
    ) x
), hours AS ({_upsert("hour", "cells")}
), days AS ({_upsert("day", "cells")}
){_upsert("month", "cells")}
"""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
US_PER_HOUR: Final = 3_600_000_000
US_PER_DAY: Final = 24 * US_PER_HOUR


def microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact integer arithmetic)."""
    return (moment - _EPOCH) // _US


def instant(us: int) -> datetime:
    """The instant `us` microseconds after the Unix epoch (UTC)."""
    return _EPOCH + timedelta(microseconds=us)


def local_day(moment: datetime) -> datetime:
    """The start of the local day (Asia/Ho_Chi_Minh) containing `moment`."""
    return datetime.combine(moment.astimezone(TZ).date(), time(), TZ)


def local_month(moment: datetime) -> datetime:
    """The start of the local month containing `moment`."""
    return datetime.combine(moment.astimezone(TZ).date().replace(day=1), time(), TZ)


def grain_start(moment: datetime, grain: str) -> datetime:
    """The start of the counter bucket of `grain` containing `moment`."""
    if grain == "hour":
        return instant(microseconds(moment) // US_PER_HOUR * US_PER_HOUR)
    return local_day(moment) if grain == "day" else local_month(moment)


def grain_next(start: datetime, grain: str) -> datetime:
    """The start of the counter bucket of `grain` after the one starting at `start`."""
    if grain == "hour":
        return start + timedelta(hours=1)
    local = start.astimezone(TZ).date()
    if grain == "day":
        return datetime.combine(local + timedelta(days=1), time(), TZ)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime.combine(local.replace(year=year, month=month, day=1), time(), TZ)


class ServicesProjection(Checkpointed):
    """Dossiers of the one-stop-shop system and their counters (see the module docstring)."""

    name: ClassVar[str] = "services"
    tables: ClassVar[tuple[str, ...]] = ("rm_dossiers", *GRAINS.values(), CHECKPOINTS)
    checkpoint_table = CHECKPOINTS
    events: ClassVar[frozenset[str] | None] = names_of(
        Dossier, "Received", "SupplementRequested", "Completed", "Withdrawn"
    )

    async def setup(self, conn: Connection) -> None:
        counted = await conn.fetchval("SELECT to_regclass('rm_dossier_hours') IS NOT NULL")
        if not counted:
            # A database of an earlier version of this projection (a no-op on a fresh
            # one): its dossiers table is made again and the projection starts from zero,
            # so that the counters count every dossier.
            await conn.execute(_OBSOLETE)
            await conn.execute(
                "UPDATE projection_positions SET position = 0 WHERE name = $1", self.name
            )
        await conn.execute(SCHEMA)
        await create_indexes(conn, CHECKPOINT_INDEXES, self.checkpoint_interval)

    async def write_checkpoint(self, conn: Connection, position: int) -> None:
        await conn.execute(_CHECKPOINT, position)

    async def apply_events(self, conn: Connection, events: Sequence[Event]) -> None:
        received: list[tuple[Any, ...]] = []
        supplements: dict[UUID, list[Any]] = {}
        closed: list[list[Any]] = [[] for _ in range(6)]
        for event in events:
            state = event.state
            what = event.name.partition(".")[2]
            if what == "Received":
                at = event.time
                due_at = datetime.fromisoformat(state["due_at"])
                agency, unit = state["agency"], state["unit"]
                received.append(
                    (
                        event.originator_id,
                        state["code"],
                        state["procedure_code"],
                        state.get("procedure_name"),
                        state["level"],
                        state["channel"],
                        agency,
                        unit,
                        due_at,
                        at,
                        event.position,
                        event.position,
                    )
                )
            elif what == "SupplementRequested":
                entry = supplements.get(event.originator_id)
                if entry is None:
                    supplements[event.originator_id] = [1, event.time, event.position]
                else:
                    entry[0] += 1
                    entry[1] = max(entry[1], event.time)
                    entry[2] = event.position
            elif what in ("Completed", "Withdrawn"):
                row = (
                    event.originator_id,
                    "completed" if what == "Completed" else "withdrawn",
                    event.time,
                    event.position,
                    state.get("result"),
                    state.get("on_time"),
                )
                for column, value in zip(closed, row, strict=True):
                    column.append(value)
        await copy_rows(conn, "rm_dossiers", _INSERT_COLUMNS, received)
        await conn.execute(_INDEX_JOINS)
        if supplements:
            await conn.execute(
                _SUPPLEMENTS,
                list(supplements),
                [v[0] for v in supplements.values()],
                [v[1] for v in supplements.values()],
                [v[2] for v in supplements.values()],
            )
        if received or closed[0]:
            # after the receptions are stored, so that a dossier received in this chunk
            # is found by its closing
            await conn.execute(_APPLY, *closed, [row[0] for row in received])
        await conn.execute(_DEFAULT_JOINS)
