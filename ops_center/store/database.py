"""One PostgreSQL connection for every driver: `DATABASE_URL` parsed once, honoured whole.

The server talks to PostgreSQL through three clients: psycopg (keys, the command line),
the `eventsourcing` library's psycopg pool (the event store) and asyncpg (queries,
projections, the pipeline). `Database.parse` reads a URL (``postgresql://...``) or a
``key=value`` string with libpq's own parser, so every form libpq accepts means the same
here: host names, IPv6 literals (``[::1]``), Unix-socket directories (``?host=/dir``,
``postgresql:///db?host=/dir``, a percent-encoded host ``postgresql://u@%2Fdir/db``),
several hosts (``h1,h2``), ports, user and password, and the parameters in `SUPPORTED`.
Each client then gets exactly those values (`conninfo`, `library_env`, `asyncpg_args`):
nothing falls back to another server.

Defaults are made explicit at parse time (host, port, user, database name from the
``PG*`` environment variables or libpq's defaults) because the drivers' own defaults
differ: libpq and asyncpg look for a local socket in different folders.

A parameter outside `SUPPORTED` (one that some client would drop or misread) raises
`DatabaseConfigError` naming it. `classify` tells a server that is not reachable yet
(worth waiting for) from a configuration error (TLS refused or required, a certificate
that does not verify, authentication failed, no such database), which stops the start.
"""

from __future__ import annotations

import getpass
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

import psycopg
from eventsourcing.postgres import PostgresFactory
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: libpq parameters that psycopg, the library's pool and asyncpg all honour.
SUPPORTED: Final = frozenset(
    {
        "host",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "application_name",
        "options",
        "connect_timeout",
    }
)
#: Parameters sent to the server as run-time settings at connection start (asyncpg's
#: ``server_settings``; libpq sends them itself).
_SERVER_SETTINGS: Final = ("application_name", "options")
#: Where libpq and asyncpg look for a local server's socket when no host is given.
_SOCKET_DIRS: Final = ("/run/postgresql", "/var/run/postgresql", "/tmp")
_SSLMODES: Final = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
#: The environment variables libpq reads for the parameters made explicit here.
_ENV_DEFAULTS: Final = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "dbname": "PGDATABASE",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "passfile": "PGPASSFILE",
}


class DatabaseConfigError(ValueError):
    """The database configuration is wrong (not a server that is down): one line for the
    operator, naming what to fix. Never contains a password."""


class DatabaseUnreachable(ConnectionError):
    """The server could not be reached within the startup wait. One line, no password."""


