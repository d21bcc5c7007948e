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

from typing import Final

from aiohttp import web

from ops_center.domain.kpi_status import STATUSES
from ops_center.ingest.catalogue import PILLARS
from ops_center.province.calendar import BUCKETS, Bucket, count_buckets, now
from projections import read
from web import params
from web.appkeys import PROFILE
from web.params import (
    DEFAULT_PAGE,
    MAX_PAGE,
    BadParameter,
    json_response,
    query_handler,
    reads,
    snapshot,
)
from web.problems import problem

# Limits
#: Most feed items in one answer (the feed keeps 1,000).
MAX_FEED: Final = 1_000
DEFAULT_FEED: Final = 50
#: Most buckets one statistics query may ask for (each costs a count of the dossiers open
#: at its end: a year of days, or two weeks of hours).
MAX_BUCKETS: Final = 400

DEVICE_KINDS: Final = ("camera", "radio")
DEVICE_STATUSES: Final = {
    "camera": (*read.CAMERA_STATUSES, "unknown"),
    "radio": (*read.RADIO_STATUSES, "unknown"),
}

# -- handlers -----------------------------------------------------------------------------


@query_handler
@reads("devices", "services", "kpis", "alarms")
async def get_overview(request: web.Request) -> web.StreamResponse:
    """Devices, broadcasts, services, KPIs and alarms at a glance (`unit`?, `as_of`?)."""
    clock = now()
    units = params.units(request)
    as_of = params.as_of(request, clock)
    owners = None if units is None else request.app[PROFILE].owners_within(units)
    async with snapshot(request) as conn:
        body = await read.overview(conn, read.Scope(units, owners), clock=clock, as_of=as_of)
    return json_response(body)


@query_handler
@reads("devices")
async def get_devices(request: web.Request) -> web.StreamResponse:
    """Devices of one `kind` (camera or radio), optionally by `status` and `unit`."""
    kind = params.choice(request, "kind", DEVICE_KINDS)
    if kind is None:
        raise BadParameter("kind", f"is required: one of {', '.join(DEVICE_KINDS)}")
    status = params.choice(request, "status", DEVICE_STATUSES[kind])
    units = params.units(request)
    limit = params.integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = params.integer(request, "offset", 0, 0, 10**9)
    async with snapshot(request) as conn:
        body = await read.device_list(
            conn, kind=kind, status=status, units=units, limit=limit, offset=offset
        )
    return json_response(body)


@query_handler
@reads("devices")
async def get_device(request: web.Request) -> web.StreamResponse:
    """One device by code; `kind` tells a camera from a station that share a code."""
    code = request.match_info["code"]
    kind = params.choice(request, "kind", DEVICE_KINDS)
    async with snapshot(request) as conn:
        found = await read.device_detail(conn, code, kind)
    if not found:
        what = "device" if kind is None else "camera" if kind == "camera" else "radio station"
        return problem(404, f"no {what} with code {code!r}", slug="unknown-device")
    if len(found) > 1:
        raise BadParameter(
            "kind", f"is required: {code!r} is the code of both a camera and a radio station"
        )
    return json_response(found[0])


@query_handler
@reads("services")
async def get_service_stats(request: web.Request) -> web.StreamResponse:
    """Dossier statistics per hour, day or month bucket between `from` and `to`."""
    clock = now()
    start = params.time(request, "from")
    end = params.time(request, "to")
    if start is None:
        raise BadParameter("from", "is required")
    if end is None:
        raise BadParameter("to", "is required")
    if start >= end:
        raise BadParameter("from", "must be before 'to'")
    bucket_name = params.choice(request, "bucket", BUCKETS) or "day"
    bucket: Bucket = (
        "hour" if bucket_name == "hour" else "month" if bucket_name == "month" else "day"
    )
    if count_buckets(start, end, bucket) > MAX_BUCKETS:
        raise BadParameter(
            "bucket", f"more than {MAX_BUCKETS} buckets: use a coarser bucket or a shorter range"
        )
    agency = params.agency(request)
    units = params.units(request)
    async with snapshot(request) as conn:
        body = await read.service_stats(
            conn, start=start, end=end, bucket=bucket, clock=clock, agency=agency, units=units
        )
    body["unit"] = request.query.get("unit")
    return json_response(body)


@query_handler
@reads("services")
async def get_overdue(request: web.Request) -> web.StreamResponse:
    """Open dossiers past their due time now, most overdue first (`agency`?, `unit`?)."""
    clock = now()
    agency = params.agency(request)
    units = params.units(request)
    limit = params.integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = params.integer(request, "offset", 0, 0, 10**9)
    async with snapshot(request) as conn:
        body = await read.overdue_list(
            conn, clock=clock, agency=agency, units=units, limit=limit, offset=offset
        )
    return json_response(body)


@query_handler
@reads("kpis")
async def get_kpis(request: web.Request) -> web.StreamResponse:
    """Indicators with latest value, target and status (`owner`?, `pillar`?, `status`?,
    `as_of`?)."""
    clock = now()
    owner = params.text(request, "owner")
    profile = request.app[PROFILE]
    if owner is not None and not (profile.has_agency(owner) or profile.has_unit(owner)):
        raise BadParameter("owner", f"no agency or unit with code {owner!r} in the profile")
    pillar = params.choice(request, "pillar", PILLARS)
    status = params.choice(request, "status", STATUSES)
    as_of = params.as_of(request, clock)
    async with snapshot(request) as conn:
        body = await read.kpi_list(
            conn,
            clock=clock,
            as_of=as_of,
            owners=None if owner is None else {owner},
            pillar=pillar,
            status=status,
        )
    return json_response(body)


@query_handler
@reads("kpis")
async def get_kpi_history(request: web.Request) -> web.StreamResponse:
    """An indicator's value for every reported period (`as_of`?)."""
    code = request.match_info["code"]
    as_of = params.as_of(request, now())
    async with snapshot(request) as conn:
        body = await read.kpi_history(conn, code, as_of=as_of)
    if body is None:
        return problem(404, f"no indicator with code {code!r}", slug="unknown-indicator")
    return json_response(body)


@query_handler
@reads("feed")
async def get_feed(request: web.Request) -> web.StreamResponse:
    """The latest events, newest first (`limit`?, `before`? a position, `unit`?)."""
    limit = params.integer(request, "limit", DEFAULT_FEED, 1, MAX_FEED)
    before_text = params.text(request, "before")
    before = None
    if before_text is not None:
        before = params.integer(request, "before", 0, 1, 2**63 - 1)
    units = params.units(request)
    async with snapshot(request) as conn:
        body = await read.feed(conn, limit=limit, before=before, units=units)
    return json_response(body)


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
