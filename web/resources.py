"""Every resource the server runs, as `cleanup_ctx` entries, in the order
`web.app.create_app` starts them (and closes them in reverse).

* `database`: the configured PostgreSQL, or the embedded one.
* `read_pool`: the asyncpg pool for keys and queries, and the keyring; checks that every
  driver reaches the same server.
* `event_store`: the eventsourcing application (creates its tables on first start).
* `writer`: the group-commit writer.
* `alarm_desk`: the alarm desk of operators' actions.
* `stream_bus`: the stream bus (Redis, or in-process).
* `rate_limits`: per-key rate limits, shared through Redis when it is configured.
* `pipeline`: when `Settings.pipeline` is ``inline``, the event pipeline in this process
  (the follower feeding projections and alarm rules, and the stream publisher); else only
  the read-model tables are made sure of (the pipeline runs in its own process).
* `rebuilding`: which projections are being rebuilt (their queries answer 503).
* `stream_hub`: this process's hub of WebSocket subscriptions.

Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
import psycopg
from aiohttp import web
from redis.asyncio import Redis

from ops_center.access.keys import SCHEMA as KEYS_SCHEMA
from ops_center.access.keystore import Keyring
from ops_center.access.ratelimit import RateLimiter, SharedRateLimiter
from ops_center.alarms.engine import AlarmDesk
from ops_center.pipeline.assembly import open_pipeline
from ops_center.runtime.backoff import Backoff
from ops_center.runtime.tasks import stop_tasks
from ops_center.store.application import OpsCenter
from ops_center.store.database import (
    Database,
    DatabaseConfigError,
    DatabaseUnreachable,
    as_database,
    classify,
)
from ops_center.store.writer import GroupCommitWriter
from projections.projection import POSITIONS_TABLE, SETUP_LOCK, ensure_schema
from projections.registry import create_projections
from streams.bus import Bus
from streams.hub import Hub
from streams.memory import InMemoryBus
from streams.redis_bus import RedisBus
from streams.sources import Source
from web.appkeys import (
    ALARM_DESK,
    DATABASE,
    DB_POOL,
    EVENT_STORE,
    KEYRING,
    PROFILE,
    PROJECTIONS,
    RATE_LIMITER,
    READY,
    REBUILDING,
    SETTINGS,
    STREAM_BUS,
    STREAM_HUB,
    STREAM_PUBLISHER,
    STREAM_SOURCE,
    WRITER,
)
from web.ws import POOL_SIZE, close_websockets

log = logging.getLogger(__name__)

#: Seconds between readings of which projections are being rebuilt.
REBUILDING_EVERY: Final = 1.0


async def database(app: web.Application) -> AsyncIterator[None]:
    """Use `database_url`, or start the embedded PostgreSQL in `data_dir`."""
    settings = app[SETTINGS]
    if settings.database_url is not None:
        app[DATABASE] = Database.parse(settings.database_url)
        yield
        return
    from ops_center.embedded.postgres import EmbeddedPostgres

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.data_dir)
    log.info("starting the embedded PostgreSQL in %s", settings.data_dir)
    app[DATABASE] = Database.parse(await asyncio.to_thread(server.start))
    try:
        yield
    finally:
        await asyncio.to_thread(server.stop)


async def connect_pool(database: Database | str, wait_seconds: float) -> asyncpg.Pool:
    """An asyncpg pool on `database`, waiting up to `wait_seconds` for a server that is
    not reachable yet (a database started beside the server may still be starting).

    A configuration error (TLS, authentication, no such database, a bad parameter)
    raises `DatabaseConfigError` at once: waiting would not mend it; a server still not
    reachable after the wait raises `DatabaseUnreachable`.
    """
    database = as_database(database)
    deadline = time.monotonic() + wait_seconds
    pause = Backoff(0.5, 5.0)
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                **database.asyncpg_args(), min_size=1, max_size=10
            )
            return pool
        except Exception as exc:
            verdict, reason = classify(exc)
            if verdict == "config":
                raise DatabaseConfigError(
                    f"cannot use PostgreSQL at {database.describe()}: {reason}"
                ) from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseUnreachable(
                    f"PostgreSQL at {database.describe()} is not reachable "
                    f"(waited {wait_seconds:g} s): {reason}"
                ) from exc
            log.warning(
                "PostgreSQL at %s is not reachable yet (%s); retrying for %.0f more seconds",
                database.describe(),
                reason,
                left,
            )
            await pause.sleep(cap=left)


#: Identifies a server and database the same way from every driver.
_IDENTITY = "SELECT current_database(), pg_postmaster_start_time()::text"


def _psycopg_identity(database: Database) -> tuple[str, str]:
    try:
        with psycopg.connect(database.conninfo, autocommit=True) as conn:
            row = conn.execute(_IDENTITY).fetchone()
    except psycopg.Error as exc:
        _, reason = classify(exc)
        raise DatabaseConfigError(
            f"cannot use PostgreSQL at {database.describe()} with psycopg: {reason}"
        ) from exc
    assert row is not None
    return (row[0], row[1])


async def same_server(pool: asyncpg.Pool, database: Database) -> None:
    """Check that psycopg (keys, the event store) reaches the server and database the
    asyncpg pool reaches; raise `DatabaseConfigError` otherwise."""
    row = await pool.fetchrow(_IDENTITY)
    via_asyncpg = (row[0], row[1])
    via_psycopg = await asyncio.to_thread(_psycopg_identity, database)
    if via_asyncpg != via_psycopg:
        raise DatabaseConfigError(
            f"the PostgreSQL clients reach different servers for {database.describe()}: "
            f"asyncpg {via_asyncpg}, psycopg {via_psycopg}"
        )


async def read_pool(app: web.Application) -> AsyncIterator[None]:
    """The asyncpg pool for keys and queries, and the keyring on top of it."""
    database = app[DATABASE]
    pool = await connect_pool(database, app[SETTINGS].startup_wait_seconds)
    try:
        await same_server(pool, database)
    except BaseException:
        await pool.close()
        raise
    log.info("using PostgreSQL at %s", database.describe())
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK)
        await conn.execute(KEYS_SCHEMA)
    app[DB_POOL] = pool
    app[KEYRING] = Keyring(pool, ttl=app[SETTINGS].key_cache_seconds)
    try:
        yield
    finally:
        await pool.close()


async def event_store(app: web.Application) -> AsyncIterator[None]:
    """The eventsourcing application (creates its tables on first start, holding the
    setup lock so that nodes starting together on a new database do not race)."""
    settings = app[SETTINGS]
    pool: asyncpg.Pool = app[DB_POOL]
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", SETUP_LOCK)
        try:
            store = await asyncio.to_thread(
                OpsCenter, app[DATABASE], cache_size=settings.aggregate_cache_size
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SETUP_LOCK)
    app[EVENT_STORE] = store
    try:
        yield
    finally:
        await asyncio.to_thread(store.close)


async def writer(app: web.Application) -> AsyncIterator[None]:
    """The group-commit writer; on shutdown it commits what was already submitted."""
    settings = app[SETTINGS]
    group_writer = GroupCommitWriter(
        app[EVENT_STORE].ingest,
        max_batch=settings.commit_max_events,
        max_wait=settings.commit_max_wait_ms / 1000,
        max_queue=settings.commit_max_queue,
    )
    await group_writer.start()
    app[WRITER] = group_writer
    app[READY]["writer"] = True
    try:
        yield
    finally:
        app[READY]["writer"] = False
        await group_writer.close()


async def alarm_desk(app: web.Application) -> AsyncIterator[None]:
    """The alarm desk for operators' actions (its tables are created holding the setup
    lock; nodes starting together on a new database do not race)."""
    pool: asyncpg.Pool = app[DB_POOL]
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", SETUP_LOCK)
        try:
            desk = await asyncio.to_thread(AlarmDesk, app[DATABASE])
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SETUP_LOCK)
    app[ALARM_DESK] = desk
    try:
        yield
    finally:
        await asyncio.to_thread(desk.close)


async def stream_bus(app: web.Application) -> AsyncIterator[None]:
    """The stream bus: Redis when `redis_url` is set, else in-process (the pipeline must
    then run inside this process for screens to get changes)."""
    settings = app[SETTINGS]
    bus: Bus
    if settings.redis_url is None:
        bus = InMemoryBus()
    else:
        bus = RedisBus(settings.redis_url, namespace=settings.redis_namespace)
    await bus.start()
    app[STREAM_BUS] = bus
    try:
        yield
    finally:
        await bus.close()


async def rate_limits(app: web.Application) -> AsyncIterator[None]:
    """Per-key rate limits: one bucket per key for every process and node sharing the
    Redis of `redis_url` (the HTTP processes of ``ops-center serve`` do), else in this
    process."""
    settings = app[SETTINGS]
    if settings.redis_url is None:
        app[RATE_LIMITER] = RateLimiter(burst_seconds=settings.rate_burst_seconds)
        yield
        return
    client = Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    shared = SharedRateLimiter(
        client, namespace=settings.redis_namespace, burst_seconds=settings.rate_burst_seconds
    )
    app[RATE_LIMITER] = shared
    try:
        yield
    finally:
        await shared.close()


async def pipeline(app: web.Application) -> AsyncIterator[None]:
    """The event pipeline inside this process, when `Settings.pipeline` is ``inline``:
    the follower (projections and alarm rules) and the stream publisher. Read-model
    tables are created before serving; on shutdown an unfinished step rolls back."""
    if app[SETTINGS].pipeline != "inline":
        conn = await asyncpg.connect(**app[DATABASE].asyncpg_args())
        try:
            await ensure_schema(conn, create_projections())  # queries can be served at once
        finally:
            await conn.close()
        yield
        return
    running = await open_pipeline(
        app[SETTINGS], app[DATABASE], app[PROFILE], app[STREAM_BUS], app[ALARM_DESK]
    )
    app[PROJECTIONS] = running.follower
    app[STREAM_PUBLISHER] = running.publisher
    app[READY]["projections"] = True
    try:
        yield
    finally:
        app[READY]["projections"] = False
        await running.close()


async def rebuilding(app: web.Application) -> AsyncIterator[None]:
    """Which projections are being rebuilt (``projection_positions.rebuilding``), read
    every `REBUILDING_EVERY` seconds: their queries answer 503 meanwhile."""
    found: set[str] = set()
    app[REBUILDING] = found
    pool: asyncpg.Pool = app[DB_POOL]

    async def watch() -> None:
        while True:
            try:
                rows = await pool.fetch(f"SELECT name FROM {POSITIONS_TABLE} WHERE rebuilding")
            except Exception as exc:
                log.debug("cannot read which projections are rebuilt: %s", exc)
            else:
                found.clear()
                found.update(row[0] for row in rows)
            await asyncio.sleep(REBUILDING_EVERY)

    task = asyncio.create_task(watch(), name="rebuilding")
    try:
        yield
    finally:
        await stop_tasks([task])


async def stream_hub(app: web.Application) -> AsyncIterator[None]:
    """This process's hub: it fans the bus's changes out to its WebSockets (closed with
    1001 on shutdown)."""
    settings = app[SETTINGS]
    pool = await asyncpg.create_pool(**app[DATABASE].asyncpg_args(), min_size=1, max_size=POOL_SIZE)
    source = Source(pool, app[PROFILE])
    hub = Hub(
        app[STREAM_BUS],
        source.snapshot,
        app[PROFILE].descendants,
        queue_limit=settings.ws_queue_frames,
        window=settings.stream_resume_changes,
        history=settings.stream_resume_states,
        grace=settings.stream_grace_seconds,
    )
    await hub.start()
    app[STREAM_HUB] = hub
    app[STREAM_SOURCE] = source
    try:
        yield
    finally:
        await close_websockets(app)
        await hub.close()
        await pool.close()
