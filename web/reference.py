"""Reference data from the province profile (``/api/v1/units``, ``/api/v1/agencies``) and
the calling key (``/api/v1/me``)."""

from __future__ import annotations

import orjson
from aiohttp import web

from ops_center.access.keys import PERMISSIONS
from web.appkeys import PRINCIPAL, PROFILE
from web.problems import problem


def _forbidden_to_read(request: web.Request) -> web.Response | None:
    principal = request[PRINCIPAL]
    if principal.can("read") or principal.can("ingest"):
        return None
    return problem(403, f"key {principal.name!r} may not read reference data")


async def get_units(request: web.Request) -> web.Response:
    """Every administrative unit: the province, districts (if any), communes and wards."""
    denied = _forbidden_to_read(request)
    if denied is not None:
        return denied
    profile = request.app[PROFILE]
    body = {"profile": profile.code, "demo": profile.demo, "items": profile.unit_json()}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def get_agencies(request: web.Request) -> web.Response:
    """Every agency (department) of the province."""
    denied = _forbidden_to_read(request)
    if denied is not None:
        return denied
    profile = request.app[PROFILE]
    body = {"profile": profile.code, "demo": profile.demo, "items": profile.agency_json()}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def get_me(request: web.Request) -> web.Response:
    """The calling key: its name, role and what it may do (docs/CONTRACT.md §7), so that a
    screen can show the alarm actions only to keys that may take them."""
    principal = request[PRINCIPAL]
    body = {
        "name": principal.name,
        "role": principal.role,
        "may": sorted(p for p in PERMISSIONS if principal.can(p)),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")
