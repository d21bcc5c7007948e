"""`ops_center.store.database`: one parse of DATABASE_URL, the same connection for every driver."""

from __future__ import annotations

import pickle
import ssl
from urllib.parse import parse_qs, urlsplit

import asyncpg
import psycopg
import pytest
from eventsourcing.postgres import PostgresDatastore

from ops_center.store.database import Database, DatabaseConfigError, OpsPostgresFactory, classify

NO_ENV: dict[str, str] = {}


def parse(url: str) -> dict[str, str]:
    return dict(Database.parse(url, NO_ENV).params)


@pytest.mark.parametrize(
    ("url", "host", "dbname"),
    [
        (
            "postgresql://postgres:@/postgres?host=/path/to/socket/dir",
            "/path/to/socket/dir",
            "postgres",
        ),
        ("postgresql:///ops?host=/run/pg", "/run/pg", "ops"),
        ("postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/ops", "/var/run/postgresql", "ops"),
        ("postgresql://u@[::1]:5433/ops", "::1", "ops"),
        ("postgres://u@db.example.vn/ops", "db.example.vn", "ops"),
        ("host=/tmp dbname=ops user=u", "/tmp", "ops"),
    ],
)
def test_every_libpq_form_names_its_host(url: str, host: str, dbname: str) -> None:
    params = parse(url)
    assert params["host"] == host
    assert params["dbname"] == dbname


def test_password_port_and_parameters_are_kept() -> None:
    params = parse(
        "postgresql://ops:p%40ss@db:6432/center?sslmode=verify-full&sslrootcert=/etc/ca.pem"
        "&application_name=node1&options=-c%20search_path%3Dops&connect_timeout=7"
    )
    assert params == {
        "host": "db",
        "port": "6432",
        "user": "ops",
        "password": "p@ss",
        "dbname": "center",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "application_name": "node1",
        "options": "-c search_path=ops",
        "connect_timeout": "7",
    }


def test_an_unsupported_parameter_is_named() -> None:
    with pytest.raises(DatabaseConfigError, match="'keepalives'"):
        Database.parse("postgresql://db/ops?keepalives=1", NO_ENV)


def test_an_unknown_parameter_is_named() -> None:
    with pytest.raises(DatabaseConfigError, match="frobnicate"):
        Database.parse("postgresql://db/ops?frobnicate=1", NO_ENV)


def test_another_scheme_is_refused() -> None:
    with pytest.raises(DatabaseConfigError, match=r"mysql://"):
        Database.parse("mysql://db/ops", NO_ENV)


def test_a_bad_sslmode_is_refused() -> None:
    with pytest.raises(DatabaseConfigError, match="sslmode 'sometimes'"):
        Database.parse("postgresql://db/ops?sslmode=sometimes", NO_ENV)


def test_defaults_are_explicit_and_follow_the_pg_environment() -> None:
    db = Database.parse("postgresql:///ops", {"PGHOST": "/srv/pg", "PGPORT": "6000", "PGUSER": "x"})
    assert dict(db.params) == {"host": "/srv/pg", "port": "6000", "user": "x", "dbname": "ops"}


def test_several_hosts_get_one_port_each() -> None:
    assert parse("postgresql://a,b:5433/ops")["port"] == "5432,5433"


def test_describe_names_the_place_never_the_password() -> None:
    text = Database.parse(
        "postgresql://ops:secret@/center?host=/run/pg&port=5433", NO_ENV
    ).describe()
    assert "socket /run/pg/.s.PGSQL.5433" in text
    assert "center" in text
    assert "secret" not in text
    assert "[::1]:5432" in Database.parse("postgresql://u@[::1]/x", NO_ENV).describe()


def test_the_url_round_trips_in_another_process() -> None:
    db = Database.parse(
        "postgresql://ops:p%40ss@/center?host=/run/pg&sslmode=disable&options=-c%20a%3Db", NO_ENV
    )
    assert Database.parse(db.url, NO_ENV) == db
    assert pickle.loads(pickle.dumps(db)) == db
    assert Database.parse(db.conninfo, NO_ENV) == db


