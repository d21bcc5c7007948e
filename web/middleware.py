"""Middlewares: problem+json for every error, and bearer-key authentication."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from web.appkeys import KEYRING, PRINCIPAL, SETTINGS
from web.metrics import metrics_token_accepted
from web.problems import problem

log = logging.getLogger(__name__)

#: Paths served without a key: liveness, and the ops-room page shell (it carries no data
#: and asks for a token itself).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/"})
PUBLIC_PREFIXES = ("/static/",)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's HTTP errors and unexpected exceptions into problem+json."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            limit = request.app[SETTINGS].max_body_bytes
            detail = f"the body is larger than the limit of {limit} bytes"
        else:
            detail = exc.text or exc.reason
            if detail.startswith(f"{exc.status}: "):
                detail = detail.split(": ", 1)[1]
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return problem(exc.status, detail, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "an unexpected error occurred; it has been logged")


def bearer_token(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer`` or, for WebSockets and pages, ``?token=``."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = request.query.get("token")
    return token or None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the caller's key; 401 when it is missing, unknown or revoked."""
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    token = bearer_token(request)
    challenge = {"WWW-Authenticate": 'Bearer realm="ops-center"'}
    if token is None:
        detail = "send a key as 'Authorization: Bearer <key>'"
        return problem(401, detail, slug="missing-key", headers=challenge)
    if path == "/metrics" and metrics_token_accepted(request, token):
        return await handler(request)
    try:
        principal = await request.app[KEYRING].lookup(token)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("key lookup failed: %s", exc)
        retry = str(request.app[SETTINGS].unavailable_retry_after)
        return problem(
            503,
            "keys cannot be checked: the database is unavailable",
            slug="store-unavailable",
            headers={"Retry-After": retry},
        )
    if principal is None:
        return problem(401, "the key is unknown or revoked", slug="unknown-key", headers=challenge)
    request[PRINCIPAL] = principal
    return await handler(request)
