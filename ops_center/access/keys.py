"""API keys: roles, scopes, hashing, and the keys table.

A key is a random secret shown once when it is created; only its SHA-256 is stored (the
secret has 256 bits of entropy, so a fast hash is enough and lookups stay O(1)).

Roles (docs/CONTRACT.md §7): ``integration`` may ingest, limited to event-type patterns
(``--scope``, e.g. ``camera.*``) and source patterns (``--source``), and read the reference
data (``/api/v1/units``, ``/api/v1/agencies``) but no other read; ``viewer`` reads queries
and streams; ``operator`` is a viewer who can act on alarms; ``admin`` may do everything.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Final, Literal

Role = Literal["integration", "viewer", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = ("integration", "viewer", "operator", "admin")
Permission = Literal["ingest", "read", "act"]
#: Every permission, in the order the roles grow.
PERMISSIONS: tuple[Permission, ...] = ("read", "act", "ingest")

_GRANTS: Final[dict[Role, frozenset[Permission]]] = {
    "integration": frozenset({"ingest"}),
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "act"}),
    "admin": frozenset({"ingest", "read", "act"}),
}

KEY_PREFIX: Final = "oc_"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS api_keys (
    name text PRIMARY KEY,
    key_hash bytea NOT NULL UNIQUE,
    role text NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}',
    sources text[] NOT NULL DEFAULT '{}',
    rate double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
)
"""


def new_secret() -> str:
    """A new random key: ``oc_`` and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's name, role and limits."""

    name: str
    role: Role
    scopes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    rate: float | None = None
    revoked_at: datetime | None = None

    def can(self, permission: Permission) -> bool:
        return permission in _GRANTS[self.role]

    def may_send_type(self, event_type: str) -> bool:
        """Whether this key may ingest this event type (from some source)."""
        if self.role == "admin":
            return True
        return self.can("ingest") and _matches(self.scopes, event_type)

    def may_send(self, event_type: str, source: str) -> bool:
        """Whether this key may ingest an event of this type from this source.

        Admins may send anything. An integration key without scopes may send no type;
        without source patterns it may send from any source.
        """
        if self.role == "admin":
            return True
        if not self.may_send_type(event_type):
            return False
        return not self.sources or _matches(self.sources, source)


@lru_cache(maxsize=65_536)
def _matches(patterns: tuple[str, ...], value: str) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def check_name(name: str) -> str:
    """A key name: 1-64 letters, digits, ``-``, ``_`` or ``.``."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError("a key name is 1-64 letters, digits, '-', '_' or '.'")
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise ValueError(f"role must be one of {', '.join(ROLES)}")
