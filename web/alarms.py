"""Alarms over HTTP (docs/CONTRACT.md §4): the list, one alarm, and operators' actions.

* ``GET /api/v1/alarms`` (`state`?, `unit`?, `severity`?, `cause`?, `limit`?, `offset`?):
  alarms newest first, with ``position`` and ``total``; viewer and above.
* ``GET /api/v1/alarms/{id}``: one alarm with its full history and its cause's other
  occurrences on the same subject; 404 when unknown.
* ``POST /api/v1/alarms/{id}/ack`` and ``/resolve`` (JSON body ``{"note"?}``, or none):
  operator and admin keys only (403 for others); 404 for an unknown id; 409 when the
  alarm's state does not allow it (resolving a resolved alarm, acknowledging one twice);
  400 for a body that is not a JSON object with an optional string `note`. The answer is
  the alarm's new state and the log ``position`` of the stored event (the read model
  shows it once its projection has applied that position).

`add_alarm_routes` registers the routes and the `alarm_desk` resource (the `AlarmDesk`
and, when `Settings.alarm_rules` is on, this node's `RulesRunner`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web
from eventsourcing.persistence import InterfaceError, OperationalError

from ops_center.alarms.engine import AlarmDesk, RulesEngine, UnknownAlarm
from ops_center.alarms.rules.observe import CAUSES, UnitOf
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.alarms.runner import RulesRunner
from ops_center.domain.alarm import SEVERITIES, AlarmConflict
from ops_center.province.calendar import iso, now
from ops_center.province.profile import Profile
from ops_center.settings import Settings
from projections import alarms_read
from projections.runner import SETUP_LOCK
from web.appkeys import ALARM_DESK, ALARM_RULES, DATABASE, DB_POOL, PRINCIPAL, PROFILE, SETTINGS
from web.problems import problem
from web.queries import (
    DEFAULT_PAGE,
    MAX_PAGE,
    BadParameter,
    _choice,
    _integer,
    _units,
    query_handler,
    snapshot,
)

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
async def get_alarms(request: web.Request) -> web.StreamResponse:
    """Alarms newest first (`state`: active, acknowledged, resolved or open; `unit`;
    `severity`; `cause`; `limit`; `offset`)."""
    state = _choice(request, "state", alarms_read.STATE_FILTERS)
    units = _units(request)
    severity = _choice(request, "severity", SEVERITIES)
    cause = _choice(request, "cause", CAUSES)
    limit = _integer(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = _integer(request, "offset", 0, 0, 10**9)
    async with snapshot(request) as conn:
        body = await alarms_read.alarm_list(
            conn,
            state=state,
            units=units,
            severity=severity,
            cause=cause,
            limit=limit,
            offset=offset,
        )
    return _json(body)


@query_handler
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
    raw = await request.read()
    if len(raw) > MAX_ACTION_BODY:
        raise BadParameter("body", f"is larger than {MAX_ACTION_BODY} bytes")
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadParameter("body", f"is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadParameter("body", 'must be a JSON object such as {"note": "..."}')
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


def unit_of(profile: Profile) -> UnitOf:
    """The unit of a KPI owner: the unit itself, or the agency's unit."""

    def find(owner: str) -> str | None:
        if profile.has_unit(owner):
            return owner
        agency = profile.agencies.get(owner)
        return None if agency is None else agency.unit

    return find


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        offline_grace=timedelta(seconds=settings.alarm_offline_grace_seconds),
        alert_hold=timedelta(seconds=settings.alarm_alert_hold_seconds),
        dossier_grace=timedelta(seconds=settings.alarm_dossier_grace_seconds),
    )


async def alarm_desk(app: web.Application) -> AsyncIterator[None]:
    """The alarm desk (its tables are created holding the setup lock) and, when
    `alarm_rules` is on, the rules runner; on cleanup the runner is stopped first."""
    settings = app[SETTINGS]
    pool: asyncpg.Pool = app[DB_POOL]
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", SETUP_LOCK)
        try:
            desk = await asyncio.to_thread(AlarmDesk, app[DATABASE])
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SETUP_LOCK)
    app[ALARM_DESK] = desk
    runner = None
    if settings.alarm_rules:
        engine = RulesEngine(desk, thresholds(settings), unit_of(app[PROFILE]))
        runner = RulesRunner(
            app[DATABASE],
            engine,
            tick=settings.alarm_tick_seconds,
            min_interval=settings.alarm_min_interval_seconds,
        )
        runner.start()
        app[ALARM_RULES] = runner
    try:
        yield
    finally:
        if runner is not None:
            await runner.stop()
        await asyncio.to_thread(desk.close)


def add_alarm_routes(app: web.Application) -> None:
    """Register the alarm endpoints and the `alarm_desk` resource."""
    app.cleanup_ctx.append(alarm_desk)
    router = app.router
    router.add_get("/api/v1/alarms", get_alarms)
    router.add_get("/api/v1/alarms/{id}", get_alarm)
    router.add_post("/api/v1/alarms/{id}/ack", post_ack)
    router.add_post("/api/v1/alarms/{id}/resolve", post_resolve)
