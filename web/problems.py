"""RFC 9457 problem details (``application/problem+json``) for request-level errors."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """A problem+json response; `slug` names the problem type (``urn:ops-center:problem:...``)."""
    title = _TITLES.get(status, "Error")
    slug = slug or title.lower().replace(" ", "-")
    body = {
        "type": f"urn:ops-center:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )
