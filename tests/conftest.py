"""Session fixtures shared by all tests: PostgreSQL and Redis servers.

* ``database_url``: a fresh, randomly named database (``ops_test_<hex>``) created for this
  session and dropped at its end (``WITH (FORCE)``), on the server of ``TEST_DATABASE_URL`` if
  set, else on an embedded PostgreSQL started in a temporary folder. Tests never touch other
  databases, even on a shared server.
* ``empty_database_url``: another such database, new for one test (no tables), for tests of
  what happens on a first start.
* ``redis_url``: ``TEST_REDIS_URL`` if set, else an embedded in-memory Redis, started only if
  a test asks for it.
* ``embedded_redis``: always an embedded Redis (an `EmbeddedRedis`), for tests that restart it.

The fixtures are plain synchronous fixtures, usable from sync and async tests.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ops_center.embedded.postgres import EmbeddedPostgres
from ops_center.embedded.redis import EmbeddedRedis
from ops_center.store.database import Database


def _with_database(url: str, dbname: str) -> str:
    """`url` pointing at database `dbname`, as a URL that every driver reads the same way."""
    return Database.parse(url).with_dbname(dbname).url


def _server_folder() -> Path:
    """A folder for an embedded server outside pytest's temporary tree.

    As root, the embedded PostgreSQL runs as its own system user, which must be able to
    reach its data folder; pytest resets the permissions of its own tree to 0700 whenever
    a pytest session starts, which would cut a running server off from its files.
    """
    return Path(tempfile.mkdtemp(prefix="ops-center-test-"))


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh folder for an embedded server; any server left on it is stopped afterwards."""
    folder = _server_folder()
    try:
        yield folder / "data"
    finally:
        EmbeddedPostgres(folder / "data").stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of the PostgreSQL server: TEST_DATABASE_URL, or an embedded one."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url:
        yield server_url
        return
    server = EmbeddedPostgres(_server_folder() / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def _private_database(server_url: str) -> Iterator[str]:
    """A new database on the server, dropped (``WITH (FORCE)``) afterwards."""
    dbname = f"ops_test_{secrets.token_hex(6)}"
    with psycopg.connect(Database.parse(server_url).conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield _with_database(server_url, dbname)
    finally:
        with psycopg.connect(Database.parse(server_url).conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """DSN (URL) of a private database for this test session."""
    with _private_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def new_database(postgres_server: str) -> Callable[[], AbstractContextManager[str]]:
    """``with new_database() as url:`` a new, empty database on the test server, dropped
    afterwards (for fixtures of any scope that need a database of their own)."""
    return lambda: _private_database(postgres_server)


@pytest.fixture
def empty_database_url(postgres_server: str) -> Iterator[str]:
    """DSN (URL) of a new, empty database for one test (no tables yet)."""
    with _private_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server: TEST_REDIS_URL, or an embedded one started on first use."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    """A running embedded Redis that tests may `restart` (same port, data lost)."""
    with EmbeddedRedis() as server:
        yield server
