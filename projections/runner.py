"""The projection runner: follows the event log by position, exactly once, restartably.

A `Projection` owns read-model tables. A `ProjectionRunner` reads the events after the
projection's position in chunks, lets the projection apply them, and records the new
position in ``projection_positions`` in the same transaction: a chunk is applied entirely
or not at all, so a runner killed at any moment restarts where the last commit left it and
never counts an event twice.

* Wake-up: LISTEN on the events table's channel (the library NOTIFYs on every insert),
  and a poll every `poll_interval` seconds as a fallback (notifications sent while nobody
  listens are lost).
* One active runner per projection across nodes: the runner holds a session-level
  ``pg_try_advisory_lock`` while it works; the others stand by and retry every
  `lock_interval` seconds.
* Reading ``notification_id > position`` never skips an event: the library's insert locks
  the events table, so positions become visible in order.
* Independence: each runner has its own connection and task. One that fails logs its
  error, records it in ``projection_positions.last_error``, backs off (exponentially, up
  to `max_backoff` seconds) and retries; the others carry on.
* A runner's commits do not wait for the WAL flush (``synchronous_commit = off`` on its
  connection): read models are derived data, recorded with their position in the same
  transaction, so a crash of PostgreSQL can only lose the last chunks *together with*
  their position, and the runner applies them again. Each chunk then costs no disk
  flush, which keeps the wait from acknowledgement to screen short.
* Every committed position is also recorded for events the projection ignores, so a
  projection's position is always "every event up to here has been considered".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import asyncpg

from ops_center.runtime.backoff import Backoff
from ops_center.store.database import Database, as_database
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
    error_at timestamptz
)
"""

#: Serialises schema creation across nodes (CREATE TABLE IF NOT EXISTS can race): the
#: projections' tables, the keys table and the event store's tables (``web.app``).
SETUP_LOCK: Final = 0x6F70_735F_7365_7475  # "ops_setu"

# Limits
#: Most events applied in one transaction while following the log.
DEFAULT_BATCH: Final = 2_000
#: Most events applied in one transaction while rebuilding.
REBUILD_BATCH: Final = 10_000
#: Most positions looked at in one transaction (bounds the scan of a filtered read).
DEFAULT_WINDOW: Final = 100_000
#: Seconds between polls when no notification arrives.
DEFAULT_POLL: Final = 1.0
#: Fewest seconds between the starts of two steps while commits keep coming: one step then
#: covers the commits of that interval (each step is a transaction of several round trips,
#: and every commit wakes every runner), at most this much later.
DEFAULT_MIN_INTERVAL: Final = 0.005
#: Seconds between attempts to become the active runner.
DEFAULT_LOCK_INTERVAL: Final = 5.0
#: First and largest pause after a failure, in seconds.
MIN_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0


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


