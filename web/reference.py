"""Reference data from the province profile: ``/api/v1/units`` and ``/api/v1/agencies``."""

from __future__ import annotations

import orjson
from aiohttp import web

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