@dataclass(frozen=True, slots=True)
class Database:
    """Where and how to connect, as libpq keywords (`params`), defaults made explicit.

    Immutable, hashable and picklable: it travels to threads and child processes as is.
    """

    params: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> Database:
        """Parse a ``postgresql://`` URL or a libpq ``key=value`` string.

        Raises `DatabaseConfigError` for a malformed URL or a parameter not in
        `SUPPORTED`.
        """
        env = os.environ if environ is None else environ
        text = url.strip()
        if "://" in text and not text.startswith(("postgresql://", "postgres://")):
            scheme = text.split("://", 1)[0]
            raise DatabaseConfigError(
                f"DATABASE_URL must start with postgresql:// (got {scheme}://)"
            )
        try:
            given = conninfo_to_dict(text)
        except psycopg.ProgrammingError as exc:
            raise DatabaseConfigError(f"DATABASE_URL is not valid: {_first_line(exc)}") from None
        unknown = sorted(set(given) - SUPPORTED)
        if unknown:
            raise DatabaseConfigError(
                f"DATABASE_URL parameter {', '.join(repr(u) for u in unknown)} is not "
                "supported (not honoured by every PostgreSQL client of the server); "
                f"supported: {', '.join(sorted(SUPPORTED))}"
            )
        params = {k: str(v) for k, v in given.items() if v is not None and str(v) != ""}
        for key, variable in _ENV_DEFAULTS.items():
            if key not in params and env.get(variable):
                params[key] = env[variable]
        params.setdefault("port", "5432")
        params.setdefault("user", _os_user())
        params.setdefault("dbname", params["user"])
        if "host" not in params:
            params["host"] = _local_socket(params["port"]) or "localhost"
        params["port"] = _ports(params["host"], params["port"])
        mode = params.get("sslmode")
        if mode is not None and mode not in _SSLMODES:
            raise DatabaseConfigError(
                f"DATABASE_URL sslmode {mode!r} is not one of {', '.join(sorted(_SSLMODES))}"
            )
        if "connect_timeout" in params:
            try:
                float(params["connect_timeout"])
            except ValueError:
                raise DatabaseConfigError(
                    f"DATABASE_URL connect_timeout {params['connect_timeout']!r} is not a number"
                ) from None
        return cls(tuple(sorted(params.items())))

    # -- views -------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        return dict(self.params).get(key, default)

    @property
    def dbname(self) -> str:
        return dict(self.params)["dbname"]

    @property
    def conninfo(self) -> str:
        """The libpq connection string (psycopg's ``conninfo``)."""
        return make_conninfo(**dict(self.params))

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL with every parameter, for `parse` in another process
        (environment variables of child processes)."""
        return "postgresql://?" + urlencode(dict(self.params), quote_via=quote)

    def with_dbname(self, dbname: str) -> Database:
        """The same server and credentials, another database (scratch databases)."""
        params = dict(self.params)
        params["dbname"] = dbname
        return Database(tuple(sorted(params.items())))

    def with_params(self, **changes: str) -> Database:
        """A copy with some parameters changed (e.g. ``application_name``)."""
        params = dict(self.params)
        params.update(changes)
        return Database(tuple(sorted(params.items())))

    def describe(self) -> str:
        """Where this connects, for logs: host and port (or socket folder) and database;
        never the password."""
        params = dict(self.params)
        hosts = params["host"].split(",")
        ports = params["port"].split(",")
        places = []
        for i, host in enumerate(hosts):
            port = ports[i] if i < len(ports) else ports[-1]
            if host.startswith("/"):
                places.append(f"socket {host}/.s.PGSQL.{port}")
            elif ":" in host:
                places.append(f"[{host}]:{port}")
            else:
                places.append(f"{host}:{port}")
        tls = params.get("sslmode", "prefer")
        return (
            f"{', '.join(places)} database {params['dbname']!r} as {params['user']!r} "
            f"(sslmode {tls})"
        )

    def asyncpg_args(self, server_settings: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``asyncpg.create_pool``.

        Everything goes through asyncpg's own DSN parser (the same keywords as libpq),
        except ``connect_timeout`` (asyncpg's ``timeout``) and the parameters the
        server applies at connection start (``server_settings``, to which the caller's
        `server_settings` are added).
        """
        params = dict(self.params)
        args: dict[str, Any] = {}
        timeout = params.pop("connect_timeout", None)
        if timeout is not None:
            args["timeout"] = float(timeout)
        settings: dict[str, str] = {k: params.pop(k) for k in _SERVER_SETTINGS if k in params}
        settings.update(server_settings or {})
        if settings:
            args["server_settings"] = settings
        args["dsn"] = "postgresql://?" + urlencode(params, quote_via=quote)
        return args

    def library_env(self, *, pool_size: int = 3) -> dict[str, str]:
        """The `eventsourcing` environment: the library's PostgreSQL recorder through
        `OpsPostgresFactory`, which gives its pool every parameter."""
        params = dict(self.params)
        return {
            "PERSISTENCE_MODULE": f"{__name__}:OpsPostgresFactory",
            "POSTGRES_DBNAME": params["dbname"],
            "POSTGRES_HOST": params["host"],
            "POSTGRES_PORT": params["port"],
            "POSTGRES_USER": params["user"],
            "POSTGRES_PASSWORD": params.get("password", ""),
            _EXTRA_ENV: make_conninfo(**{k: v for k, v in params.items() if k not in _LIBRARY_OWN}),
            "POSTGRES_POOL_SIZE": str(pool_size),
            # The library's wait for a pooled connection, not libpq's connect_timeout.
            "POSTGRES_CONNECT_TIMEOUT": "3",
            # No pre-ping: it costs a round trip per checkout on the writer's hot path; a
            # broken connection surfaces as OperationalError, which the library retries
            # and ingest turns into 503.
            "POSTGRES_PRE_PING": "n",
            "POSTGRES_LOCK_TIMEOUT": "10",
            # The library qualifies its tables with a schema; asyncpg follows search_path.
            "POSTGRES_SCHEMA": self.schema,
            "CREATE_TABLE": "y",
        }

    @property
    def schema(self) -> str:
        """The schema every client creates and reads tables in: the first entry of a
        ``search_path`` given in ``options`` (``-c search_path=ops``), else ``public``."""
        return _first_schema(dict(self.params).get("options", "")) or "public"


_EXTRA_ENV: Final = "OPS_POSTGRES_EXTRA_CONNINFO"
_LIBRARY_OWN: Final = frozenset({"dbname", "host", "port", "user", "password"})


