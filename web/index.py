"""The Decision 766 service index and the lineage of figures (docs/CONTRACT.md §5).

* ``GET /api/v1/services/index`` (`period` required: ``2026-11``, ``2026-Q4`` or
  ``2026``; `agency`?, `unit`?, `as_of`?): the index of the period's dossiers.
* ``GET /api/v1/services/index/ranking`` (`period`, `by` = ``agency`` (default) |
  ``unit``, `unit`?, `as_of`?): every agency, or commune, with dossiers in the period,
  best total first; `unit` limits it to the dossiers of that unit and its descendants.
* ``GET /api/v1/lineage`` (`figure` required, a dotted path; the filters of the figure's
  query; `limit`?, `after`?): the events that made the figure. An unknown path answers
  400 naming it.

The readers are `projections.read.service_index` and `projections.read.lineage`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from aiohttp import web

from ops_center.province.calendar import now
from ops_center.province.profile import COMMUNE_LEVELS, Profile
from projections.read import Scope
from projections.read import lineage as lineage_read
from projections.read import service_index as index_read
from web import params
from web.appkeys import PROFILE
from web.params import MAX_PAGE, BadParameter, json_response, query_handler, reads, snapshot

DEFAULT_LINEAGE: Final = 100


def period(request: web.Request) -> index_read.Period:
    """The required `period` parameter."""
    text = params.text(request, "period")
    if text is None:
        raise BadParameter("period", "is required: a month (2026-11), quarter (2026-Q4) or year")
    try:
        return index_read.parse_period(text)
    except ValueError as exc:
        raise BadParameter("period", str(exc)) from None


def index_units(request: web.Request) -> tuple[str | None, frozenset[str] | None]:
    """The `unit` parameter and the units it selects (None for the province itself:
    its dossiers are every dossier)."""
    units = params.units(request)
    code = params.text(request, "unit")
    if code is not None and code == request.app[PROFILE].root.code:
        units = None
    return code, units


def names(profile: Profile, by: str) -> dict[str, str]:
    """Display names of agencies or units, by code."""
    if by == "agency":
        return {code: a.name for code, a in profile.agencies.items()}
    return {code: u.name for code, u in profile.units.items()}


def communes(profile: Profile) -> Collection[str]:
    """The commune-level units (a ranking by unit ranks these)."""
    return frozenset(code for code, u in profile.units.items() if u.level in COMMUNE_LEVELS)


@query_handler
@reads("service_index")
async def get_service_index(request: web.Request) -> web.StreamResponse:
    """The service index of a period (`period`, `agency`?, `unit`?, `as_of`?)."""
    clock = now()
    chosen = period(request)
    agency = params.agency(request)
    unit, units = index_units(request)
    as_of = params.as_of(request, clock)
    async with snapshot(request) as conn:
        body = await index_read.service_index(
            conn,
            period=chosen,
            clock=clock,
            as_of=as_of,
            agency=agency,
            unit=unit,
            units=units,
        )
    return json_response(body)


@query_handler
@reads("service_index")
async def get_index_ranking(request: web.Request) -> web.StreamResponse:
    """The index of every agency or commune (`period`, `by`?, `unit`?, `as_of`?)."""
    clock = now()
    chosen = period(request)
    by_name = params.choice(request, "by", index_read.BY) or "agency"
    by: index_read.By = "unit" if by_name == "unit" else "agency"
    unit, units = index_units(request)
    as_of = params.as_of(request, clock)
    profile = request.app[PROFILE]
    async with snapshot(request) as conn:
        body = await index_read.index_ranking(
            conn,
            period=chosen,
            by=by,
            clock=clock,
            names=names(profile, by),
            as_of=as_of,
            unit=unit,
            units=units,
            within=communes(profile) if by == "unit" else None,
        )
    return json_response(body)


@query_handler
@reads("devices", "services", "kpis", "alarms", "service_index")
async def get_lineage(request: web.Request) -> web.StreamResponse:
    """The events that made a figure (`figure`, its query's filters, `limit`?, `after`?)."""
    clock = now()
    text = params.text(request, "figure")
    if text is None:
        raise BadParameter("figure", "is required: a dotted path such as overview.alarms.active")
    try:
        figure = lineage_read.parse_figure(text)
    except lineage_read.UnknownFigure as exc:
        raise BadParameter("figure", str(exc)) from None
    limit = params.integer(request, "limit", DEFAULT_LINEAGE, 1, MAX_PAGE)
    after = None
    if params.text(request, "after") is not None:
        after = params.integer(request, "after", 0, 0, 2**63 - 1)
    as_of = params.as_of(request, clock)
    profile = request.app[PROFILE]
    chosen = agency = unit = None
    if figure.answer == "index":
        chosen = period(request)
        agency = params.agency(request)
        unit, units = index_units(request)
        scope = Scope(units)
    elif figure.answer == "overview":
        units = params.units(request)
        scope = Scope(units, None if units is None else profile.owners_within(units))
    else:
        scope = Scope()
    async with snapshot(request) as conn:
        body = await lineage_read.lineage(
            conn,
            figure,
            label=text,
            clock=clock,
            as_of=as_of,
            scope=scope,
            after=after,
            limit=limit,
            period=chosen,
            agency=agency,
            unit=unit,
        )
    if body is None:
        raise BadParameter("figure", f"unknown figure {text!r}: no indicator {figure.code!r}")
    return json_response(body)


def add_index_routes(app: web.Application) -> None:
    """Register the service index, its ranking and the lineage of figures."""
    router = app.router
    router.add_get("/api/v1/services/index", get_service_index)
    router.add_get("/api/v1/services/index/ranking", get_index_ranking)
    router.add_get("/api/v1/lineage", get_lineage)
