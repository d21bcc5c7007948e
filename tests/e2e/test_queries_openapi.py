"""``GET /api/v1/openapi.json`` and ``GET /api/v1/docs``: the API, for tools and people."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from web.openapi import SPEC

CORE_PATHS = {
    "/api/v1/events",
    "/api/v1/units",
    "/api/v1/agencies",
    "/api/v1/overview",
    "/api/v1/devices",
    "/api/v1/devices/{code}",
    "/api/v1/services/stats",
    "/api/v1/services/overdue",
    "/api/v1/kpis",
    "/api/v1/kpis/{code}/history",
    "/api/v1/feed",
    "/api/v1/reports",
    "/api/v1/reports/stats",
    "/api/v1/reports/{code}",
    "/api/v1/openapi.json",
}


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        for value in node.values():
            found |= refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node)) if node else set()
    return set()


def served(app: web.Application, path: str, method: str) -> bool:
    """Whether the app routes `method path` (path parameters filled with a sample)."""
    concrete = re.sub(r"\{[^}]+\}", "X-1", path)
    for resource in app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        matches = (
            pattern.fullmatch(concrete) if pattern is not None else info.get("path") == concrete
        )
        if matches and any(r.method == method.upper() for r in resource):
            return True
    return False


async def test_openapi_describes_every_endpoint_and_only_served_ones(
    api: Any, viewer_key: Any
) -> None:
    reply = await api.get("/api/v1/openapi.json", key=viewer_key)
    assert reply.status == 200
    spec = reply.body
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) >= CORE_PATHS
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert served(api.app, path, method), (method, path)
            assert operation["responses"], (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert f"{{{parameter['name']}}}" in path
    for ref in refs(spec):
        name = ref.removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"], ref
    assert spec == SPEC  # the served document is the one in code


async def test_docs_page_lists_every_operation(api: Any, viewer_key: Any) -> None:
    reply = await api.request("GET", f"/api/v1/docs?token={viewer_key.secret}", key=None)
    assert reply.status == 200
    assert reply.content_type == "text/html"
    page = await (await api.client.get(f"/api/v1/docs?token={viewer_key.secret}")).text()
    for path in CORE_PATHS:
        assert path in page


async def test_openapi_needs_a_key(api: Any) -> None:
    assert (await api.get("/api/v1/openapi.json", key=None)).status == 401
