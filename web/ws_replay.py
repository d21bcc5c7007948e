"""The replay ops of ``/ws`` (docs/CONTRACT.md §6): ``replay``, ``pause``, ``resume``,
``seek`` and ``stop``.

``{"op": "replay", "topic", "from", "to"?, "speed"?, "unit"?}`` starts a replay of a
topic whose reader answers ``as_of`` (`streams.sources.REPLAYABLE`), replacing the
connection's replay if it had one; times are read like the queries' time parameters
(RFC 3339, a local time or a date, `parse_instant`). ``to`` defaults to now and neither
may be in the future (beyond `AS_OF_TOLERANCE`, as ``as_of``); ``speed`` is a number from
`MIN_SPEED` to `MAX_SPEED` (default 1). Anything wrong answers ``invalid_replay`` naming
the ``field``; the connection's live subscriptions are not touched either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from ops_center.province.calendar import now, parse_instant
from streams import replay as replays
from streams.outbox import Frame
from streams.pacing import MAX_SPEED, MIN_SPEED, Pacer
from streams.replay import Replay
from streams.sessions import Session
from streams.sources import REPLAYABLE
from web.appkeys import PROFILE, STREAM_SOURCE
from web.params import AS_OF_TOLERANCE

#: The ops of this module.
OPS = ("replay", "pause", "resume", "seek", "stop")


class Invalid(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


def _time(message: dict[str, Any], field: str, clock: datetime) -> datetime | None:
    value = message.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(field, f"'{field}' must be a time (RFC 3339, a local time or a date)")
    try:
        moment = parse_instant(value)
    except ValueError as exc:
        raise Invalid(field, f"'{field}' is not a time: {exc}") from None
    if moment > clock + AS_OF_TOLERANCE:
        raise Invalid(field, f"'{field}' is in the future")
    return min(moment, clock)


def _speed(message: dict[str, Any]) -> float:
    value = message.get("speed", 1)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("speed", "'speed' must be a number")
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise Invalid("speed", f"'speed' must be from {MIN_SPEED:g} to {MAX_SPEED:g}")
    return float(value)


def _start(request: web.Request, session: Session, message: dict[str, Any]) -> None:
    topic = message.get("topic")
    if topic not in REPLAYABLE:
        names = ", ".join(REPLAYABLE)
        raise Invalid("topic", f"only {names} can be replayed, not {topic!r}")
    assert isinstance(topic, str)
    unit = message.get("unit")
    if unit is not None and (not isinstance(unit, str) or not request.app[PROFILE].has_unit(unit)):
        raise Invalid("unit", f"no unit with code {unit!r} in the profile")
    clock = now()
    start = _time(message, "from", clock)
    if start is None:
        raise Invalid("from", "'from' is required: the moment the replay starts")
    end = _time(message, "to", clock) or clock
    if end < start:
        raise Invalid("to", "'to' is before 'from'")
    speed = _speed(message)
    replays.close(session.replay)
    session.outbox.discard_replay()
    replay = Replay(request.app[STREAM_SOURCE], session.send, topic, unit, Pacer(start, end, speed))
    session.replay = replay
    replay.start()


def handle(request: web.Request, session: Session, op: str, message: dict[str, Any]) -> None:
    """Carry out one replay op, or answer an error frame."""
    try:
        if op == "replay":
            _start(request, session, message)
            return
        replay = session.replay
        if replay is None:
            session.send(Frame.error("no_replay", f"no replay to {op}"))
            return
        if op == "pause":
            replay.pause()
        elif op == "resume":
            replay.resume()
        elif op == "stop":
            replays.close(replay)
            session.replay = None
            session.outbox.discard_replay()
        else:
            at = _time(message, "at", now())
            if at is None:
                raise Invalid("at", "'at' is required: the moment to go to")
            if not replay.pacer.start <= at <= replay.pacer.end:
                raise Invalid("at", "'at' is outside the replay's 'from'..'to'")
            session.outbox.discard_replay()
            replay.seek(at)
    except Invalid as exc:
        fields: dict[str, Any] = {"field": exc.field}
        if isinstance(message.get("topic"), str):
            fields["topic"] = message["topic"]
        session.send(Frame.error("invalid_replay", exc.detail, **fields))
