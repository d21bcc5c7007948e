"""Devices: cameras and commune radio stations, their speaker clusters and broadcasts.

Tables (documented for analysts in docs/READ_MODELS.md):

* ``rm_devices``: one row per camera or station with its current details and status;
* ``rm_device_history``: every change of a device's (unit, status), at the position that
  made it, for `as_of` answers (the state at position P is the row with the greatest
  ``from_position`` <= P). Rows are only inserted, never updated, and only changes add
  rows, so a stream of unchanged heartbeats costs nothing here;
* ``rm_radio_clusters``: per station and speaker cluster, its fault (NULL when working);
* ``rm_broadcasts``: every broadcast with its start and (once ended) end;
* ``rm_device_checkpoints``: the devices by unit, kind and status at every checkpoint
  (`projections.checkpoints`), for `as_of` answers with the history since.

Late events follow the aggregates' rule: a status, registration, cluster report or alert
older (by CloudEvent `time`) than what is already applied is history only; on equal times
the later position wins.

Each chunk is applied load-fold-store: the touched rows are read in one query per table,
the events are folded in Python in position order, and the changed rows are written back
with one set-based statement per table. The result does not depend on how the log is cut
into chunks, so a rebuild gives exactly the tables that incremental processing gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from ops_center.domain.camera import Camera
from ops_center.domain.events import names_of
from ops_center.domain.radio import RadioStation
from ops_center.store.log import Event
from projections.checkpoints import MARKER, Checkpointed, create_indexes
from projections.projection import Connection, copy_rows, stage

CAMERA: Final = "camera"
RADIO: Final = "radio"

_KINDS: Final = {"Camera": CAMERA, "RadioStation": RADIO}

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rm_devices (
    originator_id uuid PRIMARY KEY,
    kind text NOT NULL,
    code text NOT NULL,
    name text NOT NULL,
    unit text NOT NULL,
    camera_kind text,
    clusters integer,
    lat double precision,
    lon double precision,
    registered_at timestamptz NOT NULL,
    status text,
    status_at timestamptz,
    last_alert_id text,
    last_alert_category text,
    last_alert_severity text,
    last_alert_at timestamptz,
    created_position bigint NOT NULL,
    updated_position bigint NOT NULL,
    UNIQUE (kind, code)
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS rm_device_history (
    originator_id uuid NOT NULL,
    from_position bigint NOT NULL,
    kind text NOT NULL,
    unit text NOT NULL,
    status text,
    PRIMARY KEY (originator_id, from_position)
);

CREATE TABLE IF NOT EXISTS rm_radio_clusters (
    originator_id uuid NOT NULL,
    cluster integer NOT NULL,
    fault text,
    reported_at timestamptz NOT NULL,
    updated_position bigint NOT NULL,
    PRIMARY KEY (originator_id, cluster)
);

CREATE TABLE IF NOT EXISTS rm_broadcasts (
    originator_id uuid NOT NULL,
    broadcast_id text NOT NULL,
    start_position bigint NOT NULL,
    station text NOT NULL,
    unit text NOT NULL,
    program text NOT NULL,
    kind text NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    end_position bigint,
    on_air int8range GENERATED ALWAYS AS (int8range(start_position, end_position)) STORED,
    PRIMARY KEY (originator_id, broadcast_id, start_position)
);
CREATE INDEX IF NOT EXISTS rm_broadcasts_active
    ON rm_broadcasts (originator_id) WHERE end_position IS NULL;
CREATE INDEX IF NOT EXISTS rm_broadcasts_on_air ON rm_broadcasts USING gist (on_air);

CREATE TABLE IF NOT EXISTS rm_device_checkpoints (
    position bigint NOT NULL,
    unit text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    devices integer NOT NULL,
    PRIMARY KEY (position, unit, kind, status)
);
"""

#: The index the `as_of` readers need to find the history since a checkpoint (made only
#: with checkpoints on: the benchmark's rebuild without them goes without it too).
CHECKPOINT_INDEXES: Final = {
    "rm_device_history_position": "ON rm_device_history (from_position)",
}

#: A checkpoint (`projections.checkpoints`): the devices with a status, by unit, kind and
#: status, and the marker row.
_CHECKPOINT: Final = f"""
INSERT INTO rm_device_checkpoints (position, unit, kind, status, devices)
SELECT $1::int8, unit, kind, status, count(*) FROM rm_devices WHERE status IS NOT NULL
GROUP BY unit, kind, status
UNION ALL SELECT $1::int8, '{MARKER}', '', '', 0
"""

