"""What the topics show, read from the projections' tables with the queries' own code.

`Source.snapshot` answers a topic's snapshot for a scope (what a new subscriber gets);
`Source.state` the whole state of a state topic inside the caller's transaction (what the
publisher publishes); `Source.device_changes` the devices touched by the events in a range
of positions. Every answer is one REPEATABLE READ snapshot of the database, so its
``position`` and its content agree.

Each topic's data is the answer of a query of docs/CONTRACT.md §5, at the same position:

* ``overview``: ``GET /api/v1/overview?unit=U``;
* ``services``: ``GET /api/v1/services/stats?from=<today>&to=<tomorrow>&bucket=hour&unit=U``
  (today in Vietnam time), with ``index`` (``GET /api/v1/services/index?period=<this
  month>&unit=U``) and ``lowest_agencies`` (the last `LOWEST` items of
  ``GET /api/v1/services/index/ranking?period=<this month>&by=agency&unit=U``, lowest
  first); its ``position`` is the later of the two projections' (`services` and
  `service_index` follow the same events and are normally at the same position);
* ``kpis``: ``GET /api/v1/kpis`` (with a unit: the indicators owned by the unit, its
  descendants and the agencies serving them, as the overview counts them);
* ``feed``: ``GET /api/v1/feed?unit=U`` (the latest 50 events);
* ``devices``: ``GET /api/v1/devices?kind=camera&unit=U`` then ``kind=radio``, every page,
  as ``{"position", "items"}`` (cameras then stations, each by code);
* ``alarms``: ``GET /api/v1/alarms?state=open&unit=U``, every page, as ``{"position",
  "items"}`` (open alarms: active and acknowledged, newest first);
* ``reports``: ``GET /api/v1/reports?state=open&unit=U``, every page, as ``{"position",
  "items"}`` (open reports: new, assigned and overdue, newest first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from ops_center.province.calendar import local_day, now
from ops_center.province.profile import Profile
from ops_center.store.log import EVENTS_TABLE, topics_of
from projections import read
from projections.devices import DevicesProjection
from projections.projection import Connection
from projections.read import alarms as alarms_read
from projections.read import service_index as index_read
from projections.read.places import Places
from streams.topics import FEED_ITEMS, TOPICS

Json = dict[str, Any]

_DEVICE_TOPICS: Final = topics_of(DevicesProjection.events or ())
#: No page limit: a devices snapshot holds every device of the scope.
_ALL: Final = 2**31 - 1
#: How many of the lowest agencies the services topic carries.
LOWEST: Final = 3
#: The topics whose readers answer ``as_of``: those a replay can show.
REPLAYABLE: Final = ("overview", "kpis")


class Source:
    """Reads topic data from the database through an asyncpg pool; the profile decides
    which indicators a unit's scope includes (`Profile.owners_within`), as the overview
    query does."""

    def __init__(self, pool: Any, profile: Profile) -> None:
        self.pool = pool
        self.profile = profile
        self.places = Places.of(profile)

    def units(self, scope: str | None) -> frozenset[str] | None:
        return None if scope is None else self.profile.descendants(scope)

    def _scope(self, scope: str | None) -> read.Scope:
        units = self.units(scope)
        owners = None if units is None else self.profile.owners_within(units)
        return read.Scope(units, owners)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection in a read-only REPEATABLE READ transaction."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn

    async def positions(self, conn: Connection) -> dict[str, int]:
        """Every projection's applied position."""
        return await read.positions(conn)

    async def snapshot(self, topic: str, scope: str | None) -> tuple[int, Json]:
        """A topic's snapshot for a scope: ``(position, data)``."""
        async with self.transaction() as conn:
            if topic == "devices":
                data = await self.devices(conn, scope)
            else:
                data = await self.state(conn, topic, scope, now())
        return data["position"], data

    async def state(self, conn: Connection, topic: str, scope: str | None, clock: datetime) -> Json:
        """The whole state of a state topic (overview, services, kpis, feed, alarms,
        reports)."""
        if topic == "overview":
            return await read.overview(conn, self._scope(scope), clock=clock)
        if topic == "services":
            start, end = local_day(clock)
            units = self.units(scope)
            body = await read.service_stats(
                conn, start=start, end=end, bucket="hour", clock=clock, units=units
            )
            body["unit"] = scope
            await self._with_index(conn, body, scope, units, clock)
            return body
        if topic == "kpis":
            return await read.kpi_list(conn, clock=clock, owners=self._scope(scope).owners)
        if topic == "feed":
            return await read.feed(conn, limit=FEED_ITEMS, before=None, units=self.units(scope))
        if topic == "alarms":
            return await alarms_read.open_alarms(conn, self.units(scope))
        if topic == "reports":
            return await read.open_reports(
                conn, clock=clock, places=self.places, units=self.units(scope)
            )
        raise ValueError(f"{topic!r} is not a state topic")

    async def _with_index(
        self,
        conn: Connection,
        body: Json,
        scope: str | None,
        units: frozenset[str] | None,
        clock: datetime,
    ) -> None:
        """Add this month's index of the scope and its lowest agencies to `body`."""
        if scope == self.profile.root.code:
            units = None
        month = index_read.month_of(clock)
        index = await index_read.service_index(
            conn, period=month, clock=clock, unit=scope, units=units
        )
        ranking = await index_read.index_ranking(
            conn,
            period=month,
            by="agency",
            clock=clock,
            names={code: a.name for code, a in self.profile.agencies.items()},
            unit=scope,
            units=units,
        )
        body["index"] = index
        body["lowest_agencies"] = ranking["items"][::-1][:LOWEST]
        body["position"] = max(body["position"], index["position"])

    # -- the past (replays) ------------------------------------------------------------------

    async def replay_state(self, topic: str, scope: str | None, moment: datetime) -> Json:
        """A replayable topic's state as of `moment` (what ``as_of`` answers)."""
        async with self.transaction() as conn:
            return await self._as_of(conn, topic, scope, moment)

    async def replay_step(
        self, topic: str, scope: str | None, after: int, moment: datetime
    ) -> tuple[datetime, Json] | None:
        """The recorded time of the last event by `moment` (among those the topic's
        projections applied) and the state as of that time; None when that event is not
        after position `after` (nothing happened since)."""
        async with self.transaction() as conn:
            known = await read.positions(conn)
            upto = min(known.get(name, 0) for name in TOPICS[topic].projections)
            position = await read.position_at(conn, moment, upto)
            if position <= after:
                return None
            state = await conn.fetchval(
                f"SELECT state FROM {EVENTS_TABLE} WHERE notification_id = $1", position
            )
            at = datetime.fromisoformat(orjson.loads(state)["timestamp"])
            return at, await self._as_of(conn, topic, scope, at)

    async def _as_of(self, conn: Connection, topic: str, scope: str | None, at: datetime) -> Json:
        if topic == "overview":
            return await read.overview(conn, self._scope(scope), clock=at, as_of=at)
        if topic == "kpis":
            owners = self._scope(scope).owners
            return await read.kpi_list(conn, clock=at, as_of=at, owners=owners)
        raise ValueError(f"{topic!r} cannot be replayed")

    async def devices(self, conn: Connection, scope: str | None) -> Json:
        units = self.units(scope)
        items: list[Json] = []
        position = 0
        for kind in ("camera", "radio"):
            page = await read.device_list(
                conn,
                kind=kind,
                status=None,
                units=units,
                limit=_ALL,
                offset=0,
                places=self.places,
            )
            position = page["position"]
            items.extend(page["items"])
        return {"position": position, "items": items}

    async def device_changes(
        self, conn: Connection, after: int, upto: int
    ) -> tuple[list[Json], list[list[str]]]:
        """The devices touched by the events in positions ``(after, upto]``, as the
        devices query shows them now, and for each the units it was in since `after`."""
        ids: list[UUID] = [
            row[0]
            for row in await conn.fetch(
                f"SELECT DISTINCT originator_id FROM {EVENTS_TABLE} "
                "WHERE notification_id > $1 AND notification_id <= $2 AND topic = ANY($3::text[])",
                after,
                upto,
                _DEVICE_TOPICS,
            )
        ]
        if not ids:
            return [], []
        items, rows = await read.devices_by_id(conn, ids, self.places)
        past = await self._past_units(conn, [row["originator_id"] for row in rows], after)
        units = [sorted(past.get(row["originator_id"], set()) | {row["unit"]}) for row in rows]
        return items, units

    async def _past_units(
        self, conn: Connection, ids: Sequence[UUID], after: int
    ) -> dict[UUID, set[str]]:
        """The units each device was in from position `after` on (from its history)."""
        past: dict[UUID, set[str]] = {}
        for row in await conn.fetch(
            "SELECT DISTINCT ON (originator_id) originator_id, unit FROM rm_device_history "
            "WHERE originator_id = ANY($1::uuid[]) AND from_position <= $2 "
            "ORDER BY originator_id, from_position DESC",
            ids,
            after,
        ):
            past.setdefault(row[0], set()).add(row[1])
        for row in await conn.fetch(
            "SELECT originator_id, unit FROM rm_device_history "
            "WHERE originator_id = ANY($1::uuid[]) AND from_position > $2",
            ids,
            after,
        ):
            past.setdefault(row[0], set()).add(row[1])
        return past
