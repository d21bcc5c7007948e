"""Citizens' field reports over HTTP (docs/CONTRACT.md §5), viewer keys and above:

* ``GET /api/v1/reports`` (`state`?, `category`?, `unit`?, `agency`?, `bbox`?, `limit`?,
  `cursor`?): reports newest first, ``{"position", "items", "next"}``; ``next`` (null on
  the last page) is passed back as `cursor` for the following page;
* ``GET /api/v1/reports/stats`` (`from`, `to`, `bucket` day or month, `category`?,
  `unit`?, `agency`?): per local day or month;
* ``GET /api/v1/reports/{code}``: one report with its history; 404 when unknown (a
  report whose code is ``stats`` is not reachable here: the statistics take the path).

`agency` is an agency code or a unit code (a report may be assigned to a commune).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from ops_center.ingest.catalogue import REPORT_CATEGORIES
from ops_center.province.calendar import Bucket, count_buckets, now
from projections import read
from projections.read.reports import STATE_FILTERS
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

#: Statistics buckets (reports are counted per local day or month).
REPORT_BUCKETS: Final[tuple[Bucket, ...]] = ("day", "month")
#: Most buckets one statistics query may ask for.
MAX_BUCKETS: Final = 400


def _assignee(request: web.Request) -> str | None:
    code = params.text(request, "agency")
    profile = request.app[PROFILE]
    if code is not None and not (profile.has_agency(code) or profile.has_unit(code)):
        raise BadParameter("agency", f"no agency or unit with code {code!r} in the profile")
    return code


@query_handler
@reads("reports")
async def get_reports(request: web.Request) -> web.StreamResponse:
    """Reports newest first, filtered by `state`, `category`, `unit`, `agency`, `bbox`."""
    clock = now()
    state = params.choice(request, "state", STATE_FILTERS)
    category = params.choice(request, "category", REPORT_CATEGORIES)
    units = params.units(request)
    agency = _assignee(request)
    bbox = params.bbox(request)
    limit = params.integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = None
    cursor_text = params.text(request, "cursor")
    if cursor_text is not None:
        try:
            cursor = read.decode_cursor(cursor_text)
        except ValueError as exc:
            raise BadParameter("cursor", str(exc)) from None
    async with snapshot(request) as conn:
        body = await read.report_list(
            conn,
            clock=clock,
            places=read.Places.of(request.app[PROFILE]),
            state=state,
            category=category,
            units=units,
            agency=agency,
            bbox=bbox,
            limit=limit,
            cursor=cursor,
        )
    return json_response(body)


@query_handler
@reads("reports")
async def get_report(request: web.Request) -> web.StreamResponse:
    """One report by code, with every event of it."""
    code = request.match_info["code"]
    async with snapshot(request) as conn:
        body = await read.report_detail(
            conn, code, clock=now(), places=read.Places.of(request.app[PROFILE])
        )
    if body is None:
        return problem(404, f"no report with code {code!r}", slug="unknown-report")
    return json_response(body)


@query_handler
@reads("reports")
async def get_report_stats(request: web.Request) -> web.StreamResponse:
    """Report statistics per local day or month between `from` and `to`."""
    clock = now()
    start = params.time(request, "from")
    end = params.time(request, "to")
    if start is None:
        raise BadParameter("from", "is required")
    if end is None:
        raise BadParameter("to", "is required")
    if start >= end:
        raise BadParameter("from", "must be before 'to'")
    bucket: Bucket = (
        "month" if params.choice(request, "bucket", REPORT_BUCKETS) == "month" else "day"
    )
    if count_buckets(start, end, bucket) > MAX_BUCKETS:
        raise BadParameter(
            "bucket", f"more than {MAX_BUCKETS} buckets: use months or a shorter range"
        )
    category = params.choice(request, "category", REPORT_CATEGORIES)
    units = params.units(request)
    agency = _assignee(request)
    async with snapshot(request) as conn:
        body = await read.report_stats(
            conn,
            start=start,
            end=end,
            bucket=bucket,
            clock=clock,
            category=category,
            units=units,
            agency=agency,
        )
    body["category"] = category
    body["unit"] = request.query.get("unit")
    body["agency"] = agency
    return json_response(body)


def add_report_routes(app: web.Application) -> None:
    """Register the reports' endpoints (the statistics before the report by code)."""
    router = app.router
    router.add_get("/api/v1/reports", get_reports)
    router.add_get("/api/v1/reports/stats", get_report_stats)
    router.add_get("/api/v1/reports/{code:.+}", get_report)
