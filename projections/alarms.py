"""Alarms: every alarm with its current state, and the history of each.

Tables (documented in docs/READ_MODELS.md):

* ``rm_alarms``: one row per alarm (an occurrence of a cause on a subject), with what it
  shows now, its state (``active``, ``acknowledged``, ``resolved``), who acknowledged and
  resolved it, when, with their notes, and the positions of those changes (so "active at
  position P" is answerable for `as_of`);
* ``rm_alarm_history``: every event of every alarm (raised, repeated, acknowledged,
  resolved), at its position.

Each chunk is applied load-fold-store (the touched alarms are read in one query, folded
in position order, written back), so a rebuild gives the same rows as incremental work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar, Final
from uuid import UUID

import orjson

from ops_center.domain.alarm import Alarm
from ops_center.domain.events import names_of
from ops_center.store.log import Event
from projections.projection import Connection, Projection, copy_rows

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rm_alarms (
    id uuid PRIMARY KEY,
    cause text NOT NULL,
    subject_kind text NOT NULL,
    subject text NOT NULL,
    occurrence integer NOT NULL,
    unit text,
    severity text NOT NULL,
    summary text NOT NULL,
    detail jsonb NOT NULL,
    state text NOT NULL,
    repeats integer NOT NULL,
    raised_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    acknowledged_note text,
    resolved_at timestamptz,
    resolved_by text,
    resolved_note text,
    resolved_automatically boolean,
    raised_position bigint NOT NULL,
    acknowledged_position bigint,
    resolved_position bigint,
    updated_position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_alarms_open ON rm_alarms (raised_at DESC, id DESC)
    WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS rm_alarms_order ON rm_alarms (raised_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS rm_alarms_subject ON rm_alarms (cause, subject_kind, subject);
CREATE INDEX IF NOT EXISTS rm_alarms_positions ON rm_alarms (raised_position);

CREATE TABLE IF NOT EXISTS rm_alarm_history (
    id uuid NOT NULL,
    position bigint NOT NULL,
    event text NOT NULL,
    at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    by text,
    note text,
    state text NOT NULL,
    severity text NOT NULL,
    summary text NOT NULL,
    detail jsonb NOT NULL,
    PRIMARY KEY (id, position)
);
"""


@dataclass(slots=True)
class AlarmRow:
    """A row of ``rm_alarms`` being folded (columns in table order)."""

    id: UUID
    cause: str
    subject_kind: str
    subject: str
    occurrence: int
    unit: str | None
    severity: str
    summary: str
    detail: str  # JSON text
    state: str
    repeats: int
    raised_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_note: str | None
    resolved_automatically: bool | None
    raised_position: int
    acknowledged_position: int | None
    resolved_position: int | None
    updated_position: int


#: A row's values in column order (its fields are scalars: no deep copy as `astuple` makes).
_COLUMNS: Final = tuple(AlarmRow.__dataclass_fields__)
_values: Final = attrgetter(*_COLUMNS)
_TYPES: Final = {
    "id": "uuid",
    "occurrence": "int4",
    "detail": "jsonb",
    "repeats": "int4",
    "raised_at": "timestamptz",
    "updated_at": "timestamptz",
    "acknowledged_at": "timestamptz",
    "resolved_at": "timestamptz",
    "resolved_automatically": "bool",
    "raised_position": "int8",
    "acknowledged_position": "int8",
    "resolved_position": "int8",
    "updated_position": "int8",
}
_UPSERT: Final = (
    f"INSERT INTO rm_alarms ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(_COLUMNS, start=1))
    + ") ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
)
_SELECT: Final = (
    f"SELECT {', '.join(c + '::text' if c == 'detail' else c for c in _COLUMNS)} "
    "FROM rm_alarms WHERE id = ANY($1::uuid[])"
)
_HISTORY_COLUMNS: Final = (
    "id",
    "position",
    "event",
    "at",
    "recorded_at",
    "by",
    "note",
    "state",
    "severity",
    "summary",
    "detail",
)


class AlarmsProjection(Projection):
    """Alarms and their histories (see the module docstring)."""

    name: ClassVar[str] = "alarms"
    tables: ClassVar[tuple[str, ...]] = ("rm_alarms", "rm_alarm_history")
    events: ClassVar[frozenset[str] | None] = names_of(
        Alarm, "Raised", "Repeated", "Acknowledged", "Resolved"
    )

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = list({e.originator_id for e in events})
        rows = {row[0]: AlarmRow(*row) for row in await conn.fetch(_SELECT, ids)}
        dirty: set[UUID] = set()
        history: list[tuple[Any, ...]] = []
        for event in events:
            row = self._fold(rows, event)
            if row is None:
                continue
            dirty.add(row.id)
            state = event.state
            history.append(
                (
                    row.id,
                    event.position,
                    event.name.partition(".")[2].lower(),
                    datetime.fromisoformat(state["at"]),
                    event.recorded,
                    state.get("by"),
                    state.get("note"),
                    row.state,
                    row.severity,
                    row.summary,
                    row.detail,
                )
            )
        if dirty:
            values = [_values(rows[i]) for i in dirty]
            await conn.execute(_UPSERT, *[list(c) for c in zip(*values, strict=True)])
        await copy_rows(conn, "rm_alarm_history", _HISTORY_COLUMNS, history)

    @staticmethod
    def _fold(rows: dict[UUID, AlarmRow], event: Event) -> AlarmRow | None:
        state = event.state
        at = datetime.fromisoformat(state["at"])
        position = event.position
        what = event.name.partition(".")[2]
        if what == "Raised":
            row = AlarmRow(
                id=event.originator_id,
                cause=state["cause"],
                subject_kind=state["subject_kind"],
                subject=state["subject"],
                occurrence=state["occurrence"],
                unit=state.get("unit"),
                severity=state["severity"],
                summary=state["summary"],
                detail=orjson.dumps(state["detail"]).decode(),
                state="active",
                repeats=0,
                raised_at=at,
                updated_at=at,
                acknowledged_at=None,
                acknowledged_by=None,
                acknowledged_note=None,
                resolved_at=None,
                resolved_by=None,
                resolved_note=None,
                resolved_automatically=None,
                raised_position=position,
                acknowledged_position=None,
                resolved_position=None,
                updated_position=position,
            )
            rows[row.id] = row
            return row
        found = rows.get(event.originator_id)
        if found is None:  # an alarm is always raised first; be defensive
            return None
        row = found
        row.updated_at = max(row.updated_at, at)
        row.updated_position = position
        if what == "Repeated":
            row.unit = state.get("unit")
            row.severity = state["severity"]
            row.summary = state["summary"]
            row.detail = orjson.dumps(state["detail"]).decode()
            row.repeats += 1
        elif what == "Acknowledged":
            row.state = "acknowledged"
            row.acknowledged_at = at
            row.acknowledged_by = state.get("by")
            row.acknowledged_note = state.get("note")
            row.acknowledged_position = position
        elif what == "Resolved":
            row.state = "resolved"
            row.resolved_at = at
            row.resolved_by = state.get("by")
            row.resolved_note = state.get("note")
            row.resolved_automatically = bool(state.get("automatic"))
            row.resolved_position = position
        return row