_DEVICE_COLUMNS: Final = (
    ("originator_id", "uuid"),
    ("kind", "text"),
    ("code", "text"),
    ("name", "text"),
    ("unit", "text"),
    ("camera_kind", "text"),
    ("clusters", "int4"),
    ("lat", "float8"),
    ("lon", "float8"),
    ("registered_at", "timestamptz"),
    ("status", "text"),
    ("status_at", "timestamptz"),
    ("last_alert_id", "text"),
    ("last_alert_category", "text"),
    ("last_alert_severity", "text"),
    ("last_alert_at", "timestamptz"),
    ("created_position", "int8"),
    ("updated_position", "int8"),
)


def _upsert(table: str, columns: Sequence[tuple[str, str]], key: Sequence[str]) -> str:
    names = ", ".join(c for c, _ in columns)
    arrays = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(columns, start=1))
    updates = ", ".join(f"{c} = excluded.{c}" for c, _ in columns if c not in key)
    return (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_INSERT_DEVICES: Final = (
    f"INSERT INTO rm_devices ({', '.join(c for c, _ in _DEVICE_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(_DEVICE_COLUMNS, start=1))
    + ")"
)


def _update(columns: Sequence[tuple[str, str]]) -> str:
    """Existing rows are updated in place (no speculative insertion; HOT when possible)."""
    return (
        "UPDATE rm_devices d SET "
        + ", ".join(f"{c} = u.{c}" for c, _ in columns[1:])
        + " FROM unnest("
        + ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(columns, start=1))
        + f") AS u({', '.join(c for c, _ in columns)}) "
        "WHERE d.originator_id = u.originator_id"
    )


_UPDATE_DEVICES: Final = _update(_DEVICE_COLUMNS)
#: The columns that change without a new registration (most updates: fewer to send).
_STATE_COLUMNS: Final = (
    ("originator_id", "uuid"),
    ("status", "text"),
    ("status_at", "timestamptz"),
    ("last_alert_id", "text"),
    ("last_alert_category", "text"),
    ("last_alert_severity", "text"),
    ("last_alert_at", "timestamptz"),
    ("updated_position", "int8"),
)
_STAGE_STATES: Final = "stage_device_states"
_STAGE_DEFINITION: Final = ", ".join(f"{c} {t}" for c, t in _STATE_COLUMNS)
_UPDATE_STATES: Final = (
    "UPDATE rm_devices d SET "
    + ", ".join(f"{c} = u.{c}" for c, _ in _STATE_COLUMNS[1:])
    + f" FROM {_STAGE_STATES} AS u WHERE d.originator_id = u.originator_id"
)
_HISTORY_COLUMNS: Final = ("originator_id", "from_position", "kind", "unit", "status")
_SELECT_DEVICES: Final = (
    f"SELECT {', '.join(c for c, _ in _DEVICE_COLUMNS)} FROM rm_devices "
    "WHERE originator_id = ANY($1::uuid[])"
)
_SELECT_CLUSTERS: Final = """
SELECT originator_id, cluster, fault, reported_at, updated_position FROM rm_radio_clusters
WHERE originator_id = ANY($1::uuid[])
"""
_UPSERT_CLUSTERS: Final = _upsert(
    "rm_radio_clusters",
    [
        ("originator_id", "uuid"),
        ("cluster", "int4"),
        ("fault", "text"),
        ("reported_at", "timestamptz"),
        ("updated_position", "int8"),
    ],
    ["originator_id", "cluster"],
)
_INSERT_BROADCASTS: Final = """
INSERT INTO rm_broadcasts (originator_id, broadcast_id, start_position, station, unit, program,
                           kind, started_at, ended_at, end_position)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::int8[])
"""
_END_BROADCASTS: Final = """
UPDATE rm_broadcasts b SET ended_at = e.ended_at, end_position = e.position
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[])
    AS e(originator_id, broadcast_id, ended_at, position)
WHERE b.originator_id = e.originator_id AND b.broadcast_id = e.broadcast_id
  AND b.end_position IS NULL AND b.start_position < e.position
"""


