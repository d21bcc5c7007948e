"""Where keys live: the ``api_keys`` table, for the command line and for the server.

The command line (`create_key`, `list_keys`, `revoke_key`) talks to PostgreSQL directly
with psycopg, so it works whether or not the server is running. The server's `Keyring`
looks keys up with asyncpg and trusts an answer for `ttl` seconds: a revoked key stops
working within that time on every node.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ops_center.access.keys import (
    SCHEMA,
    Principal,
    check_name,
    check_role,
    hash_secret,
    new_secret,
)
from ops_center.store.database import Database, as_database


class KeyCommandError(Exception):
    """A key command that cannot be carried out (name taken, unknown name, already revoked).

    Values refused before any work (a bad name, role, scope or rate) raise `ValueError`.
    """


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listed: never its secret."""

    name: str
    role: str
    scopes: tuple[str, ...]
    sources: tuple[str, ...]
    rate: float | None
    created_at: datetime
    revoked_at: datetime | None


def ensure_schema(database: Database | str) -> None:
    with psycopg.connect(as_database(database).conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)


def create_key(
    database: Database | str,
    name: str,
    role: str,
    *,
    scopes: Sequence[str] = (),
    sources: Sequence[str] = (),
    rate: float | None = None,
) -> str:
    """Create a key and return its secret (shown once; only its hash is stored)."""
    check_name(name)
    checked_role = check_role(role)
    if rate is not None and rate <= 0:
        raise ValueError("--rate must be a positive number of events per second")
    if checked_role == "integration" and not scopes:
        raise ValueError("an integration key needs at least one --scope (e.g. 'camera.*')")
    secret = new_secret()
    with psycopg.connect(as_database(database).conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
        try:
            conn.execute(
                "INSERT INTO api_keys (name, key_hash, role, scopes, sources, rate) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (name, hash_secret(secret), checked_role, list(scopes), list(sources), rate),
            )
        except psycopg.errors.UniqueViolation:
            raise KeyCommandError(f"a key named {name!r} already exists") from None
    return secret


def list_keys(database: Database | str) -> list[KeyInfo]:
    with psycopg.connect(as_database(database).conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
        rows = conn.execute(
            "SELECT name, role, scopes, sources, rate, created_at, revoked_at "
            "FROM api_keys ORDER BY name"
        ).fetchall()
    return [KeyInfo(r[0], r[1], tuple(r[2]), tuple(r[3]), r[4], r[5], r[6]) for r in rows]


def revoke_key(database: Database | str, name: str) -> None:
    """Revoke a key by name; revoking twice is refused."""
    with psycopg.connect(as_database(database).conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
        row = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL "
            "RETURNING name",
            (name,),
        ).fetchone()
        if row is None:
            exists = conn.execute("SELECT 1 FROM api_keys WHERE name = %s", (name,)).fetchone()
            if exists is None:
                raise KeyCommandError(f"no key named {name!r}")
            raise KeyCommandError(f"key {name!r} is already revoked")


def principal_from_row(row: Any) -> Principal:
    return Principal(
        name=row["name"],
        role=check_role(row["role"]),
        scopes=tuple(row["scopes"]),
        sources=tuple(row["sources"]),
        rate=row["rate"],
        revoked_at=row["revoked_at"],
    )


class Keyring:
    """Resolves bearer secrets to principals for the server, with a short cache."""

    def __init__(self, pool: Any, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._pool = pool
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def lookup(self, secret: str) -> Principal | None:
        """The active principal for this secret, or None if unknown or revoked."""
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = await self._pool.fetchrow(
            "SELECT name, role, scopes, sources, rate, revoked_at FROM api_keys "
            "WHERE key_hash = $1",
            digest,
        )
        principal = None
        if row is not None and row["revoked_at"] is None:
            principal = principal_from_row(row)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, principal)
        return principal
