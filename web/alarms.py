"""Alarms over HTTP (docs/CONTRACT.md §4): the list, one alarm, and operators' actions.

* ``GET /api/v1/alarms`` (`state`?, `unit`?, `severity`?, `cause`?, `bbox`?, `limit`?,
  `offset`?):
  alarms newest first, with ``position`` and ``total``; viewer and above.
* ``GET /api/v1/alarms/stats`` (`from`, `to` required; `cause`?, `unit`?): how long the
  alarms raised in ``[from, to)`` stayed open, per cause and unit.
* ``GET /api/v1/alarms/{id}``: one alarm with its full history, its periods (active,
  acknowledged) and its cause's other occurrences on the same subject; 404 when unknown.
* ``POST /api/v1/alarms/{id}/ack`` and ``/resolve`` (JSON body ``{"note"?}``, or none):
  operator and admin keys only (403 for others); 404 for an unknown id; 409 when the
  alarm's state does not allow it (resolving a resolved alarm, acknowledging one twice);
  400 for a body that is not a JSON object with an optional string `note`. The answer is
  the alarm's new state and the log ``position`` of the stored event (the read model
  shows it once its projection has applied that position).

``POST /api/v1/alarms/what-if`` (the rules over the history with other thresholds) is in
`web.alarms_whatif`. `add_alarm_routes` registers the routes; the `AlarmDesk` they act
through is a resource of `web.resources`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final
from uuid import UUID

import orjson
from aiohttp import web
from eventsourcing.persistence import InterfaceError, OperationalError

from ops_center.alarms.engine import UnknownAlarm
from ops_center.alarms.rules.observe import CAUSES
from ops_center.domain.alarm import SEVERITIES, AlarmConflict
from ops_center.province.calendar import iso, now
from projections.read import alarms as alarms_read
from projections.read.places import Places
from web import params
from web.alarms_whatif import add_what_if_route
from web.appkeys import ALARM_DESK, PRINCIPAL, PROFILE, SETTINGS
from web.params import DEFAULT_PAGE, MAX_PAGE, BadParameter, query_handler, reads, snapshot
from web.problems import problem

log = logging.getLogger(__name__)

# Limits
#: Longest operator's note, in characters.
MAX_NOTE: Final = 2_000
#: Largest body of an action, in bytes.
MAX_ACTION_BODY: Final = 16 * 1024


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _alarm_id(request: web.Request) -> UUID | None:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        return None


def _unknown(request: web.Request) -> web.Response:
    return problem(404, f"no alarm with id {request.match_info['id']!r}", slug="unknown-alarm")


@query_handler
@reads("alarms")
async def get_alarms(request: web.Request) -> web.StreamResponse:
    """Alarms newest first (`state`: active, acknowledged, resolved or open; `unit`;
    `severity`; `cause`; `bbox`: where the subject is; `limit`; `offset`)."""
    state = params.choice(request, "state", alarms_read.STATE_FILTERS)
    units = params.units(request)
    severity = params.choice(request, "severity", SEVERITIES)
    cause = params.choice(request, "cause", CAUSES)
    bbox = params.bbox(request)
    limit = params.integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = params.integer(request, "offset", 0, 0, 10**9)
    async with snapshot(request) as conn:
        body = await alarms_read.alarm_list(
            conn,
            state=state,
            units=units,
            severity=severity,
            cause=cause,
            bbox=bbox,
            places=Places.of(request.app[PROFILE]),
            limit=limit,
            offset=offset,
        )
    return _json(body)


@query_handler
@reads("alarms")
async def get_alarm_stats(request: web.Request) -> web.StreamResponse:
    """How long the alarms raised in ``[from, to)`` stayed open, per cause and unit
    (`cause`?, `unit`?)."""
    clock = now()
    start = params.time(request, "from")
    end = params.time(request, "to")
    if start is None:
        raise BadParameter("from", "is required")
    if end is None:
        raise BadParameter("to", "is required")
    if start >= end:
        raise BadParameter("from", "must be before 'to'")
    cause = params.choice(request, "cause", CAUSES)
    units = params.units(request)
    async with snapshot(request) as conn:
        body = await alarms_read.alarm_stats(
            conn, start=start, end=end, clock=clock, cause=cause, units=units
        )
    return _json(body)


@query_handler
@reads("alarms")
async def get_alarm(request: web.Request) -> web.StreamResponse:
    """One alarm with its history and the other occurrences of its cause."""
    alarm = _alarm_id(request)
    if alarm is None:
        return _unknown(request)
    async with snapshot(request) as conn:
        body = await alarms_read.alarm_detail(conn, alarm)
    if body is None:
        return _unknown(request)
    return _json(body)


async def _note(request: web.Request) -> str | None:
    """The optional `note` of an action's body (none, or a JSON object)."""
    body = await params.json_object(
        request, limit=MAX_ACTION_BODY, example='{"note": "..."}', allow_empty=True
    )
    if body is None:
        return None
    unknown = sorted(set(body) - {"note"})
    if unknown:
        raise BadParameter(unknown[0], "is not a field of this action (only 'note')")
    note = body.get("note")
    if note is None:
        return None
    if not isinstance(note, str):
        raise BadParameter("note", "must be a string")
    if len(note) > MAX_NOTE:
        raise BadParameter("note", f"must be at most {MAX_NOTE} characters")
    return note.strip() or None


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    principal = request[PRINCIPAL]
    if not principal.can("act"):
        return problem(
            403,
            f"key {principal.name!r} ({principal.role}) may not act on alarms: "
            "operator or admin keys only",
        )
    alarm = _alarm_id(request)
    if alarm is None:
        return _unknown(request)
    try:
        note = await _note(request)
    except BadParameter as exc:
        return problem(
            400,
            f"{exc.name!r}: {exc.reason}",
            slug="invalid-body",
            invalid_params=[{"name": exc.name, "reason": exc.reason}],
        )
    desk = request.app[ALARM_DESK]
    at = now()
    try:
        changed, position = await asyncio.to_thread(
            desk.act, alarm, "ack" if action == "ack" else "resolve", principal.name, note, at
        )
    except UnknownAlarm:
        return _unknown(request)
    except AlarmConflict as exc:
        return problem(409, exc.detail, slug="alarm-state", state=exc.state)
    except (OperationalError, InterfaceError) as exc:
        log.warning("alarm action failed: the event store is unavailable: %s", exc)
        retry = str(request.app[SETTINGS].unavailable_retry_after)
        return problem(
            503,
            "the event store is unavailable; nothing was changed",
            slug="store-unavailable",
            headers={"Retry-After": retry},
        )
    return _json(
        {
            "position": position,
            "id": str(changed.id),
            "state": changed.state,
            "by": principal.name,
            "note": note,
            "at": iso(at),
        }
    )


async def post_ack(request: web.Request) -> web.StreamResponse:
    """Acknowledge an active alarm (operator, admin)."""
    return await _act(request, "ack")


async def post_resolve(request: web.Request) -> web.StreamResponse:
    """Resolve an open alarm (operator, admin)."""
    return await _act(request, "resolve")


def add_alarm_routes(app: web.Application) -> None:
    """Register the alarm endpoints."""
    router = app.router
    router.add_get("/api/v1/alarms", get_alarms)
    router.add_get("/api/v1/alarms/stats", get_alarm_stats)  # before {id}
    router.add_get("/api/v1/alarms/{id}", get_alarm)
    router.add_post("/api/v1/alarms/{id}/ack", post_ack)
    router.add_post("/api/v1/alarms/{id}/resolve", post_resolve)
    add_what_if_route(app)