def test_asyncpg_gets_the_same_server_and_parameters() -> None:
    db = Database.parse(
        "postgresql://ops:pw@/center?host=/run/pg&port=5433&sslmode=require"
        "&application_name=n1&options=-c%20x%3Dy&connect_timeout=4",
        NO_ENV,
    )
    args = db.asyncpg_args({"synchronous_commit": "off"})
    assert args["timeout"] == 4.0
    assert args["server_settings"] == {
        "application_name": "n1",
        "options": "-c x=y",
        "synchronous_commit": "off",
    }
    query = parse_qs(urlsplit(args["dsn"]).query)
    assert {k: v[0] for k, v in query.items()} == {
        "host": "/run/pg",
        "port": "5433",
        "user": "ops",
        "password": "pw",
        "dbname": "center",
        "sslmode": "require",
    }


def test_the_event_store_pool_gets_every_parameter() -> None:
    db = Database.parse(
        "postgresql://ops:pw@/center?host=/run/pg&sslmode=disable&application_name=n1"
        "&options=-c%20x%3Dy&connect_timeout=4",
        NO_ENV,
    )
    factory = OpsPostgresFactory(db.library_env())
    datastore: PostgresDatastore = factory.datastore
    kwargs = datastore.pool.kwargs
    assert isinstance(kwargs, dict)
    assert {k: kwargs[k] for k in ("host", "port", "dbname", "user", "password")} == {
        "host": "/run/pg",
        "port": "5432",
        "dbname": "center",
        "user": "ops",
        "password": "pw",
    }
    assert kwargs["sslmode"] == "disable"
    assert kwargs["application_name"] == "n1"
    assert kwargs["options"] == "-c x=y"
    assert kwargs["connect_timeout"] == "4"


def test_with_dbname_keeps_the_server() -> None:
    db = Database.parse("postgresql://ops@/center?host=/run/pg&sslmode=require", NO_ENV)
    other = db.with_dbname("scratch")
    assert other.dbname == "scratch"
    assert other.get("host") == "/run/pg"
    assert other.get("sslmode") == "require"


@pytest.mark.parametrize(
    ("exc", "verdict", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "unreachable", "refused"),
        (FileNotFoundError(2, "No such file or directory"), "unreachable", "No such file"),
        (TimeoutError(), "unreachable", "TimeoutError"),
        (ConnectionError('server at "x" rejected SSL upgrade'), "config", "TLS"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "config", "TLS"),
        (
            asyncpg.InvalidPasswordError("password authentication failed"),
            "config",
            "authentication",
        ),
        (
            asyncpg.InvalidCatalogNameError('database "x" does not exist'),
            "config",
            "no such database",
        ),
        (
            asyncpg.CannotConnectNowError("the database system is starting up"),
            "unreachable",
            "starting",
        ),
        (
            psycopg.OperationalError(
                'connection to server at "127.0.0.1", port 5432 failed: server does not '
                "support SSL, but SSL was required"
            ),
            "config",
            "TLS",
        ),
        (
            psycopg.OperationalError(
                'connection to server on socket "/x/.s.PGSQL.5432" failed: '
                "No such file or directory"
            ),
            "unreachable",
            "No such file",
        ),
        (
            psycopg.OperationalError(
                'connection to server at "h", port 5432 failed: FATAL:  password authentication '
                'failed for user "u"'
            ),
            "config",
            "authentication failed",
        ),
    ],
)
def test_classify_tells_waiting_from_configuration(
    exc: BaseException, verdict: str, words: str
) -> None:
    got, reason = classify(exc)
    assert got == verdict
    assert words in reason


@pytest.mark.parametrize(
    ("options", "schema"),
    [
        ("", "public"),
        ("-c search_path=ops", "ops"),
        ("-csearch_path=Ops,public", "ops"),
        ("--search_path=ops -c work_mem=8MB", "ops"),
        ('-c search_path="Ops"', "Ops"),
        ("-c work_mem=8MB", "public"),
    ],
)
def test_the_event_store_uses_the_schema_of_search_path(options: str, schema: str) -> None:
    db = Database.parse("postgresql://db/ops", NO_ENV)
    if options:
        db = db.with_params(options=options)
    assert db.schema == schema
    assert db.library_env()["POSTGRES_SCHEMA"] == schema


def test_a_search_path_starting_with_user_is_refused() -> None:
    db = Database.parse("postgresql://db/ops", NO_ENV).with_params(
        options="-c search_path=$user,public"
    )
    with pytest.raises(DatabaseConfigError, match="search_path"):
        db.library_env()
