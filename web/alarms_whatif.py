"""``POST /api/v1/alarms/what-if`` (docs/CONTRACT.md §4): the alarm rules over a period of
the stored history with other thresholds, beside the alarms that were really raised.

The body is a JSON object ``{"from", "to", "thresholds"?}``: RFC 3339 times (``from`` before
``to``, at most `MAX_SPAN` apart) and the thresholds to change, by their settings names
(``offline_grace_seconds``, ...; the others keep the server's settings). Operator and
admin keys only (403 for others), like the operators' actions: a run reads the whole log
and takes seconds of CPU. 400 problem+json naming the bad field or every unknown
threshold. Nothing is written: the log is read in one read-only snapshot
(`ops_center.alarms.history.replay`) and the real alarms come from the read model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from aiohttp import web

from ops_center.alarms.history import replay
from ops_center.alarms.whatif import (
    BadThreshold,
    Outcome,
    answer,
    in_force,
    overridden,
    thresholds_of,
)
from ops_center.province.calendar import now, parse_instant
from projections.read import alarms as alarms_read
from web.appkeys import PRINCIPAL, PROFILE, SETTINGS
from web.params import BadParameter, json_object, json_response, snapshot
from web.problems import problem

# Limits
#: Longest period of one run (a quarter: a longer one would hold a worker too long).
MAX_SPAN: Final = timedelta(days=92)
#: Largest body, in bytes.
MAX_BODY: Final = 16 * 1024

_FIELDS: Final = frozenset({"from", "to", "thresholds"})


def _time(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if value is None:
        raise BadParameter(name, "is required")
    if not isinstance(value, str):
        raise BadParameter(name, "must be an RFC 3339 time (a string)")
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise BadParameter(name, str(exc)) from None


async def _body(request: web.Request) -> tuple[datetime, datetime, dict[str, Any]]:
    body = await json_object(request, limit=MAX_BODY, example='{"from": ..., "to": ...}')
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadParameter(unknown[0], "is not a field (only 'from', 'to', 'thresholds')")
    start, end = _time(body, "from"), _time(body, "to")
    if start >= end:
        raise BadParameter("from", "must be before 'to'")
    if end - start > MAX_SPAN:
        raise BadParameter("to", f"must be at most {MAX_SPAN.days} days after 'from'")
    changes = body.get("thresholds")
    if changes is None:
        changes = {}
    if not isinstance(changes, dict):
        raise BadParameter("thresholds", "must be a JSON object of seconds by threshold name")
    return start, end, changes


def _invalid(names: list[str], reason: str) -> web.Response:
    return problem(
        400,
        f"{', '.join(repr(n) for n in names)}: {reason}",
        slug="invalid-body",
        invalid_params=[{"name": n, "reason": reason} for n in names],
    )


async def post_what_if(request: web.Request) -> web.StreamResponse:
    """Run the rules over ``[from, to)`` with the given thresholds (operator, admin)."""
    principal = request[PRINCIPAL]
    if not principal.can("act"):
        return problem(
            403,
            f"key {principal.name!r} ({principal.role}) may not run a what-if of the alarm "
            "rules: operator or admin keys only",
        )
    try:
        start, end, changes = await _body(request)
        values = overridden(in_force(request.app[SETTINGS]), changes)
    except BadParameter as exc:
        return _invalid([exc.name], exc.reason)
    except BadThreshold as exc:
        return _invalid(exc.names, exc.reason)
    unit_of = request.app[PROFILE].unit_of
    async with snapshot(request) as conn:
        would = await replay(conn, thresholds_of(values), unit_of, start, end, now=now())
        rows = await alarms_read.alarms_raised(conn, start=start, end=end)
    raised = [Outcome(**r) for r in rows]
    return json_response(answer(start, end, values, would, raised))


def add_what_if_route(app: web.Application) -> None:
    """Register ``POST /api/v1/alarms/what-if`` (before ``/api/v1/alarms/{id}/...``)."""
    app.router.add_post("/api/v1/alarms/what-if", post_what_if)
