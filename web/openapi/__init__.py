"""``GET /api/v1/openapi.json`` (OpenAPI 3.1) and ``GET /api/v1/docs`` (the same, for people).

The description is built once, in code, next to the handlers it describes; tests check
that every path it names is served. The docs page is rendered on the server from the same
description (no scripts, nothing fetched from elsewhere).
"""

from __future__ import annotations

import html
from typing import Any, Final

import orjson
from aiohttp import web

from web.openapi.building import JSON_TYPE
from web.openapi.paths import PATHS
from web.openapi.schemas import SCHEMAS

SPEC: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ops center: the province's data operations center",
        "version": "1.0",
        "description": "CloudEvents ingest and the leaders' queries (docs/CONTRACT.md §1-§5). "
        "Times are RFC 3339 with an offset; days and buckets are Asia/Ho_Chi_Minh.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
    "paths": PATHS,
}

_SPEC_BYTES: Final = orjson.dumps(SPEC)


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of the API (any valid key)."""
    return web.Response(body=_SPEC_BYTES, content_type=JSON_TYPE)


def render_docs(spec: dict[str, Any]) -> str:
    """A plain HTML page listing every operation, its parameters and responses."""
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(spec['info']['title'])}</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code{background:#f3f3f3;padding:0 .2rem}h2{margin-top:2rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;"
        "text-align:left;vertical-align:top}</style></head><body>",
        f"<h1>{html.escape(spec['info']['title'])}</h1>",
        f"<p>{html.escape(spec['info']['description'])}</p>",
        "<p>Send <code>Authorization: Bearer &lt;key&gt;</code> on every call. "
        "Machine-readable: <a href='/api/v1/openapi.json'>openapi.json</a>.</p>",
    ]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            out.append(
                f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(operation.get('summary', ''))}</p>"
            )
            if operation.get("description"):
                out.append(f"<p>{html.escape(operation['description'])}</p>")
            params = operation.get("parameters") or []
            if params:
                out.append("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>")
                for p in params:
                    required = " (required)" if p.get("required") else ""
                    out.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code>{required}</td>"
                        f"<td>{p['in']}</td><td>{html.escape(p.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            codes = ", ".join(
                f"{code} {html.escape(r['description'])}"
                for code, r in operation["responses"].items()
            )
            out.append(f"<p><small>{codes}</small></p>")
    out.append("</body></html>")
    return "".join(out)


_DOCS: Final = render_docs(SPEC)


async def get_docs(request: web.Request) -> web.Response:
    """The API description as a page for people."""
    return web.Response(text=_DOCS, content_type="text/html")


def add_openapi_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_get("/api/v1/docs", get_docs)
