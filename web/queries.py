"""The leaders' queries (docs/CONTRACT.md §5), served from the projections' read models.

`add_query_routes` registers them. Every answer is JSON with ``position``: the last log
position the projection has applied (for the overview, the position of the consistent
state it shows). Bad parameters answer 400 problem+json naming the parameter
(``invalid_params``, RFC 9457); unknown codes 404; keys without the ``read`` permission
403. Each request reads one REPEATABLE READ snapshot of the database.

Times in answers are RFC 3339 in Vietnam time; time parameters take RFC 3339 with an
offset, a local time without offset, or a date (see `ops_center.province.calendar.parse_instant`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, Final

import orjson
from aiohttp import web

from ops_center.ingest.catalogue import PILLARS
from ops_center.province.calendar import BUCKETS, Bucket, count_buckets, now, parse_instant
from ops_center.province.profile import Profile
from projections import read
from projections.kpis import STATUSES
from projections.runner import Connection
from web.appkeys import DB_POOL, PRINCIPAL, PROFILE
from web.problems import problem

# Limits
#: Largest page of devices or overdue dossiers.
MAX_PAGE: Final = 1_000
DEFAULT_PAGE: Final = 100
#: Most feed items in one answer (the feed keeps 1,000).
MAX_FEED: Final = 1_000
DEFAULT_FEED: Final = 50
#: Most buckets one statistics query may ask for (each costs a count of the dossiers open
#: at its end: a year of days, or two weeks of hours).
MAX_BUCKETS: Final = 400
#: How far in the future an `as_of` may be (clock skew between client and server).
AS_OF_TOLERANCE: Final = timedelta(minutes=1)

DEVICE_KINDS: Final = ("camera", "radio")
DEVICE_STATUSES: Final = {
    "camera": (*read.CAMERA_STATUSES, "unknown"),
    "radio": (*read.RADIO_STATUSES, "unknown"),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadParameter(Exception):
    """A query parameter that cannot be used (400)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def query_handler(handler: Handler) -> Handler:
    """403 for keys that may not read; 400 problem+json for a `BadParameter`."""

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        principal = request[PRINCIPAL]
        if not principal.can("read"):
            return problem(403, f"key {principal.name!r} ({principal.role}) may not read queries")
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


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise BadParameter(name, "must not be empty")
    return value


def _choice(request: web.Request, name: str, choices: Collection[str]) -> str | None:
    value = _text(request, name)
    if value is not None and value not in choices:
        raise BadParameter(name, f"must be one of {', '.join(choices)}")
    return value