class OpsPostgresFactory(PostgresFactory):
    """The library's PostgreSQL factory, whose pool also gets the parameters the library
    has no setting for (TLS, ``options``, ``application_name``, ``connect_timeout``)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        extra = self.env.get(_EXTRA_ENV) or ""
        if extra:
            kwargs = self.datastore.pool.kwargs
            assert isinstance(kwargs, dict)
            kwargs.update(conninfo_to_dict(extra))


def as_database(value: Database | str) -> Database:
    """`value` itself, or parsed when it is a URL string (tests and tools pass URLs)."""
    return value if isinstance(value, Database) else Database.parse(value)


def _first_schema(options: str) -> str | None:
    """The first schema of ``search_path`` in libpq ``options`` (``-c search_path=a,b``,
    ``-csearch_path=a``, ``--search_path=a``); None when it is not set there."""
    words = options.replace("\\ ", "\0").split()
    values: list[str] = []
    for i, word in enumerate(words):
        setting = None
        if word == "-c" and i + 1 < len(words):
            setting = words[i + 1]
        elif (word.startswith("-c") and len(word) > 2) or word.startswith("--"):
            setting = word[2:]
        if setting is not None:
            name, sep, value = setting.partition("=")
            if sep and name.strip().replace("-", "_") == "search_path":
                values.append(value.replace("\0", " "))
    if not values:
        return None
    first = values[-1].split(",")[0].strip()
    if first.startswith('"') and first.endswith('"') and len(first) > 1:
        return first[1:-1]
    if first == "$user" or not first:
        raise DatabaseConfigError(
            "DATABASE_URL options: search_path must start with a plain schema name "
            f"(got {values[-1]!r}); the event store's tables are created in that schema"
        )
    return first.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "postgres"


def _local_socket(port: str) -> str | None:
    first = port.split(",")[0] or "5432"
    for folder in _SOCKET_DIRS:
        if Path(folder, f".s.PGSQL.{first}").exists():
            return folder
    return None


def _ports(host: str, port: str) -> str:
    """One port per host (libpq leaves empty entries at the default; asyncpg does not)."""
    hosts = host.split(",")
    ports = port.split(",")
    if len(ports) == 1:
        return ports[0] or "5432"
    return ",".join(p or "5432" for p in ports[: len(hosts)])


# -- what a failed connection means -------------------------------------------------------

Verdict = Literal["unreachable", "config"]

_CONFIG_MARKERS: Final = (
    # libpq's and asyncpg's words for configuration errors (lower case)
    ("ssl", "TLS"),
    ("certificate", "TLS certificate"),
    ("password authentication failed", "authentication failed"),
    ("authentication failed", "authentication failed"),
    ("no pg_hba.conf entry", "access refused by pg_hba.conf"),
    ("does not exist", "no such database or role"),
    ("invalid", "invalid parameter"),
    ("unrecognized configuration parameter", "invalid parameter"),
    ("permission denied", "permission denied"),
)


def classify(exc: BaseException) -> tuple[Verdict, str]:
    """Whether a failure to connect is worth waiting for (``unreachable``: refused,
    no socket yet, timed out, the server starting or full) or a configuration error
    (``config``), and one line saying what happened (no password)."""
    import asyncpg  # local: the command line's psycopg-only paths need not load it

    message = _first_line(exc)
    if isinstance(exc, ssl.SSLError):
        return "config", f"TLS: {message}"
    if isinstance(
        exc,
        (
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidPasswordError,
        ),
    ):
        return "config", f"authentication failed: {message}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "config", f"no such database: {message}"
    if isinstance(exc, (asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)):
        return "unreachable", message
    if isinstance(exc, asyncpg.PostgresError):
        return "config", message
    if isinstance(exc, ConnectionError) and "ssl" in message.lower():
        return "config", f"TLS: {message}"
    if isinstance(exc, (OSError, TimeoutError)):
        return "unreachable", message or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError):
        lowered = str(exc).lower()
        if any(m in lowered for m in ("starting up", "shutting down", "too many clients")):
            return "unreachable", message
        for marker, what in _CONFIG_MARKERS:
            if marker in lowered:
                return "config", f"{what}: {_libpq_reason(exc)}"
        return "unreachable", _libpq_reason(exc)
    return "config", message


def _libpq_reason(exc: BaseException) -> str:
    """libpq's messages start with 'connection to server at ... failed: <reason>'."""
    text = " ".join(str(exc).split())
    _, sep, reason = text.partition("failed: ")
    return reason if sep else text
