"""Public services: the dossiers of the one-stop-shop system.

Table ``rm_dossiers`` (documented in docs/READ_MODELS.md): one row per dossier, from
reception to completion or withdrawal. Being in progress, due within 24 h or overdue is
not stored: it depends on the clock and is computed at query time from ``due_at``, so a
dossier becomes overdue when its due time passes, without any new event.

Two generated ranges serve the queries: ``open_during`` (business time: from the
reception's to the closing's CloudEvent time) for "in progress as of the end of a bucket",
and ``open_positions`` (log positions) for `as_of` answers.

Events commute here (a dossier is received once and closed once; supplement requests only
count), so chunks are applied with set-based statements and no reads: inserts first, then
updates, which gives the same rows however the log is cut into chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from projections.events import Event
from projections.runner import Connection, Projection, copy_rows

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rm_dossiers (
    originator_id uuid PRIMARY KEY,
    code text NOT NULL UNIQUE,
    procedure_code text NOT NULL,
    procedure_name text,
    level text NOT NULL,
    channel text NOT NULL,
    agency text NOT NULL,
    unit text NOT NULL,
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
    open_during tstzrange GENERATED ALWAYS AS (tstzrange(received_at,
        CASE WHEN closed_at < received_at THEN received_at ELSE closed_at END)) STORED,
    open_positions int8range GENERATED ALWAYS AS (
        int8range(received_position, closed_position)) STORED
);
CREATE INDEX IF NOT EXISTS rm_dossiers_received_at ON rm_dossiers (received_at)
    INCLUDE (channel, agency, unit, received_position);
CREATE INDEX IF NOT EXISTS rm_dossiers_closed_at ON rm_dossiers (closed_at)
    INCLUDE (state, on_time, agency, unit, closed_position);
CREATE INDEX IF NOT EXISTS rm_dossiers_open_due ON rm_dossiers (due_at) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS rm_dossiers_open_during ON rm_dossiers USING gist (open_during);
CREATE INDEX IF NOT EXISTS rm_dossiers_open_positions ON rm_dossiers USING gist (open_positions);
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
"""


class ServicesProjection(Projection):
    """Dossiers of the one-stop-shop system (see the module docstring)."""

    name: ClassVar[str] = "services"
    tables: ClassVar[tuple[str, ...]] = ("rm_dossiers",)
    events: ClassVar[frozenset[str] | None] = frozenset(
        {
            "Dossier.Received",
            "Dossier.SupplementRequested",
            "Dossier.Completed",
            "Dossier.Withdrawn",
        }
    )

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        received: list[tuple[Any, ...]] = []
        supplements: dict[UUID, list[Any]] = {}
        closed: list[list[Any]] = [[] for _ in range(6)]
        for event in events:
            state = event.state
            what = event.name.partition(".")[2]
            if what == "Received":
                row: tuple[Any, ...] = (
                    event.originator_id,
                    state["code"],
                    state["procedure_code"],
                    state.get("procedure_name"),
                    state["level"],
                    state["channel"],
                    state["agency"],
                    state["unit"],
                    datetime.fromisoformat(state["due_at"]),
                    event.time,
                    event.position,
                    event.position,
                )
                received.append(row)
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
        if supplements:
            await conn.execute(
                _SUPPLEMENTS,
                list(supplements),
                [v[0] for v in supplements.values()],
                [v[1] for v in supplements.values()],
                [v[2] for v in supplements.values()],
            )
        if closed[0]:
            await conn.execute(_CLOSE, *closed)
