"""Citizens' field reports (phản ánh hiện trường): every report and every event of each.

Tables (documented for analysts in docs/READ_MODELS.md):

* ``rm_reports``: one row per report with its current state (``new``, ``assigned``,
  ``resolved``, ``rejected``; *overdue* is an assigned report past its ``due_at``, by the
  clock, never stored), the assignment in effect, the resolution or rejection, the
  rating, and the positions of those changes (so "open at position P", "rated by P" are
  answerable for `as_of`). Two generated ranges index the report's open life: by
  positions (``open_positions``, for `as_of`) and by business time (``open_times``, for
  the statistics' open counts at the end of each bucket);
* ``rm_report_history``: every event of every report at its position, with its CloudEvent
  type, time, source and id, the key that sent it and its data; assignments also carry
  their agency and due time, from which the assignment in effect at any moment or
  position is found (the latest by CloudEvent time among those up to it).

The fold follows the aggregate's rules (`ops_center.domain.report`): of the assignments,
the one with the latest CloudEvent time is in effect (ties: the later position); an older
one arriving late is history only.

Each chunk is applied load-fold-store: the touched reports are read in one query, the
events folded in position order in memory, and the rows written back with one COPY for
new reports, one staged UPDATE for the others and one COPY for the history: a few
statements per chunk whatever its size, and the same rows however the log is cut into
chunks (rebuild equals incremental).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar, Final
from uuid import UUID

import orjson

from ops_center.domain.events import names_of
from ops_center.domain.report import ASSIGNED, NEW, REJECTED, RESOLVED, Report
from ops_center.store.log import CLOUDEVENT_TYPES, Event
from projections.projection import Connection, Projection, copy_rows, stage

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rm_reports (
    originator_id uuid PRIMARY KEY,
    code text COLLATE "C" NOT NULL,
    category text NOT NULL,
    title text NOT NULL,
    description text,
    unit text COLLATE "C" NOT NULL,
    channel text NOT NULL,
    lat double precision,
    lon double precision,
    photo_url text,
    received_at timestamptz NOT NULL,
    received_position bigint NOT NULL,
    state text NOT NULL,
    agency text COLLATE "C",
    due_at timestamptz,
    assigned_at timestamptz,
    assigned_position bigint,
    assignments integer NOT NULL,
    closed_at timestamptz,
    closed_position bigint,
    result text,
    on_time boolean,
    reject_reason text,
    duplicate_of text,
    rating text,
    rated_at timestamptz,
    rated_position bigint,
    updated_position bigint NOT NULL,
    open_positions int8range GENERATED ALWAYS AS (
        int8range(received_position, closed_position)) STORED,
    open_times tstzrange GENERATED ALWAYS AS (
        tstzrange(received_at, CASE WHEN closed_at IS NULL THEN NULL
                                    ELSE greatest(received_at, closed_at) END)) STORED
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX IF NOT EXISTS rm_reports_code ON rm_reports (code);
CREATE INDEX IF NOT EXISTS rm_reports_order ON rm_reports (received_at, code);
CREATE INDEX IF NOT EXISTS rm_reports_open ON rm_reports (received_at, code)
    WHERE state IN ('new', 'assigned');
CREATE INDEX IF NOT EXISTS rm_reports_due ON rm_reports (due_at) WHERE state = 'assigned';
CREATE INDEX IF NOT EXISTS rm_reports_closed ON rm_reports (closed_at)
    WHERE closed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS rm_reports_rated ON rm_reports (rated_at) WHERE rated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS rm_reports_open_positions ON rm_reports USING gist (open_positions);
CREATE INDEX IF NOT EXISTS rm_reports_open_times ON rm_reports USING gist (open_times);

CREATE TABLE IF NOT EXISTS rm_report_history (
    originator_id uuid NOT NULL,
    position bigint NOT NULL,
    event text NOT NULL,
    type text NOT NULL,
    time timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    source text NOT NULL,
    event_id text NOT NULL,
    key text,
    agency text,
    due_at timestamptz,
    data jsonb NOT NULL,
    PRIMARY KEY (originator_id, position)
);
"""


@dataclass(slots=True)
class ReportRow:
    """A row of ``rm_reports`` being folded (the stored columns, in table order)."""

    originator_id: UUID
    code: str
    category: str
    title: str
    description: str | None
    unit: str
    channel: str
    lat: float | None
    lon: float | None
    photo_url: str | None
    received_at: datetime
    received_position: int
    state: str
    agency: str | None = None
    due_at: datetime | None = None
    assigned_at: datetime | None = None
    assigned_position: int | None = None
    assignments: int = 0
    closed_at: datetime | None = None
    closed_position: int | None = None
    result: str | None = None
    on_time: bool | None = None
    reject_reason: str | None = None
    duplicate_of: str | None = None
    rating: str | None = None
    rated_at: datetime | None = None
    rated_position: int | None = None
    updated_position: int = 0