def _integer(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = _text(request, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(name, "must be an integer") from None
    if not low <= number <= high:
        raise BadParameter(name, f"must be between {low} and {high}")
    return number


def _time(request: web.Request, name: str) -> datetime | None:
    value = _text(request, name)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise BadParameter(name, str(exc)) from None


def _as_of(request: web.Request, clock: datetime) -> datetime | None:
    as_of = _time(request, "as_of")
    if as_of is None:
        return None
    if as_of > clock + AS_OF_TOLERANCE:
        raise BadParameter("as_of", "is in the future")
    return min(as_of, clock)


def _units(request: web.Request, name: str = "unit") -> frozenset[str] | None:
    """The unit's code and its descendants' codes; None when the parameter is absent."""
    code = _text(request, name)
    if code is None:
        return None
    profile = request.app[PROFILE]
    if not profile.has_unit(code):
        raise BadParameter(name, f"no unit with code {code!r} in the profile")
    return profile.descendants(code)


def _agency(request: web.Request) -> str | None:
    code = _text(request, "agency")
    if code is not None and not request.app[PROFILE].has_agency(code):
        raise BadParameter("agency", f"no agency with code {code!r} in the profile")
    return code


def owners_within(profile: Profile, units: frozenset[str]) -> frozenset[str]:
    """KPI owners inside these units: the units, and the agencies serving one of them."""
    agencies = {a.code for a in profile.agencies.values() if a.unit in units}
    return units | agencies


# -- handlers -----------------------------------------------------------------------------


@query_handler
async def get_overview(request: web.Request) -> web.StreamResponse:
    """Devices, broadcasts, services, KPIs and alarms at a glance (`unit`?, `as_of`?)."""
    clock = now()
    units = _units(request)
    as_of = _as_of(request, clock)
    owners = None if units is None else owners_within(request.app[PROFILE], units)
    async with snapshot(request) as conn:
        body = await read.overview(conn, read.Scope(units, owners), clock=clock, as_of=as_of)
    return _json(body)


@query_handler
async def get_devices(request: web.Request) -> web.StreamResponse:
    """Devices of one `kind` (camera or radio), optionally by `status` and `unit`."""
    kind = _choice(request, "kind", DEVICE_KINDS)
    if kind is None:
        raise BadParameter("kind", f"is required: one of {', '.join(DEVICE_KINDS)}")
    status = _choice(request, "status", DEVICE_STATUSES[kind])
    units = _units(request)
    limit = _integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = _integer(request, "offset", 0, 0, 10**9)
    async with snapshot(request) as conn:
        body = await read.device_list(
            conn, kind=kind, status=status, units=units, limit=limit, offset=offset
        )
    return _json(body)


@query_handler
async def get_device(request: web.Request) -> web.StreamResponse:
    """One device by code; `kind` tells a camera from a station that share a code."""
    code = request.match_info["code"]
    kind = _choice(request, "kind", DEVICE_KINDS)
    async with snapshot(request) as conn:
        found = await read.device_detail(conn, code, kind)
    if not found:
        what = "device" if kind is None else "camera" if kind == "camera" else "radio station"
        return problem(404, f"no {what} with code {code!r}", slug="unknown-device")
    if len(found) > 1:
        raise BadParameter(
            "kind", f"is required: {code!r} is the code of both a camera and a radio station"
        )
    return _json(found[0])


@query_handler
async def get_service_stats(request: web.Request) -> web.StreamResponse:
    """Dossier statistics per hour, day or month bucket between `from` and `to`."""
    clock = now()
    start = _time(request, "from")
    end = _time(request, "to")
    if start is None:
        raise BadParameter("from", "is required")
    if end is None:
        raise BadParameter("to", "is required")
    if start >= end:
        raise BadParameter("from", "must be before 'to'")
    bucket_name = _choice(request, "bucket", BUCKETS) or "day"
    bucket: Bucket = (
        "hour" if bucket_name == "hour" else "month" if bucket_name == "month" else "day"
    )
    if count_buckets(start, end, bucket) > MAX_BUCKETS:
        raise BadParameter(
            "bucket", f"more than {MAX_BUCKETS} buckets: use a coarser bucket or a shorter range"
        )
    agency = _agency(request)
    units = _units(request)
    async with snapshot(request) as conn:
        body = await read.service_stats(
            conn, start=start, end=end, bucket=bucket, clock=clock, agency=agency, units=units
        )
    body["unit"] = request.query.get("unit")
    return _json(body)


@query_handler
async def get_overdue(request: web.Request) -> web.StreamResponse:
    """Open dossiers past their due time now, most overdue first (`agency`?, `unit`?)."""
    clock = now()
    agency = _agency(request)
    units = _units(request)
    limit = _integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = _integer(request, "offset", 0, 0, 10**9)
    async with snapshot(request) as conn:
        body = await read.overdue_list(
            conn, clock=clock, agency=agency, units=units, limit=limit, offset=offset
        )
    return _json(body)


@query_handler
async def get_kpis(request: web.Request) -> web.StreamResponse:
    """Indicators with latest value, target and status (`owner`?, `pillar`?, `status`?,
    `as_of`?)."""
    clock = now()
    owner = _text(request, "owner")
    profile = request.app[PROFILE]
    if owner is not None and not (profile.has_agency(owner) or profile.has_unit(owner)):
        raise BadParameter("owner", f"no agency or unit with code {owner!r} in the profile")
    pillar = _choice(request, "pillar", PILLARS)
    status = _choice(request, "status", STATUSES)
    as_of = _as_of(request, clock)
    async with snapshot(request) as conn:
        body = await read.kpi_list(
            conn,
            clock=clock,
            as_of=as_of,
            owners=None if owner is None else {owner},
            pillar=pillar,
            status=status,
        )
    return _json(body)


@query_handler
async def get_kpi_history(request: web.Request) -> web.StreamResponse:
    """An indicator's value for every reported period (`as_of`?)."""
    code = request.match_info["code"]
    as_of = _as_of(request, now())
    async with snapshot(request) as conn:
        body = await read.kpi_history(conn, code, as_of=as_of)
    if body is None:
        return problem(404, f"no indicator with code {code!r}", slug="unknown-indicator")
    return _json(body)


@query_handler
async def get_feed(request: web.Request) -> web.StreamResponse:
    """The latest events, newest first (`limit`?, `before`? a position, `unit`?)."""
    limit = _integer(request, "limit", DEFAULT_FEED, 1, MAX_FEED)
    before_text = _text(request, "before")
    before = None
    if before_text is not None:
        before = _integer(request, "before", 0, 1, 2**63 - 1)
    units = _units(request)
    async with snapshot(request) as conn:
        body = await read.feed(conn, limit=limit, before=before, units=units)
    return _json(body)


def add_query_routes(app: web.Application) -> None:
    """Register the query endpoints of docs/CONTRACT.md §5 on `app`."""
    router = app.router
    router.add_get("/api/v1/overview", get_overview)
    router.add_get("/api/v1/devices", get_devices)
    router.add_get("/api/v1/devices/{code:.+}", get_device)
    router.add_get("/api/v1/services/stats", get_service_stats)
    router.add_get("/api/v1/services/overdue", get_overdue)
    router.add_get("/api/v1/kpis", get_kpis)
    router.add_get("/api/v1/kpis/{code:.+}/history", get_kpi_history)
    router.add_get("/api/v1/feed", get_feed)
