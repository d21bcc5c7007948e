"""The feed: the latest events, newest first, labelled with their subject's code and unit.

Tables (documented in docs/READ_MODELS.md): ``rm_feed`` keeps the last `keep` events
(1,000 by default) and ``rm_feed_subjects`` maps every subject's aggregate id to its kind,
code and unit (events after a registration do not repeat the code).

Only the last `keep` events of a chunk can survive the trim, so the feed reads, besides
every registration (to keep the subject map), only those; a rebuild therefore skims the
log instead of decoding all of it. Rows are labelled with the subject as it was registered
when the event was applied, in position order, so a rebuild gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final
from uuid import UUID

import orjson

from ops_center.domain.camera import Camera
from ops_center.domain.dossier import Dossier
from ops_center.domain.events import names_of
from ops_center.domain.indicator import Indicator
from ops_center.domain.radio import RadioStation
from ops_center.domain.report import Report
from ops_center.store.log import CLOUDEVENT_TYPES, EVENTS_TABLE, Event, decode, topics_of
from projections.projection import Connection, Projection

#: How many events the feed keeps.
DEFAULT_KEEP: Final = 1_000

_SUBJECT_KINDS: Final = {
    "Camera": "camera",
    "RadioStation": "radio",
    "Dossier": "dossier",
    "Indicator": "kpi",
    "Report": "report",
}
_SUBJECT_EVENTS: Final = (
    names_of(Camera, "Registered", "Reregistered")
    | names_of(RadioStation, "Registered", "Reregistered")
    | names_of(Dossier, "Received")
    | names_of(Indicator, "Defined")
    | names_of(Report, "Received")
)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rm_feed (
    position bigint PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    time timestamptz NOT NULL,
    type text NOT NULL,
    event text NOT NULL,
    subject_kind text,
    subject text,
    unit text,
    source text NOT NULL,
    data jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS rm_feed_subjects (
    originator_id uuid PRIMARY KEY,
    kind text NOT NULL,
    code text NOT NULL,
    unit text
);
"""

_SELECT_SUBJECTS: Final = (
    "SELECT originator_id, kind, code, unit FROM rm_feed_subjects "
    "WHERE originator_id = ANY($1::uuid[])"
)
_UPSERT_SUBJECTS: Final = """
INSERT INTO rm_feed_subjects (originator_id, kind, code, unit)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
ON CONFLICT (originator_id) DO UPDATE SET kind = excluded.kind, code = excluded.code,
    unit = excluded.unit
"""
_INSERT_FEED: Final = """
INSERT INTO rm_feed (position, recorded_at, time, type, event, subject_kind, subject, unit,
                     source, data)
SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[])
"""
_TRIM: Final = """
DELETE FROM rm_feed WHERE position <
    (SELECT position FROM rm_feed ORDER BY position DESC OFFSET $1 LIMIT 1)
"""


class FeedProjection(Projection):
    """The latest events (see the module docstring)."""

    name: ClassVar[str] = "feed"
    tables: ClassVar[tuple[str, ...]] = ("rm_feed", "rm_feed_subjects")
    events: ClassVar[frozenset[str] | None] = None

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self.keep = keep
        # The first position of the chunk's tail, set by `fetch` for `apply`.
        self._tail_from = 0

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)

    async def fetch(
        self, conn: Connection, after: int, upto: int, limit: int, table: str = EVENTS_TABLE
    ) -> list[Event]:
        tail_from: int | None = await conn.fetchval(
            f"SELECT min(notification_id) FROM (SELECT notification_id FROM {table} "
            f"WHERE notification_id > $1 AND notification_id <= $2 "
            f"ORDER BY notification_id DESC LIMIT $3) AS tail",
            after,
            upto,
            self.keep,
        )
        self._tail_from = tail_from if tail_from is not None else upto + 1
        rows = await conn.fetch(
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {table} WHERE notification_id > $1 AND notification_id <= $2 "
            f"AND (notification_id >= $3 OR topic = ANY($4::text[])) "
            f"ORDER BY notification_id LIMIT $5",
            after,
            upto,
            self._tail_from,
            topics_of(_SUBJECT_EVENTS),
            limit,
        )
        return [decode(row) for row in rows]

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = list({e.originator_id for e in events})
        subjects: dict[UUID, tuple[str, str, str | None]] = {
            row[0]: (row[1], row[2], row[3]) for row in await conn.fetch(_SELECT_SUBJECTS, ids)
        }
        changed: set[UUID] = set()
        feed: list[tuple[Any, ...]] = []
        # only the chunk's last `keep` events can survive the trim below
        tail_from = self._tail_from
        if len(events) > self.keep:
            tail_from = max(tail_from, events[-self.keep].position)
        for event in events:
            aggregate = event.name.partition(".")[0]
            state = event.state
            if event.name in _SUBJECT_EVENTS:
                oid = event.originator_id
                code = state.get("code") or subjects.get(oid, ("", "", None))[1]
                subjects[oid] = (_SUBJECT_KINDS[aggregate], code, state.get("unit"))
                changed.add(oid)
            if event.position < tail_from:
                continue
            kind, code, unit = subjects.get(event.originator_id, (None, None, None))
            meta = event.meta
            feed.append(
                (
                    event.position,
                    event.recorded,
                    event.time,
                    CLOUDEVENT_TYPES.get(event.name, event.name),
                    event.name,
                    kind,
                    code,
                    unit,
                    meta.get("source", ""),
                    orjson.dumps(event.data()).decode(),
                )
            )
        if changed:
            rows = [(oid, *subjects[oid]) for oid in changed]
            await conn.execute(_UPSERT_SUBJECTS, *[list(c) for c in zip(*rows, strict=True)])
        if feed:
            await conn.execute(_INSERT_FEED, *[list(c) for c in zip(*feed, strict=True)])
            await conn.execute(_TRIM, self.keep - 1)
