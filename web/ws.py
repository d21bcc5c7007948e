"""``GET /ws``: live streams for ops-room screens (docs/CONTRACT.md §6).

The handshake is authenticated like every call (``Authorization: Bearer`` or ``?token=``,
by the auth middleware; viewer or above) and checked against the Origin allowlist
(`Settings.ws_origins`; the server's own origin and clients sending no Origin, i.e. not
browsers, are always allowed). Refusals are answered before the upgrade, as problem+json.

Client messages are JSON objects: ``{"op": "subscribe", "topic", "unit"?, "since"?}``,
``{"op": "unsubscribe", "topic"}`` and the replay ops of `web.ws_replay`; anything else gets
an error frame ``{"op": "error", "code", "detail"}`` and the connection stays open. Server frames
are serialised once and sent as text frames without per-connection compression (a frame goes
to many screens). A message over `Settings.ws_max_message_bytes` closes the connection
(1009); a client that does not answer pings within half of `Settings.ws_heartbeat_seconds`
is closed; on shutdown every connection is closed with 1001 (going away).

`add_stream_routes` registers the route, the hub and publisher (a cleanup_ctx entry) and
the closing of WebSockets on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Collection
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from streams import topics
from streams.outbox import Frame
from streams.sessions import Session
from web import ws_replay
from web.appkeys import (
    PRINCIPAL,
    PROFILE,
    SETTINGS,
    STREAM_HUB,
    WEBSOCKETS,
)
from web.metrics import session_closed
from web.problems import problem

log = logging.getLogger(__name__)

# Limits
#: Connections of the streams' own pool (publisher and snapshots; queries have theirs).
POOL_SIZE: Final = 6
#: Seconds a closing handshake may take on shutdown.
CLOSE_TIMEOUT: Final = 5.0
#: Bytes a connection's write buffer may hold for a frame to be written at once.
DIRECT_WRITE_LIMIT: Final = 64 * 1024


def origin_allowed(request: web.Request, allowed: Collection[str]) -> bool:
    """No Origin (not a browser), the server's own origin, or one of `allowed` (``*``:
    any)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == request.host.lower()


async def get_ws(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket and serve subscriptions until the client leaves."""
    principal = request[PRINCIPAL]
    if not principal.can("read"):
        return problem(403, f"key {principal.name!r} ({principal.role}) may not read streams")
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings.ws_origins):
        origin = request.headers.get(hdrs.ORIGIN)
        return problem(403, f"origin {origin!r} may not open live streams", slug="origin")
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_seconds,
        max_msg_size=settings.ws_max_message_bytes,
        compress=False,
        timeout=CLOSE_TIMEOUT,
    )
    if not ws.can_prepare(request).ok:
        return problem(426, "GET /ws expects a WebSocket upgrade", headers={"Upgrade": "websocket"})
    await ws.prepare(request)
    sockets = request.app[WEBSOCKETS]
    sockets[ws] = request.transport
    hub = request.app[STREAM_HUB]
    session = hub.open()
    session.outbox.write_now = _direct_writer(ws, request)
    writer = asyncio.create_task(_write(ws, session), name="ws:writer")
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                handle_message(request, session, message.data)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        hub.close_session(session)
        session_closed(request.app, session.outbox)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        sockets.pop(ws, None)
    return ws


def _direct_writer(ws: web.WebSocketResponse, request: web.Request) -> Callable[[Frame], bool]:
    """Write a whole frame to the connection's transport at once, unless the connection
    is closing or its write buffer holds more than `DIRECT_WRITE_LIMIT` (a slow client:
    then frames wait in the outbox and its writer task waits for the socket). Frames are
    uncompressed text frames, so bytes written here interleave safely with aiohttp's own
    (pings, close) at frame boundaries."""
    transport = request.transport

    def write_now(frame: Frame) -> bool:
        if ws.closed or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
            return False
        transport.write(frame.wire)
        return True

    return write_now


async def _write(ws: web.WebSocketResponse, session: Session) -> None:
    """Send the session's frames at the client's pace (only this task waits for it)."""
    try:
        while not ws.closed:
            frame = await session.outbox.get()
            await ws.send_frame(frame.raw, WSMsgType.TEXT)
    except (ConnectionError, RuntimeError) as exc:
        log.debug("ws: stopped sending: %s", exc)


def _error(session: Session, code: str, detail: str, **fields: Any) -> None:
    session.send(Frame.error(code, detail, **fields))


def handle_message(request: web.Request, session: Session, raw: str | bytes) -> None:
    """Carry out one client message, or answer an error frame."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _error(session, "invalid_json", f"the message is not JSON: {exc}")
        return
    if not isinstance(message, dict):
        _error(session, "invalid_message", "a message is a JSON object with an 'op'")
        return
    op = message.get("op")
    if op in ws_replay.OPS:
        ws_replay.handle(request, session, op, message)
        return
    if op not in ("subscribe", "unsubscribe"):
        ops = ", ".join(("subscribe", "unsubscribe", *ws_replay.OPS))
        _error(session, "unknown_op", f"'op' must be one of {ops}, not {op!r}")
        return
    topic = message.get("topic")
    if not isinstance(topic, str) or topic not in topics.TOPICS:
        names = ", ".join(topics.TOPICS)
        _error(session, "unknown_topic", f"'topic' must be one of {names}, not {topic!r}")
        return
    hub = request.app[STREAM_HUB]
    if op == "unsubscribe":
        if not hub.unsubscribe(session, topic):
            _error(session, "not_subscribed", f"no subscription to {topic!r}", topic=topic)
        return
    unit = message.get("unit")
    if unit is not None and (not isinstance(unit, str) or not request.app[PROFILE].has_unit(unit)):
        _error(session, "unknown_unit", f"no unit with code {unit!r} in the profile", topic=topic)
        return
    since = message.get("since")
    if since is not None and (type(since) is not int or since < 0):
        detail = "'since' must be a position (an integer >= 0)"
        _error(session, "invalid_since", detail, topic=topic)
        return
    hub.subscribe(session, topic, unit, since)


# -- resources ----------------------------------------------------------------------------------


async def close_websockets(app: web.Application) -> None:
    """Close every open WebSocket with 1001 (going away); a client that does not let the
    close frame through within `CLOSE_TIMEOUT` seconds is cut off."""

    async def close(ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        except TimeoutError:
            if transport is not None:
                transport.abort()

    open_sockets = app[WEBSOCKETS]
    sockets = list(open_sockets.items())
    await asyncio.gather(*(close(ws, t) for ws, t in sockets), return_exceptions=True)


def add_stream_routes(app: web.Application) -> None:
    """Register ``GET /ws``, the stream resources and the closing of WebSockets."""
    sockets: weakref.WeakKeyDictionary[web.WebSocketResponse, asyncio.Transport | None]
    sockets = weakref.WeakKeyDictionary()
    app[WEBSOCKETS] = sockets
    app.on_shutdown.append(close_websockets)
    app.router.add_get("/ws", get_ws)
