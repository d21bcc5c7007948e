"""``GET /api/v1/me``: the calling key's name, role and permissions (for screens)."""

from __future__ import annotations

from typing import Any

import pytest

MAY = {
    "integration": ["ingest"],
    "viewer": ["read"],
    "operator": ["act", "read"],
    "admin": ["act", "ingest", "read"],
}


@pytest.mark.parametrize("role", sorted(MAY))
async def test_each_role_learns_what_it_may_do(make_api: Any, make_key: Any, role: str) -> None:
    api = await make_api()
    key = make_key(role)
    reply = await api.get("/api/v1/me", key=key)
    assert reply.status == 200, reply.body
    assert reply.body == {"name": key.name, "role": role, "may": MAY[role]}


async def test_without_a_key_it_answers_401(make_api: Any) -> None:
    api = await make_api()
    reply = await api.get("/api/v1/me", key=None)
    assert reply.status == 401
