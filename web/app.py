"""The composition root: `create_app(settings)` builds the whole server.

Nothing connects at import time. Every resource is a `cleanup_ctx` entry, started in
order and closed in reverse: the database (embedded PostgreSQL unless `database_url` is
set), the read pool and keyring, the event store, the group-commit writer, the
projection runners, and the live streams (`web.ws`: bus, hub, publisher).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import psycopg
from aiohttp import web

from ops_center.access.keys import SCHEMA as KEYS_SCHEMA
from ops_center.access.keystore import Keyring
from ops_center.access.ratelimit import RateLimiter
from ops_center.province.profile import load_profile
from ops_center.settings import Settings
from ops_center.store.application import OpsCenter
from ops_center.store.database import (
    Database,
    DatabaseConfigError,
    DatabaseUnreachable,
    as_database,
    classify,
)
from ops_center.store.writer import GroupCommitWriter
from projections.registry import create_projections
from projections.runner import SETUP_LOCK, ProjectionSet
from web.alarms import add_alarm_routes
from web.appkeys import (
    DATABASE,
    DB_POOL,
    EVENT_STORE,
    KEYRING,
    PROFILE,
    PROJECTIONS,
    RATE_LIMITER,
    READY,
    SETTINGS,
    WRITER,
)
from web.health import get_healthz
from web.ingest import post_events
from web.logs import add_request_logs, request_middleware
from web.metrics import add_metrics_routes
from web.middleware import auth_middleware, problems_middleware
from web.openapi import add_openapi_routes
from web.page import add_page_routes
from web.queries import add_query_routes
from web.ready import add_ready_routes
from web.reference import get_agencies, get_me, get_units
from web.ws import add_stream_routes

log = logging.getLogger(__name__)


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
    pause = 0.5
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
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


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


async def projection_runners(app: web.Application) -> AsyncIterator[None]:
    """The projection runners: read-model tables are created before serving; on shutdown
    the runners are cancelled and awaited (an unfinished chunk rolls back)."""
    runners = ProjectionSet(app[DATABASE], create_projections())
    await runners.start()
    app[PROJECTIONS] = runners
    app[READY]["projections"] = True
    try:
        yield
    finally:
        app[READY]["projections"] = False
        await runners.stop()


def create_app(settings: Settings) -> web.Application:
    """Build the server for these settings; resources start when the app starts."""
    app = web.Application(
        middlewares=[request_middleware, problems_middleware, auth_middleware],
        client_max_size=settings.max_body_bytes,
    )
    if settings.database_url is not None:
        Database.parse(settings.database_url)  # a configuration error stops here, at once
    app[SETTINGS] = settings
    app[PROFILE] = load_profile(settings.profile)
    app[RATE_LIMITER] = RateLimiter(burst_seconds=settings.rate_burst_seconds)
    app[READY] = {}
    app.cleanup_ctx.extend([database, read_pool, event_store, writer, projection_runners])
    app.router.add_get("/healthz", get_healthz)
    app.router.add_post("/api/v1/events", post_events)
    app.router.add_get("/api/v1/units", get_units)
    app.router.add_get("/api/v1/agencies", get_agencies)
    app.router.add_get("/api/v1/me", get_me)
    add_query_routes(app)
    add_openapi_routes(app)
    add_stream_routes(app)
    add_alarm_routes(app)
    add_page_routes(app)
    add_metrics_routes(app)
    add_ready_routes(app)
    add_request_logs(app)
    return app


def run(app: web.Application, settings: Settings) -> None:
    """Serve `app` until SIGINT/SIGTERM, then shut down gracefully (10 s at most).

    There is no per-request access log: it cost 7 % of CPU on single-event ingest
    (profiled); structured request logs are a separate concern.
    """
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=10,
        access_log=None,
    )
