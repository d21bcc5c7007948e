"""Query parameters and the frame of every query handler: 400 problem+json naming a bad
parameter (`BadParameter`, RFC 9457 ``invalid_params``), 403 for keys that may not read,
and one read-only REPEATABLE READ snapshot per request (`snapshot`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, Final, Literal, overload

import orjson
from aiohttp import web

from ops_center.province.calendar import parse_instant
from projections.projection import Connection
from projections.read.places import BBox
from web.appkeys import DB_POOL, PRINCIPAL, PROFILE, REBUILDING
from web.problems import problem

#: ``Retry-After`` of a query whose projection is being rebuilt, in seconds.
REBUILD_RETRY_AFTER: Final = 5

# Limits
#: Largest page of a listing (devices, overdue dossiers, alarms).
MAX_PAGE: Final = 1_000
DEFAULT_PAGE: Final = 100
#: How far in the future an `as_of` may be (clock skew between client and server).
AS_OF_TOLERANCE: Final = timedelta(minutes=1)

#: A decimal number as a bounding box writes it (no ``inf``, ``nan`` or ``1_000``).
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_BBOX_FORM: Final = "minLon,minLat,maxLon,maxLat (four numbers, degrees)"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadParameter(Exception):
    """A query parameter that cannot be used (400)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@overload
async def json_object(
    request: web.Request, *, limit: int, example: str, allow_empty: Literal[False] = False
) -> dict[str, Any]: ...
@overload
async def json_object(
    request: web.Request, *, limit: int, example: str, allow_empty: bool
) -> dict[str, Any] | None: ...
async def json_object(
    request: web.Request, *, limit: int, example: str, allow_empty: bool = False
) -> dict[str, Any] | None:
    """The request's body as a JSON object of at most `limit` bytes (`BadParameter`
    ``body`` otherwise, `example` showing the expected shape). An empty body is `None`
    where `allow_empty`, else it is not JSON."""
    raw = await request.read()
    if len(raw) > limit:
        raise BadParameter("body", f"is larger than {limit} bytes")
    if allow_empty and not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadParameter("body", f"is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadParameter("body", f"must be a JSON object such as {example}")
    return body


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def reads(*projections: str) -> Callable[[Handler], Handler]:
    """Declare the projections a query reads (under `query_handler`): while one of them is
    being rebuilt, the query answers 503 ``rebuilding`` with ``Retry-After``."""

    def declare(handler: Handler) -> Handler:
        handler.reads = projections  # type: ignore[attr-defined]
        return handler

    return declare


def query_handler(handler: Handler) -> Handler:
    """403 for keys that may not read; 503 while a projection it `reads` is rebuilt; 400
    problem+json for a `BadParameter`."""
    projections: tuple[str, ...] = getattr(handler, "reads", ())

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        principal = request[PRINCIPAL]
        if not principal.can("read"):
            return problem(403, f"key {principal.name!r} ({principal.role}) may not read queries")
        rebuilding = request.app.get(REBUILDING)
        busy = sorted(rebuilding.intersection(projections)) if rebuilding else []
        if busy:
            return problem(
                503,
                f"being rebuilt: {', '.join(busy)}; ask again in a moment",
                slug="rebuilding",
                headers={"Retry-After": str(REBUILD_RETRY_AFTER)},
                rebuilding=busy,
            )
        try:
            return await handler(request)
        except BadParameter as exc:
            return problem(
                400,
                f"parameter {exc.name!r}: {exc.reason}",
                slug="invalid-parameter",
                invalid_params=[{"name": exc.name, "reason": exc.reason}],
            )

    return wrapper


@asynccontextmanager
async def snapshot(request: web.Request) -> AsyncIterator[Connection]:
    """A pooled connection in a read-only REPEATABLE READ transaction."""
    pool: Any = request.app[DB_POOL]
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        yield conn


# -- parameters ---------------------------------------------------------------------------


def text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise BadParameter(name, "must not be empty")
    return value


def choice(request: web.Request, name: str, choices: Collection[str]) -> str | None:
    value = text(request, name)
    if value is not None and value not in choices:
        raise BadParameter(name, f"must be one of {', '.join(choices)}")
    return value


def integer(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = text(request, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(name, "must be an integer") from None
    if not low <= number <= high:
        raise BadParameter(name, f"must be between {low} and {high}")
    return number


def time(request: web.Request, name: str) -> datetime | None:
    value = text(request, name)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise BadParameter(name, str(exc)) from None


def as_of(request: web.Request, clock: datetime) -> datetime | None:
    as_of = time(request, "as_of")
    if as_of is None:
        return None
    if as_of > clock + AS_OF_TOLERANCE:
        raise BadParameter("as_of", "is in the future")
    return min(as_of, clock)


def units(request: web.Request, name: str = "unit") -> frozenset[str] | None:
    """The unit's code and its descendants' codes; None when the parameter is absent."""
    code = text(request, name)
    if code is None:
        return None
    profile = request.app[PROFILE]
    if not profile.has_unit(code):
        raise BadParameter(name, f"no unit with code {code!r} in the profile")
    return profile.descendants(code)


def agency(request: web.Request) -> str | None:
    code = text(request, "agency")
    if code is not None and not request.app[PROFILE].has_agency(code):
        raise BadParameter("agency", f"no agency with code {code!r} in the profile")
    return code


def bbox(request: web.Request) -> BBox | None:
    """``bbox=minLon,minLat,maxLon,maxLat`` (WGS 84 degrees, edges included); None when
    absent. Malformed, out of range or inverted (a minimum above its maximum) is a 400
    naming ``bbox``."""
    value = text(request, "bbox")
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != 4 or not all(_NUMBER.fullmatch(part) for part in parts):
        raise BadParameter("bbox", f"must be {_BBOX_FORM}")
    min_lon, min_lat, max_lon, max_lat = (float(part) for part in parts)
    for name, number, limit in (
        ("minLon", min_lon, 180.0),
        ("minLat", min_lat, 90.0),
        ("maxLon", max_lon, 180.0),
        ("maxLat", max_lat, 90.0),
    ):
        if not -limit <= number <= limit:
            raise BadParameter("bbox", f"{name} must be between {-limit:g} and {limit:g}")
    if min_lon > max_lon:
        raise BadParameter("bbox", "is inverted: minLon is greater than maxLon")
    if min_lat > max_lat:
        raise BadParameter("bbox", "is inverted: minLat is greater than maxLat")
    return (min_lon, min_lat, max_lon, max_lat)
