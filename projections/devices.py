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
from datetime import datetime
from operator import itemgetter
from typing import Any, ClassVar, Final
from uuid import UUID

from ops_center.domain.camera import Camera
from ops_center.domain.events import name_of
from ops_center.domain.radio import RadioStation
from ops_center.store.log import Event
from projections.checkpoints import MARKER, Checkpointed, create_indexes
from projections.projection import Connection, copy_rows, stage

CAMERA: Final = "camera"
RADIO: Final = "radio"

_KINDS: Final = {"Camera": CAMERA, "RadioStation": RADIO}
#: The status and last alert of a device just registered.
_NO_STATE: Final = (None,) * 6

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
_DEVICE_NAMES: Final = [c for c, _ in _DEVICE_COLUMNS]
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
_BROADCAST_COLUMNS: Final = (
    "originator_id",
    "broadcast_id",
    "start_position",
    "station",
    "unit",
    "program",
    "kind",
    "started_at",
    "ended_at",
    "end_position",
)
_END_BROADCASTS: Final = """
UPDATE rm_broadcasts b SET ended_at = e.ended_at, end_position = e.position
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[])
    AS e(originator_id, broadcast_id, ended_at, position)
WHERE b.originator_id = e.originator_id AND b.broadcast_id = e.broadcast_id
  AND b.end_position IS NULL AND b.start_position < e.position
"""

# A device being folded is a list of the values of its ``rm_devices`` row, in
# `_DEVICE_COLUMNS` order (built from the fetched record in one call, written back as it
# is: no object per device and no copy per event).
(
    _ID,
    _KIND,
    _CODE,
    _NAME,
    _UNIT,
    _CAMERA_KIND,
    _CLUSTERS,
    _LAT,
    _LON,
    _REGISTERED_AT,
    _STATUS,
    _STATUS_AT,
    _ALERT_ID,
    _ALERT_CATEGORY,
    _ALERT_SEVERITY,
    _ALERT_AT,
    _CREATED_POSITION,
    _UPDATED_POSITION,
) = range(len(_DEVICE_COLUMNS))
#: The values of `_STATE_COLUMNS` in a device's list.
_STATE_ROW: Final = itemgetter(*(_DEVICE_NAMES.index(c) for c, _ in _STATE_COLUMNS))
# The values of a broadcast started in this chunk (`_BROADCAST_COLUMNS` order).
_ENDED_AT: Final = _BROADCAST_COLUMNS.index("ended_at")
_END_POSITION: Final = _BROADCAST_COLUMNS.index("end_position")

