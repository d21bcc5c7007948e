"""Request logs, request ids and the log format.

`request_middleware` (the outermost middleware) gives every request an id: the caller's
``X-Request-Id`` when it is a sane token (1-128 letters, digits, ``.``, ``_``, ``:``,
``-``), otherwise a new one; the id is echoed in the ``X-Request-Id`` response header
(WebSocket upgrades included) and attached to every log line written while the request is
handled. When the request ends it writes one line on the ``ops_center.requests`` logger
(INFO): request id, method, route template, path (``token=`` values redacted), status
(499 when the client left before the answer), duration in ms, the key's name (never the
key) and the peer address; and it counts the request in the HTTP metrics. The
Authorization header is never logged.

`configure_logging` picks the format of every log line (`Settings.log_format`): ``text``
for people, ``json`` for log collectors (one object per line: ``time``, ``level``,
``logger``, ``message``, ``request_id`` when there is one, the request's fields, and
``exc_info`` as text).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from typing import Final
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.typedefs import Handler

from ops_center.runtime.logs import configure_logging, current_request_id
from web.appkeys import METRICS, PRINCIPAL, REQUEST_ID

__all__ = ["add_request_logs", "configure_logging", "request_middleware"]

REQUEST_LOG: Final = logging.getLogger("ops_center.requests")
HEADER: Final = "X-Request-Id"
WORKER_HEADER: Final = "X-Ops-Worker"
#: The index of this HTTP process among the node's (set by ``ops-center serve``).
_WORKER: Final = os.environ.get("OPS_CENTER_WORKER_INDEX")
_SANE_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: Query parameters whose values never reach a log line.
SECRET_PARAMS: Final = frozenset({"token", "key", "access_token"})
REDACTED: Final = "REDACTED"
#: The status logged for a request whose client left before the answer (as nginx does).
CLIENT_CLOSED: Final = 499

#: The id of the request being handled, for log lines written meanwhile.


def request_id_of(request: web.Request) -> str:
    """The caller's ``X-Request-Id`` if it is sane, else a new random id."""
    given = request.headers.get(HEADER)
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def redacted_path(request: web.Request) -> str:
    """The path and query with secret parameters' values replaced by ``REDACTED``."""
    query = request.query_string
    if not query:
        return request.path
    if not any(name in query for name in SECRET_PARAMS):
        return request.path_qs
    pairs = [
        (name, REDACTED if name.lower() in SECRET_PARAMS else value)
        for name, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{request.path}?{urlencode(pairs)}"


def route_of(request: web.Request) -> str:
    """The route template that matched (``/api/v1/devices/{code}``), or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one log line and the HTTP metrics per request (see the module)."""
    request_id = request_id_of(request)
    request[REQUEST_ID] = request_id
    token = current_request_id.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client went away before the answer
        raise
    finally:
        elapsed = time.perf_counter() - started
        current_request_id.reset(token)
        route = route_of(request)
        metrics = request.app[METRICS]
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_seconds.labels(route).observe(elapsed)
        if REQUEST_LOG.isEnabledFor(logging.INFO):
            principal = request.get(PRINCIPAL)
            fields = {
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "path": redacted_path(request),
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "key": principal.name if principal is not None else None,
                "remote": request.remote,
            }
            REQUEST_LOG.info(
                "%s %s %d %.1f ms",
                request.method,
                fields["path"],
                status,
                elapsed * 1000,
                extra={"fields": fields},
            )


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: echo the request id (WebSocket handshakes too), and say
    which of the node's HTTP processes answered (``X-Ops-Worker``, under ``ops-center
    serve``)."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[HEADER] = request_id
    if _WORKER is not None:
        response.headers[WORKER_HEADER] = _WORKER


def add_request_logs(app: web.Application) -> None:
    """Echo request ids in responses (the middleware itself is set in `create_app`)."""
    app.on_response_prepare.append(add_request_id_header)
