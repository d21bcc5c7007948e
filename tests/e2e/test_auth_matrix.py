"""The auth matrix: every route of the app's router against no key, a bad key, a revoked
key and each role gives the contract's answer (docs/CONTRACT.md §7).

Routes are enumerated from the running app, so a route added later is covered at once;
a route this file cannot classify fails the test until its rule is written down in
`allowed_roles` (which is the contract's table in code).

* public routes (``/healthz``, ``/readyz``, the ops-room page and its static files)
  answer every caller without 401/403;
* every other route answers 401 (problem+json, ``WWW-Authenticate: Bearer``) to no key,
  a bad key and a revoked key; 403 (problem+json) to a role the contract does not allow;
  and neither 401 nor 403 to a role it allows;
* no combination answers 5xx.

WebSocket specifics (foreign Origin, missing token, oversized frame) are in
``test_ws.py``; the idle timeout and the query-token forms are here.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import aiohttp
import pytest

from ops_center.access.keys import ROLES
from ops_center.access.keystore import revoke_key

PROBLEM = "application/problem+json"
PUBLIC = frozenset({"/healthz", "/readyz", "/", "/static/{name}"})
READERS = frozenset({"viewer", "operator", "admin"})
EVERYONE = frozenset(ROLES)
#: Alarm actions: ``POST /api/v1/alarms/{id}/ack`` and ``.../resolve`` (docs/CONTRACT.md §4).
ALARM_ACTION = re.compile(r"^/api/v1/alarms/\{[^}]+\}/[a-z_]+$")


def allowed_roles(method: str, path: str) -> frozenset[str] | None:
    """The roles the contract lets through this route (None: public). Raises for a route
    nobody has classified yet."""
    if path in PUBLIC:
        return None
    if path == "/api/v1/events" and method == "POST":
        return frozenset({"integration", "admin"})
    if path == "/metrics":
        return frozenset({"admin"})
    # the API description, and the reference codes integrations need to fill their events
    if path in (
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/units",
        "/api/v1/agencies",
        "/api/v1/me",
    ):
        return EVERYONE
    if method in ("GET", "HEAD") and (path.startswith("/api/v1/") or path == "/ws"):
        return READERS
    if method == "POST" and (ALARM_ACTION.match(path) or path == "/api/v1/alarms/what-if"):
        return frozenset({"operator", "admin"})
    raise AssertionError(f"route {method} {path} is not classified in the auth matrix")


def concrete(path: str) -> str:
    """The route template with its variables filled in (values that exist nowhere)."""
    return re.sub(r"\{[^}]+\}", lambda m: f"x-{uuid.uuid4().hex[:8]}", path)


def routes(app: Any) -> list[tuple[str, str]]:
    found = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "*"
    }
    return sorted(found)


async def call(api: Any, method: str, path: str, token: str | None) -> tuple[int, str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with api.client.request(method, concrete(path), headers=headers) as response:
        await response.read()
        return response.status, response.content_type, response.headers


async def test_every_route_gives_the_contracts_answer_to_every_kind_of_caller(
    make_api: Any, make_key: Any, database_url: str
) -> None:
    api = await make_api(key_cache_seconds=0)
    keys = {role: make_key(role) for role in ROLES}
    revoked = make_key("admin")
    revoke_key(database_url, revoked.name)
    callers: dict[str, str | None] = {
        "no key": None,
        "bad key": "oc_" + uuid.uuid4().hex,
        "revoked key": revoked.secret,
        **{role: key.secret for role, key in keys.items()},
    }
    table = routes(api.app)
    assert ("POST", "/api/v1/events") in table
    assert ("GET", "/api/v1/overview") in table
    failures: list[str] = []
    checked = 0
    for method, path in table:
        allowed = allowed_roles(method, path)
        for caller, token in callers.items():
            status, content_type, headers = await call(api, method, path, token)
            checked += 1
            where = f"{method} {path} with {caller}: {status}"
            if status >= 500:
                failures.append(f"{where} (server error)")
            elif allowed is None:
                if status in (401, 403):
                    failures.append(f"{where} (public route refused)")
            elif caller in ("no key", "bad key", "revoked key"):
                if status != 401:
                    failures.append(f"{where} (expected 401)")
                elif method != "HEAD" and content_type != PROBLEM:
                    failures.append(f"{where} (401 is not problem+json)")
                elif not headers.get("WWW-Authenticate", "").startswith("Bearer"):
                    failures.append(f"{where} (no WWW-Authenticate: Bearer)")
            elif caller in allowed:
                if status in (401, 403):
                    failures.append(f"{where} (role allowed by the contract)")
            elif status != 403:
                failures.append(f"{where} (expected 403)")
            elif method != "HEAD" and content_type != PROBLEM:
                failures.append(f"{where} (403 is not problem+json)")
    assert not failures, "\n".join(failures)
    assert checked == len(table) * len(callers)


def test_an_unclassified_route_fails_the_matrix() -> None:
    """The matrix cannot silently pass a route nobody thought about."""
    with pytest.raises(AssertionError, match="not classified"):
        allowed_roles("DELETE", "/api/v1/events")
    assert allowed_roles("POST", "/api/v1/alarms/{id}/ack") == {"operator", "admin"}
    assert allowed_roles("GET", "/api/v1/alarms") == READERS


async def test_ws_query_token_of_a_revoked_key_is_refused(
    make_api: Any, make_key: Any, database_url: str
) -> None:
    api = await make_api(key_cache_seconds=0)
    key = make_key("viewer")
    ws = await api.client.ws_connect(f"/ws?token={key.secret}")
    await ws.close()
    revoke_key(database_url, key.name)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(f"/ws?token={key.secret}")
    assert refused.value.status == 401


async def test_ws_foreign_origin_is_refused_with_a_query_token_too(
    make_api: Any, viewer_key: Any
) -> None:
    api = await make_api()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(
            f"/ws?token={viewer_key.secret}", headers={"Origin": "https://evil.example"}
        )
    assert refused.value.status == 403


async def test_ws_idle_client_that_never_answers_pings_is_closed(
    make_api: Any, viewer_key: Any
) -> None:
    """A silent client (no pong) is cut off after about the heartbeat interval."""
    api = await make_api(ws_heartbeat_seconds=0.4)
    ws = await api.client.ws_connect("/ws", headers=viewer_key.headers, autoping=False)
    started = asyncio.get_running_loop().time()
    kinds = []
    async with asyncio.timeout(10):
        while True:
            message = await ws.receive()
            kinds.append(message.type)
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                break
    assert aiohttp.WSMsgType.PING in kinds  # it was asked, and did not answer
    assert asyncio.get_running_loop().time() - started < 5
    assert ws.closed or kinds[-1] != aiohttp.WSMsgType.PING