@dataclass(slots=True)
class Device:
    """A row of ``rm_devices`` being folded."""

    originator_id: UUID
    kind: str
    code: str
    name: str
    unit: str
    camera_kind: str | None
    clusters: int | None
    lat: float | None
    lon: float | None
    registered_at: datetime
    status: str | None
    status_at: datetime | None
    last_alert_id: str | None
    last_alert_category: str | None
    last_alert_severity: str | None
    last_alert_at: datetime | None
    created_position: int
    updated_position: int

    def row(self) -> tuple[Any, ...]:
        return (
            self.originator_id,
            self.kind,
            self.code,
            self.name,
            self.unit,
            self.camera_kind,
            self.clusters,
            self.lat,
            self.lon,
            self.registered_at,
            self.status,
            self.status_at,
            self.last_alert_id,
            self.last_alert_category,
            self.last_alert_severity,
            self.last_alert_at,
            self.created_position,
            self.updated_position,
        )

    def state_row(self) -> tuple[Any, ...]:
        return (
            self.originator_id,
            self.status,
            self.status_at,
            self.last_alert_id,
            self.last_alert_category,
            self.last_alert_severity,
            self.last_alert_at,
            self.updated_position,
        )


@dataclass(slots=True)
class Cluster:
    fault: str | None
    reported_at: datetime
    updated_position: int


@dataclass(slots=True)
class Broadcast:
    originator_id: UUID
    broadcast_id: str
    start_position: int
    station: str
    unit: str
    program: str
    kind: str
    started_at: datetime
    ended_at: datetime | None = None
    end_position: int | None = None


@dataclass(slots=True)
class _Chunk:
    """What one chunk changes, gathered while folding."""

    devices: dict[UUID, Device]
    clusters: dict[tuple[UUID, int], Cluster]
    dirty: set[UUID] = field(default_factory=set)
    created: set[UUID] = field(default_factory=set)
    reregistered: set[UUID] = field(default_factory=set)
    dirty_clusters: set[tuple[UUID, int]] = field(default_factory=set)
    # (originator_id, position, kind, unit, status) of every change of unit or status
    changes: list[tuple[UUID, int, str, str, str | None]] = field(default_factory=list)
    started: dict[tuple[UUID, str], Broadcast] = field(default_factory=dict)
    new_broadcasts: list[Broadcast] = field(default_factory=list)
    # broadcasts started before this chunk and ended in it
    ended: list[tuple[UUID, str, datetime, int]] = field(default_factory=list)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(c) for c in zip(*rows, strict=True)]