async def stage(
    conn: Connection, name: str, definition: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Load rows into the temporary table `name` (``ON COMMIT DELETE ROWS``, created
    once per connection from `definition`, a column list) for a set-based UPDATE."""
    created = _STAGED.setdefault(conn, set())
    if name not in created:
        await conn.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({definition}) ON COMMIT DELETE ROWS"
        )
        created.add(name)
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

    Waits for the active runner's current transaction (if any); that runner then starts
    again from position 0 by itself.
    """
    async with conn.transaction():
        await conn.execute(
            f"SELECT 1 FROM {POSITIONS_TABLE} WHERE name = $1 FOR UPDATE", projection.name
        )
        await projection.reset(conn)
        await conn.execute(
            f"UPDATE {POSITIONS_TABLE} SET position = 0, updated_at = now(), rebuilt_at = now() "
            f"WHERE name = $1",
            projection.name,
        )


RunnerState = Literal["starting", "standby", "active", "failed", "stopped"]
CommitListener = Callable[[str, int], None]


class ProjectionRunner:
    """Keeps one projection up to date with the event log; see the module docstring.

    `start` runs it as a task; `stop` cancels and awaits it. `state`, `position`,
    `last_error` and `errors` describe it for status pages. Listeners added to
    `on_commit` are called with ``(name, position)`` after each commit that moved the
    position (on the event loop; they must not block).
    """

    def __init__(
        self,
        database: Database | str,
        projection: Projection,
        *,
        batch: int = DEFAULT_BATCH,
        window: int = DEFAULT_WINDOW,
        poll_interval: float = DEFAULT_POLL,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        lock_interval: float = DEFAULT_LOCK_INTERVAL,
        min_backoff: float = MIN_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        table: str = EVENTS_TABLE,
    ) -> None:
        self.database = as_database(database)
        self.projection = projection
        self.batch = batch
        self.window = window
        self.poll_interval = poll_interval
        self.min_interval = min_interval
        self.lock_interval = lock_interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.table = table
        self.state: RunnerState = "starting"
        self.position = 0
        self.last_error: str | None = None
        self.errors = 0
        self.applied = 0
        self.on_commit: list[CommitListener] = []
        self._task: asyncio.Task[None] | None = None
        self._progressed = False
        self._moved = asyncio.Condition()

    @property
    def name(self) -> str:
        return self.projection.name

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"projection:{self.name}")
        return self._task

    async def stop(self) -> None:
        """Cancel the task and wait for it to end (its connection is closed)."""
        task, self._task = self._task, None
        if task is not None:
            while not task.done():  # cancel again should a cancellation ever be lost
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state = "stopped"

    async def wait_for(self, position: int) -> None:
        """Wait until this node has seen the projection reach `position` (wrap it in
        `asyncio.timeout` to bound the wait)."""
        async with self._moved:
            await self._moved.wait_for(lambda: self.position >= position)

    def status(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "position": self.position,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        """Follow the log forever: reconnect and back off after failures."""
        backoff = Backoff(self.min_backoff, self.max_backoff)
        while True:
            self._progressed = False
            try:
                await self._session()
            except asyncio.CancelledError:
                self.state = "stopped"
                raise
            except Exception as exc:
                if self._progressed:
                    backoff.reset()
                self.state = "failed"
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "projection %s failed; retrying in %.1f s",
                    self.name,
                    backoff.peek(),
                    exc_info=exc,
                )
                await self._record_error(self.last_error)
                await backoff.sleep()

    async def _record_error(self, error: str) -> None:
        """Best effort: make the error visible to `ops-center projections status`."""
        try:
            async with asyncio.timeout(5):
                conn = await asyncpg.connect(**self.database.asyncpg_args())
                try:
                    await conn.execute(
                        f"UPDATE {POSITIONS_TABLE} SET last_error = $2, error_at = now() "
                        f"WHERE name = $1",
                        self.name,
                        error[:2000],
                    )
                finally:
                    await conn.close()
        except Exception:
            log.debug("could not record the error of projection %s", self.name, exc_info=True)

    async def _moved_to(self, position: int) -> None:
        changed = position != self.position
        self.position = position
        async with self._moved:
            self._moved.notify_all()
        if changed:
            for listener in list(self.on_commit):
                try:
                    listener(self.name, position)
                except Exception:
                    log.exception("commit listener of projection %s failed", self.name)

    async def _session(self) -> None:
        conn = await asyncpg.connect(**self.database.asyncpg_args({"synchronous_commit": "off"}))
        try:
            await ensure_schema(conn, [self.projection])
            key = lock_key(self.name)
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                self.state = "standby"
                positions = await read_positions(conn)
                await self._moved_to(positions.get(self.name, 0))
                await asyncio.sleep(self.lock_interval)
            self.state = "active"
            wake = asyncio.Event()

            def notified(*_: object) -> None:
                wake.set()

            await conn.add_listener(self.table, notified)
            log_exists = False
            while True:
                wake.clear()
                started = time.monotonic()
                result = await step(
                    conn,
                    self.projection,
                    batch=self.batch,
                    window=self.window,
                    table=self.table,
                    log_exists=log_exists,
                )
                log_exists = log_exists or result.position > 0
                if result.applied:
                    self.applied += result.applied
                    log.debug(
                        "projection %s applied %d events up to %d in %.3f s",
                        self.name,
                        result.applied,
                        result.position,
                        time.monotonic() - started,
                    )
                self._progressed = True
                self.last_error = None
                await self._moved_to(result.position)
                if result.caught_up:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation that races with the notification it waits for.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_interval):
                            await wake.wait()
                    pause = self.min_interval - (time.monotonic() - started)
                    if pause > 0:
                        await asyncio.sleep(pause)
        finally:
            # terminate, not close: the connection may be mid-transaction after a
            # cancellation; the server rolls back and releases the advisory lock.
            conn.terminate()


class ProjectionSet:
    """The runners of several projections, started and stopped together.

    `start` creates every table first (so queries can be served at once), then starts
    one independent runner per projection.
    """

    def __init__(
        self, database: Database | str, projections: Iterable[Projection], **options: Any
    ) -> None:
        self.database = as_database(database)
        self.runners = {p.name: ProjectionRunner(self.database, p, **options) for p in projections}

    def __getitem__(self, name: str) -> ProjectionRunner:
        return self.runners[name]

    async def start(self) -> None:
        conn = await asyncpg.connect(**self.database.asyncpg_args())
        try:
            await ensure_schema(conn, [r.projection for r in self.runners.values()])
        finally:
            await conn.close()
        for runner in self.runners.values():
            runner.start()

    async def stop(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.runners.values()))

    async def wait_for(self, position: int) -> None:
        """Wait until every projection has reached `position` (bound it with
        `asyncio.timeout`)."""
        await asyncio.gather(*(r.wait_for(position) for r in self.runners.values()))

    def status(self) -> list[dict[str, object]]:
        return [r.status() for r in self.runners.values()]