# What an event does, by its short name.
_REGISTERED, _REREGISTERED, _STATUS_REPORTED, _ALERT, _FAULT, _RESTORED, _STARTED, _ENDED = range(8)
_WHAT: Final = {
    name_of(Camera, "Registered"): _REGISTERED,
    name_of(RadioStation, "Registered"): _REGISTERED,
    name_of(Camera, "Reregistered"): _REREGISTERED,
    name_of(RadioStation, "Reregistered"): _REREGISTERED,
    name_of(Camera, "StatusReported"): _STATUS_REPORTED,
    name_of(RadioStation, "StatusReported"): _STATUS_REPORTED,
    name_of(Camera, "AlertRaised"): _ALERT,
    name_of(RadioStation, "ClusterFaulted"): _FAULT,
    name_of(RadioStation, "ClusterRestored"): _RESTORED,
    name_of(RadioStation, "BroadcastStarted"): _STARTED,
    name_of(RadioStation, "BroadcastEnded"): _ENDED,
}


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
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
    events: ClassVar[frozenset[str] | None] = frozenset(_WHAT)

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)
        await create_indexes(conn, CHECKPOINT_INDEXES, self.checkpoint_interval)

    async def write_checkpoint(self, conn: Connection, position: int) -> None:
        await conn.execute(_CHECKPOINT, position)

    async def apply_events(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = list({e.originator_id for e in events})
        devices: dict[UUID, list[Any]] = {
            row[0]: list(row) for row in await conn.fetch(_SELECT_DEVICES, ids)
        }
        what_of = _WHAT.get
        dirty: set[UUID] = set()
        created: set[UUID] = set()
        reregistered: set[UUID] = set()
        # (originator_id, cluster, fault, reported_at, position) of the cluster reports
        reports: list[tuple[UUID, int, str | None, datetime, int]] = []
        # (originator_id, position, kind, unit, status) of every change of unit or status
        changes: list[tuple[UUID, int, str, str, str | None]] = []
        started: dict[tuple[UUID, str], list[Any]] = {}
        new_broadcasts: list[list[Any]] = []
        # broadcasts started before this chunk and ended in it
        ended: list[tuple[UUID, str, datetime, int]] = []
        for event in events:
            what = what_of(event.name)
            if what is None:
                continue
            oid = event.originator_id
            state = event.state
            position = event.position
            if what == _REGISTERED:
                kind = _KINDS[event.name.partition(".")[0]]
                camera = kind == CAMERA
                fresh = [
                    oid,
                    kind,
                    state["code"],
                    state["name"],
                    state["unit"],
                    state.get("kind") if camera else None,
                    None if camera else state.get("clusters"),
                    state.get("lat"),
                    state.get("lon"),
                    event.time,
                    *_NO_STATE,
                    position,
                    position,
                ]
                devices[oid] = fresh
                created.add(oid)
                changes.append((oid, position, kind, fresh[_UNIT], None))
                continue
            device = devices.get(oid)
            if device is None:  # a subject is always registered first; be defensive
                continue
            moment = event.time
            if what == _ALERT:
                last = device[_ALERT_AT]
                if last is None or moment >= last:
                    device[_ALERT_ID] = state["alert_id"]
                    device[_ALERT_CATEGORY] = state["category"]
                    device[_ALERT_SEVERITY] = state["severity"]
                    device[_ALERT_AT] = moment
                    device[_UPDATED_POSITION] = position
                    if oid not in created:
                        dirty.add(oid)
            elif what == _STATUS_REPORTED:
                last = device[_STATUS_AT]
                if last is None or moment >= last:
                    status = state["status"]
                    changed = device[_STATUS] != status
                    device[_STATUS] = status
                    device[_STATUS_AT] = moment
                    device[_UPDATED_POSITION] = position
                    if oid not in created:
                        dirty.add(oid)
                    if changed:
                        changes.append((oid, position, device[_KIND], device[_UNIT], status))
            elif what == _STARTED:
                broadcast = [
                    oid,
                    state["broadcast_id"],
                    position,
                    device[_CODE],
                    device[_UNIT],
                    state["program"],
                    state["kind"],
                    moment,
                    None,
                    None,
                ]
                started[(oid, state["broadcast_id"])] = broadcast
                new_broadcasts.append(broadcast)
            elif what == _ENDED:
                broadcast_id = state["broadcast_id"]
                found = started.pop((oid, broadcast_id), None)
                if found is not None:
                    found[_ENDED_AT] = moment
                    found[_END_POSITION] = position
                else:
                    ended.append((oid, broadcast_id, moment, position))
            elif what in (_FAULT, _RESTORED):
                fault = state["fault"] if what == _FAULT else None
                reports.append((oid, int(state["cluster"]), fault, moment, position))
            elif moment >= device[_REGISTERED_AT]:  # _REREGISTERED
                moved = device[_UNIT] != state["unit"]
                device[_NAME] = state["name"]
                device[_UNIT] = state["unit"]
                device[_LAT] = state.get("lat")
                device[_LON] = state.get("lon")
                if device[_KIND] == CAMERA:
                    device[_CAMERA_KIND] = state.get("kind")
                else:
                    device[_CLUSTERS] = state.get("clusters")
                device[_REGISTERED_AT] = moment
                reregistered.add(oid)
                device[_UPDATED_POSITION] = position
                if oid not in created:
                    dirty.add(oid)
                if moved:
                    changes.append((oid, position, device[_KIND], device[_UNIT], device[_STATUS]))
        width = len(_DEVICE_COLUMNS)
        if created:
            rows = [devices[oid] for oid in created]
            await conn.execute(_INSERT_DEVICES, *_columns(rows, width))
        full = dirty & reregistered
        if full:
            rows = [devices[oid] for oid in full]
            await conn.execute(_UPDATE_DEVICES, *_columns(rows, width))
        states = dirty - reregistered
        if states:
            state_row = _STATE_ROW
            await stage(
                conn, _STAGE_STATES, _STAGE_DEFINITION, [state_row(devices[oid]) for oid in states]
            )
            await conn.execute(_UPDATE_STATES)
        if changes:
            await copy_rows(conn, "rm_device_history", _HISTORY_COLUMNS, changes)
        if reports:
            await self._store_clusters(conn, reports)
        if new_broadcasts:
            await copy_rows(
                conn, "rm_broadcasts", _BROADCAST_COLUMNS, [tuple(b) for b in new_broadcasts]
            )
        if ended:
            await conn.execute(_END_BROADCASTS, *_columns(ended, 4))

    @staticmethod
    async def _store_clusters(
        conn: Connection, reports: list[tuple[UUID, int, str | None, datetime, int]]
    ) -> None:
        """Fold the chunk's cluster reports (position order) onto the stored clusters (no
        other part of the fold reads them, so they are read once the chunk has been seen)."""
        clusters: dict[tuple[UUID, int], tuple[UUID, int, str | None, datetime, int]] = {}
        for row in await conn.fetch(_SELECT_CLUSTERS, list({r[0] for r in reports})):
            clusters[(row[0], row[1])] = tuple(row)
        dirty: set[tuple[UUID, int]] = set()
        for report in reports:
            key = (report[0], report[1])
            current = clusters.get(key)
            if current is None or report[3] >= current[3]:
                clusters[key] = report
                dirty.add(key)
        rows = [clusters[key] for key in dirty]
        await conn.execute(_UPSERT_CLUSTERS, *_columns(rows, 5))
