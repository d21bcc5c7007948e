"""A projection: read-model tables built from the event log, exactly once, restartably.

A `Projection` owns read-model tables and applies chunks of events (`apply`) inside the
transaction that also records its position in ``projection_positions``: a chunk is
applied entirely or not at all, so whatever is killed when, the projection restarts where
the last commit left it and never counts an event twice. The pipeline's follower
(`ops_center.pipeline.follower`) reads each chunk once and hands it to every projection;
`step` applies the next chunk to one projection alone (tests and tools).

* Reading ``notification_id > position`` never skips an event: the library's insert locks
  the events table, so positions become visible in order.
* Every committed position is also recorded for events the projection ignores, so a
  projection's position is always "every event up to here has been considered".
* `reset` empties a projection and sets its position to 0 with ``rebuilding`` on; the
  follower rebuilds it from the log (alone, while the others keep following) and clears
  the flag when it has caught up. Queries of a rebuilding projection answer 503.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from ops_center.store.log import EVENTS_TABLE, Event, decode, topics_of

log = logging.getLogger(__name__)

Connection = Any  # asyncpg.Connection (asyncpg ships no type information)

POSITIONS_TABLE: Final = "projection_positions"

POSITIONS_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    rebuilt_at timestamptz,
    last_error text,
    error_at timestamptz,
    rebuilding boolean NOT NULL DEFAULT false
)
"""

#: Added to databases made before the column existed.
POSITIONS_MIGRATION: Final = (
    f"ALTER TABLE {POSITIONS_TABLE} ADD COLUMN IF NOT EXISTS "
    "rebuilding boolean NOT NULL DEFAULT false"
)

#: Notified (at commit) when a projection is reset: the follower reads positions again.
RESET_CHANNEL: Final = "ops_projection_reset"

#: Serialises schema creation across nodes (CREATE TABLE IF NOT EXISTS can race): the
#: projections' tables, the keys table and the event store's tables (``web.app``).
SETUP_LOCK: Final = 0x6F70_735F_7365_7475  # "ops_setu"

# Limits
#: Most events `step` applies in one transaction.
DEFAULT_BATCH: Final = 2_000
#: Most events applied in one transaction while rebuilding.
REBUILD_BATCH: Final = 10_000
#: Most positions `step` looks at in one transaction (bounds the scan of a filtered read).
DEFAULT_WINDOW: Final = 100_000


class Projection(ABC):
    """A read model built from the event log.

    Subclasses name themselves (`name`), list the tables they own (`tables`, truncated by
    `reset`) and the short event names they apply (`events`; None means every event).
    `apply` receives the events of one chunk in position order, inside the transaction
    that also records the position; it must not commit, and it must give the same tables
    whether the log is applied in one chunk or many (rebuild equals incremental).
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    events: ClassVar[frozenset[str] | None] = None

    @abstractmethod
    async def setup(self, conn: Connection) -> None:
        """Create the projection's tables and indexes if they do not exist."""

    @abstractmethod
    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        """Apply a chunk of events (position order) to the read-model tables."""

    async def reset(self, conn: Connection) -> None:
        """Empty the projection's tables (its position is reset by the caller)."""
        await conn.execute(f"TRUNCATE {', '.join(self.tables)}")

    async def fetch(
        self, conn: Connection, after: int, upto: int, limit: int, table: str = EVENTS_TABLE
    ) -> list[Event]:
        """The events this projection applies in positions ``(after, upto]``, at most `limit`."""
        if self.events is None:
            rows = await conn.fetch(
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {table} WHERE notification_id > $1 AND notification_id <= $2 "
                f"ORDER BY notification_id LIMIT $3",
                after,
                upto,
                limit,
            )
        else:
            rows = await conn.fetch(
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {table} WHERE notification_id > $1 AND notification_id <= $2 "
                f"AND topic = ANY($3::text[]) ORDER BY notification_id LIMIT $4",
                after,
                upto,
                topics_of(self.events),
                limit,
            )
        return [decode(row) for row in rows]


_STAGED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