#: A row's values in column order (its fields are scalars: no deep copy as `astuple` makes).
_COLUMNS: Final = tuple(ReportRow.__dataclass_fields__)
_values: Final = attrgetter(*_COLUMNS)
#: The columns an event after the reception can change (with the key first).
_CHANGING: Final = (
    ("originator_id", "uuid"),
    ("state", "text"),
    ("agency", "text"),
    ("due_at", "timestamptz"),
    ("assigned_at", "timestamptz"),
    ("assigned_position", "int8"),
    ("assignments", "int4"),
    ("closed_at", "timestamptz"),
    ("closed_position", "int8"),
    ("result", "text"),
    ("on_time", "bool"),
    ("reject_reason", "text"),
    ("duplicate_of", "text"),
    ("rating", "text"),
    ("rated_at", "timestamptz"),
    ("rated_position", "int8"),
    ("updated_position", "int8"),
)
_SELECT: Final = (
    f"SELECT {', '.join(_COLUMNS)} FROM rm_reports WHERE originator_id = ANY($1::uuid[])"
)
_STAGE: Final = "stage_report_changes"
_STAGE_DEFINITION: Final = ", ".join(f"{c} {t}" for c, t in _CHANGING)
_UPDATE: Final = (
    "UPDATE rm_reports r SET "
    + ", ".join(f"{c} = s.{c}" for c, _ in _CHANGING[1:])
    + f" FROM {_STAGE} AS s WHERE r.originator_id = s.originator_id"
)
_HISTORY_COLUMNS: Final = (
    "originator_id",
    "position",
    "event",
    "type",
    "time",
    "recorded_at",
    "source",
    "event_id",
    "key",
    "agency",
    "due_at",
    "data",
)


@dataclass(slots=True)
class _Chunk:
    rows: dict[UUID, ReportRow]
    created: set[UUID] = field(default_factory=set)
    dirty: set[UUID] = field(default_factory=set)
    history: list[tuple[Any, ...]] = field(default_factory=list)


class ReportsProjection(Projection):
    """Citizens' field reports and their histories (see the module docstring)."""

    name: ClassVar[str] = "reports"
    tables: ClassVar[tuple[str, ...]] = ("rm_reports", "rm_report_history")
    events: ClassVar[frozenset[str] | None] = names_of(
        Report, "Received", "Assigned", "Reassigned", "Resolved", "Rejected", "Rated"
    )

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = list({e.originator_id for e in events})
        rows = {row[0]: ReportRow(*row) for row in await conn.fetch(_SELECT, ids)}
        chunk = _Chunk(rows)
        for event in events:
            self._fold(chunk, event)
        if chunk.created:
            await copy_rows(conn, "rm_reports", _COLUMNS, [_values(rows[i]) for i in chunk.created])
        changed = chunk.dirty - chunk.created
        if changed:
            staged = [tuple(getattr(rows[i], c) for c, _ in _CHANGING) for i in changed]
            await stage(conn, _STAGE, _STAGE_DEFINITION, staged)
            await conn.execute(_UPDATE)
        await copy_rows(conn, "rm_report_history", _HISTORY_COLUMNS, chunk.history)

    @staticmethod
    def _fold(chunk: _Chunk, event: Event) -> None:
        state = event.state
        oid = event.originator_id
        position = event.position
        moment = event.time
        what = event.name.partition(".")[2]
        agency: str | None = None
        due_at: datetime | None = None
        if what == "Received":
            if oid in chunk.rows:  # received once (the aggregate refuses a second)
                return
            chunk.rows[oid] = ReportRow(
                originator_id=oid,
                code=state["code"],
                category=state["category"],
                title=state["title"],
                description=state.get("description"),
                unit=state["unit"],
                channel=state["channel"],
                lat=state.get("lat"),
                lon=state.get("lon"),
                photo_url=state.get("photo_url"),
                received_at=moment,
                received_position=position,
                state=NEW,
                updated_position=position,
            )
            chunk.created.add(oid)
        else:
            row = chunk.rows.get(oid)
            if row is None:  # a report is always received first; be defensive
                return
            if what in ("Assigned", "Reassigned"):
                agency = state["agency"]
                due_at = datetime.fromisoformat(state["due_at"])
                row.assignments += 1
                if row.state == NEW:
                    row.state = ASSIGNED
                if row.assigned_at is None or moment >= row.assigned_at:
                    row.agency, row.due_at = agency, due_at
                    row.assigned_at, row.assigned_position = moment, position
            elif what in ("Resolved", "Rejected"):
                row.state = RESOLVED if what == "Resolved" else REJECTED
                row.closed_at, row.closed_position = moment, position
                if what == "Resolved":
                    row.result = state.get("result")
                    row.on_time = bool(state.get("on_time"))
                else:
                    row.reject_reason = state.get("reason")
                    row.duplicate_of = state.get("duplicate_of")
            elif what == "Rated":
                row.rating = state["rating"]
                row.rated_at, row.rated_position = moment, position
            row.updated_position = position
            chunk.dirty.add(oid)
        meta = event.meta
        chunk.history.append(
            (
                oid,
                position,
                what.lower(),
                CLOUDEVENT_TYPES.get(event.name, event.name),
                moment,
                event.recorded,
                meta.get("source", ""),
                meta.get("id", ""),
                meta.get("key"),
                agency,
                due_at,
                orjson.dumps(event.data()).decode(),
            )
        )
