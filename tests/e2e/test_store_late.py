"""Startup with an external PostgreSQL that is not up yet (as when docker-compose starts
the database and the server together): the server waits for it, then serves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final

import pytest

from ops_center.embedded.postgres import EmbeddedPostgres, free_port
from ops_center.store.database import DatabaseUnreachable
from web.resources import connect_pool

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


#: A key to start the app with before its database exists (replaced once it does).
NO_KEY: Final = SimpleNamespace(headers={})


@pytest.fixture
def pg(server_dir: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """An embedded PostgreSQL (not started) on a fixed port, and its future DSN."""
    port = free_port()
    server = EmbeddedPostgres(server_dir, port=port)
    try:
        yield server, f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.stop()


async def test_startup_waits_for_a_database_that_comes_up_later(
    pg: tuple[EmbeddedPostgres, str], make_api: Any, make_key: Any, ce: Any
) -> None:
    server, dsn = pg
    starting = asyncio.create_task(make_api(key=NO_KEY, database_url=dsn, startup_wait_seconds=60))
    await asyncio.sleep(2.0)
    assert not starting.done()  # still waiting for the database
    assert await asyncio.to_thread(server.start) == dsn
    api = await asyncio.wait_for(starting, 60)
    api.key = make_key("integration", url=dsn)
    positions = await api.ingest(ce.event("camera.registered"))
    assert positions[0] >= 1


async def test_startup_gives_up_after_the_wait(pg: tuple[EmbeddedPostgres, str]) -> None:
    _, dsn = pg
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable, match="not reachable"):
        await connect_pool(dsn, 1.5)
    assert 1.5 <= time.monotonic() - started < 30