class DevicesProjection(Checkpointed):
    """Cameras and radio stations (see the module docstring)."""

    name: ClassVar[str] = "devices"
    tables: ClassVar[tuple[str, ...]] = (
        "rm_devices",
        "rm_device_history",
        "rm_radio_clusters",
        "rm_broadcasts",
        "rm_device_checkpoints",
    )
    checkpoint_table = "rm_device_checkpoints"
    events: ClassVar[frozenset[str] | None] = names_of(
        Camera, "Registered", "Reregistered", "StatusReported", "AlertRaised"
    ) | names_of(
        RadioStation,
        "Registered",
        "Reregistered",
        "StatusReported",
        "BroadcastStarted",
        "BroadcastEnded",
        "ClusterFaulted",
        "ClusterRestored",
    )

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)
        await create_indexes(conn, CHECKPOINT_INDEXES, self.checkpoint_interval)

    async def write_checkpoint(self, conn: Connection, position: int) -> None:
        await conn.execute(_CHECKPOINT, position)

    async def apply_events(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = list({e.originator_id for e in events})
        rows = await conn.fetch(_SELECT_DEVICES, ids)
        devices = {row[0]: Device(*row) for row in rows}
        clusters: dict[tuple[UUID, int], Cluster] = {}
        cluster_ids = list(
            {e.originator_id for e in events if e.name.startswith("RadioStation.Cluster")}
        )
        if cluster_ids:
            for row in await conn.fetch(_SELECT_CLUSTERS, cluster_ids):
                clusters[(row[0], row[1])] = Cluster(row[2], row[3], row[4])
        chunk = _Chunk(devices, clusters)
        for event in events:
            self._fold(chunk, event)
        await self._store(conn, chunk)

    def _fold(self, chunk: _Chunk, event: Event) -> None:
        aggregate, _, what = event.name.partition(".")
        state = event.state
        oid = event.originator_id
        position = event.position
        if what == "Registered":
            kind = _KINDS[aggregate]
            device = Device(
                originator_id=oid,
                kind=kind,
                code=state["code"],
                name=state["name"],
                unit=state["unit"],
                camera_kind=state.get("kind") if kind == CAMERA else None,
                clusters=state.get("clusters") if kind == RADIO else None,
                lat=state.get("lat"),
                lon=state.get("lon"),
                registered_at=event.time,
                status=None,
                status_at=None,
                last_alert_id=None,
                last_alert_category=None,
                last_alert_severity=None,
                last_alert_at=None,
                created_position=position,
                updated_position=position,
            )
            chunk.devices[oid] = device
            chunk.created.add(oid)
            chunk.changes.append((oid, position, kind, device.unit, None))
            return
        found = chunk.devices.get(oid)
        if found is None:  # a subject is always registered first; be defensive
            return
        device = found
        moment = event.time
        if what == "Reregistered":
            if moment >= device.registered_at:
                moved = device.unit != state["unit"]
                device.name = state["name"]
                device.unit = state["unit"]
                device.lat = state.get("lat")
                device.lon = state.get("lon")
                if device.kind == CAMERA:
                    device.camera_kind = state.get("kind")
                else:
                    device.clusters = state.get("clusters")
                device.registered_at = moment
                chunk.reregistered.add(oid)
                self._touch(chunk, device, position, changed=moved)
        elif what == "StatusReported":
            if device.status_at is None or moment >= device.status_at:
                changed = device.status != state["status"]
                device.status = state["status"]
                device.status_at = moment
                self._touch(chunk, device, position, changed=changed)
        elif what == "AlertRaised":
            if device.last_alert_at is None or moment >= device.last_alert_at:
                device.last_alert_id = state["alert_id"]
                device.last_alert_category = state["category"]
                device.last_alert_severity = state["severity"]
                device.last_alert_at = moment
                self._touch(chunk, device, position, changed=False)
        elif what in ("ClusterFaulted", "ClusterRestored"):
            key = (oid, int(state["cluster"]))
            current = chunk.clusters.get(key)
            if current is None or moment >= current.reported_at:
                fault = state["fault"] if what == "ClusterFaulted" else None
                chunk.clusters[key] = Cluster(fault, moment, position)
                chunk.dirty_clusters.add(key)
        elif what == "BroadcastStarted":
            broadcast = Broadcast(
                originator_id=oid,
                broadcast_id=state["broadcast_id"],
                start_position=position,
                station=device.code,
                unit=device.unit,
                program=state["program"],
                kind=state["kind"],
                started_at=moment,
            )
            chunk.started[(oid, broadcast.broadcast_id)] = broadcast
            chunk.new_broadcasts.append(broadcast)
        elif what == "BroadcastEnded":
            started = chunk.started.pop((oid, state["broadcast_id"]), None)
            if started is not None:
                started.ended_at = moment
                started.end_position = position
            else:
                chunk.ended.append((oid, state["broadcast_id"], moment, position))

    @staticmethod
    def _touch(chunk: _Chunk, device: Device, position: int, *, changed: bool) -> None:
        device.updated_position = position
        if device.originator_id not in chunk.created:
            chunk.dirty.add(device.originator_id)
        if changed:
            chunk.changes.append(
                (device.originator_id, position, device.kind, device.unit, device.status)
            )

    async def _store(self, conn: Connection, chunk: _Chunk) -> None:
        width = len(_DEVICE_COLUMNS)
        if chunk.created:
            rows = [chunk.devices[oid].row() for oid in chunk.created]
            await conn.execute(_INSERT_DEVICES, *_columns(rows, width))
        full = chunk.dirty & chunk.reregistered
        if full:
            rows = [chunk.devices[oid].row() for oid in full]
            await conn.execute(_UPDATE_DEVICES, *_columns(rows, width))
        states = chunk.dirty - chunk.reregistered
        if states:
            rows = [chunk.devices[oid].state_row() for oid in states]
            await stage(conn, _STAGE_STATES, _STAGE_DEFINITION, rows)
            await conn.execute(_UPDATE_STATES)
        if chunk.changes:
            await copy_rows(conn, "rm_device_history", _HISTORY_COLUMNS, chunk.changes)
        if chunk.dirty_clusters:
            cluster_rows = [
                (oid, number, c.fault, c.reported_at, c.updated_position)
                for (oid, number), c in ((key, chunk.clusters[key]) for key in chunk.dirty_clusters)
            ]
            await conn.execute(_UPSERT_CLUSTERS, *_columns(cluster_rows, 5))
        if chunk.new_broadcasts:
            broadcast_rows = [
                (
                    b.originator_id,
                    b.broadcast_id,
                    b.start_position,
                    b.station,
                    b.unit,
                    b.program,
                    b.kind,
                    b.started_at,
                    b.ended_at,
                    b.end_position,
                )
                for b in chunk.new_broadcasts
            ]
            await conn.execute(_INSERT_BROADCASTS, *_columns(broadcast_rows, 10))
        if chunk.ended:
            await conn.execute(_END_BROADCASTS, *_columns(chunk.ended, 4))