async def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows with binary COPY (a quarter of the client CPU of ``unnest`` arrays)."""
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=list(columns))


def forget_staged(conn: Connection) -> None:
    """Forget the temporary tables made on `conn` (after a rollback undid their creation)."""
    _STAGED.pop(conn, None)


async def stage(
    conn: Connection, name: str, definition: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Load rows into the temporary table `name` (``ON COMMIT DELETE ROWS``, created
    once per connection from `definition`, a column list) for a set-based UPDATE. Rows
    staged earlier in the same transaction (a chunk applied in parts, at checkpoints) are
    dropped first."""
    created = _STAGED.setdefault(conn, set())
    if name not in created:
        await conn.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({definition}) ON COMMIT DELETE ROWS"
        )
        created.add(name)
    else:
        await conn.execute(f"DELETE FROM {name}")
    await conn.copy_records_to_table(name, records=rows)


def lock_key(name: str) -> int:
    """The advisory-lock key (signed 64-bit) that elects a projection's active runner."""
    digest = hashlib.blake2b(f"ops-center:projection:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def ensure_schema(conn: Connection, projections: Iterable[Projection]) -> None:
    """Create the positions table and the projections' tables; add missing position rows."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK)
        await conn.execute(POSITIONS_SCHEMA)
        await conn.execute(POSITIONS_MIGRATION)
        for projection in projections:
            await projection.setup(conn)
            await conn.execute(
                f"INSERT INTO {POSITIONS_TABLE} (name) VALUES ($1) ON CONFLICT DO NOTHING",
                projection.name,
            )


async def head_position(conn: Connection, table: str = EVENTS_TABLE) -> int:
    """The last position of the event log (0 when it is empty or not created yet)."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    if not exists:
        return 0
    head: int | None = await conn.fetchval(f"SELECT max(notification_id) FROM {table}")
    return head or 0


async def read_positions(conn: Connection) -> dict[str, int]:
    """Every projection's applied position, by name."""
    rows = await conn.fetch(f"SELECT name, position FROM {POSITIONS_TABLE}")
    return {row["name"]: row["position"] for row in rows}


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one transaction: the new position, events applied, and whether the
    runner has reached the head of the log."""

    position: int
    applied: int
    caught_up: bool


async def step(
    conn: Connection,
    projection: Projection,
    *,
    batch: int = DEFAULT_BATCH,
    window: int = DEFAULT_WINDOW,
    table: str = EVENTS_TABLE,
    log_exists: bool = False,
) -> Step:
    """Apply the next chunk of events and record the position, in one transaction.

    With `log_exists` (the caller has seen the events table), the position and the head
    of the log are read in one round trip.
    """
    async with conn.transaction():
        if log_exists:
            row = await conn.fetchrow(
                f"SELECT position, (SELECT coalesce(max(notification_id), 0) FROM {table}) "
                f"AS head FROM {POSITIONS_TABLE} WHERE name = $1 FOR UPDATE",
                projection.name,
            )
            position, head = (None, 0) if row is None else (row[0], row[1])
        else:
            position = await conn.fetchval(
                f"SELECT position FROM {POSITIONS_TABLE} WHERE name = $1 FOR UPDATE",
                projection.name,
            )
            head = await head_position(conn, table)
        if position is None:
            raise LookupError(f"projection {projection.name!r} has no position row")
        if head <= position:
            return Step(position, 0, True)
        upto = min(position + window, head)
        events = await projection.fetch(conn, position, upto, batch, table)
        if len(events) >= batch:
            upto = events[-1].position
        if events:
            await projection.apply(conn, events)
        await conn.execute(
            f"UPDATE {POSITIONS_TABLE} SET position = $2, updated_at = now(), "
            f"last_error = NULL, error_at = NULL WHERE name = $1",
            projection.name,
            upto,
        )
        return Step(upto, len(events), upto >= head)


async def reset(conn: Connection, projection: Projection) -> None:
    """Empty a projection and set its position to 0, in one transaction.

    Waits for the follower's current transaction (if any); the follower then rebuilds the
    projection from position 0 by itself, and clears ``rebuilding`` once it has caught up.
    """
    async with conn.transaction():
        await conn.execute(
            f"SELECT 1 FROM {POSITIONS_TABLE} WHERE name = $1 FOR UPDATE", projection.name
        )
        await projection.reset(conn)
        await conn.execute(f"NOTIFY {RESET_CHANNEL}")
        await conn.execute(
            f"UPDATE {POSITIONS_TABLE} SET position = 0, updated_at = now(), rebuilt_at = now(), "
            f"rebuilding = true, last_error = NULL, error_at = NULL WHERE name = $1",
            projection.name,
        )
