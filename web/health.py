"""``GET /healthz``: 200 once every resource has started (no key needed)."""

from __future__ import annotations

import orjson
from aiohttp import web

from web.appkeys import READY


async def get_healthz(request: web.Request) -> web.Response:
    ready = request.app[READY]
    ok = bool(ready) and all(ready.values())
    body = {"status": "ok" if ok else "starting", "components": ready}
    return web.Response(
        status=200 if ok else 503, body=orjson.dumps(body), content_type="application/json"
    )
