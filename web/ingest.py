"""``POST /api/v1/events``: CloudEvents in structured, batch, binary and NDJSON modes.

The answer is sent only after the accepted events are committed. Every event gets its own
result; a bad event is rejected with a code, a pointer and a detail and never stops the
good events beside it. Request-level failures are problem+json (docs/CONTRACT.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiohttp import web

from ops_center.access.keys import Principal
from ops_center.domain import Meta
from ops_center.domain.errors import FORBIDDEN, UNKNOWN_TYPE, Rejection
from ops_center.ingest import cloudevents
from ops_center.ingest.catalogue import CATALOGUE, validate_data
from ops_center.province.profile import Profile
from ops_center.store.application import Outcome, StoreUnavailable, Submission
from ops_center.store.writer import WriterClosed
from web.appkeys import METRICS, PRINCIPAL, PROFILE, RATE_LIMITER, SETTINGS, WRITER
from web.problems import problem

Mode = Literal["structured", "batch", "binary", "ndjson"]

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
NDJSON = "application/x-ndjson"
JSON = "application/json"


class BadRequest(Exception):
    """The body cannot be read as CloudEvents at all (400)."""


@dataclass(slots=True)
class Entry:
    """One event of a request on its way through validation and the writer."""

    event_id: str | None
    source: str | None
    submission: Submission | None = None
    outcome: Outcome | None = None


def _mode(request: web.Request) -> Mode | None:
    media = request.content_type.lower()
    if media == STRUCTURED:
        return "structured"
    if media == BATCH:
        return "batch"
    if media == NDJSON:
        return "ndjson"
    if media == JSON or media.endswith("+json"):
        return "binary"
    return None


def _loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None


def _raw_events(request: web.Request, mode: Mode, body: bytes) -> list[Any]:
    """The request's events as decoded JSON values (or `Rejection` for bad NDJSON lines)."""
    if mode == "structured":
        raw = _loads(body, "the body")
        if not isinstance(raw, dict):
            raise BadRequest("a structured CloudEvent must be a JSON object")
        return [raw]
    if mode == "batch":
        raw = _loads(body, "the body")
        if not isinstance(raw, list):
            raise BadRequest("a CloudEvents batch must be a JSON array of events")
        return raw
    if mode == "ndjson":
        events: list[Any] = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                events.append(
                    Rejection("invalid_envelope", "", f"line {number} is not valid JSON: {exc}")
                )
        return events
    if "ce-specversion" not in request.headers:
        raise BadRequest(
            "not a CloudEvent: binary mode needs ce-specversion, ce-id, ce-source, ce-type, "
            "ce-time and ce-subject headers; or send application/cloudevents+json"
        )
    data = _loads(body, "the data") if body.strip() else None
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("ce-")}
    return [{"__binary__": headers, "data": data}]


def _check(
    raw: Any, principal: Principal, profile: Profile, received_at: str, *, single: bool
) -> Entry:
    """Validate one raw event into an `Entry` with a submission or a rejection.

    Raises `PermissionError` for a single event the key may not send (403).
    """
    if isinstance(raw, Rejection):
        return Entry(None, None, outcome=Outcome.rejected(raw))
    binary = isinstance(raw, dict) and "__binary__" in raw
    event_id, source = (
        (raw["__binary__"].get("ce-id"), raw["__binary__"].get("ce-source"))
        if binary
        else cloudevents.identity(raw)
    )
    entry = Entry(event_id, source)
    try:
        event = (
            cloudevents.from_binary(raw["__binary__"], raw["data"])
            if binary
            else cloudevents.parse(raw)
        )
        kind = CATALOGUE.get(event.type)
        if kind is None:
            raise Rejection(UNKNOWN_TYPE, "/type", f"unknown event type {event.type!r}")
        if not principal.may_send(event.type, event.source):
            if single:
                raise PermissionError(
                    f"key {principal.name!r} may not send {event.type!r} from {event.source!r}"
                )
            pointer = "/source" if principal.may_send_type(event.type) else "/type"
            raise Rejection(
                FORBIDDEN,
                pointer,
                f"key {principal.name!r} may not send {event.type!r} from {event.source!r}",
            )
        data = validate_data(kind, event.data, profile)
    except Rejection as rejection:
        entry.outcome = Outcome.rejected(rejection)
        return entry
    meta: Meta = {
        "source": event.source,
        "id": event.id,
        "time": event.time,
        "received_at": received_at,
        "key": principal.name,
    }
    entry.submission = Submission(event, kind, data, meta)
    return entry


def _result(entry: Entry) -> dict[str, Any]:
    outcome = entry.outcome
    assert outcome is not None
    result: dict[str, Any] = {
        "id": entry.event_id,
        "source": entry.source,
        "status": outcome.status,
    }
    if outcome.position is not None:
        result["position"] = outcome.position
    if outcome.error is not None:
        result["error"] = outcome.error.as_json()
    return result


async def post_events(request: web.Request) -> web.StreamResponse:
    """Ingest CloudEvents; see the module docstring and docs/CONTRACT.md §2."""
    settings = request.app[SETTINGS]
    principal = request[PRINCIPAL]
    if not principal.can("ingest"):
        return problem(403, f"key {principal.name!r} ({principal.role}) may not ingest events")
    mode = _mode(request)
    if mode is None:
        return problem(
            415,
            f"content type {request.content_type!r} is not accepted; use {STRUCTURED}, "
            f"{BATCH}, {NDJSON}, or {JSON} with ce-* headers (binary mode)",
        )
    body = await request.read()
    try:
        raws = _raw_events(request, mode, body)
    except BadRequest as exc:
        return problem(400, str(exc), slug="not-cloudevents")
    if len(raws) > settings.max_request_events:
        return problem(
            413,
            f"{len(raws)} events in one request; the limit is {settings.max_request_events}",
            slug="too-many-events",
        )
    wait = await request.app[RATE_LIMITER].check(principal.name, principal.rate, max(len(raws), 1))
    if wait:
        return problem(
            429,
            f"key {principal.name!r} is over its rate of {principal.rate:g} events/s",
            headers={"Retry-After": str(wait)},
        )

    single = mode in ("structured", "binary")
    received_at = datetime.now(UTC).isoformat()
    profile = request.app[PROFILE]
    try:
        entries = [_check(raw, principal, profile, received_at, single=single) for raw in raws]
    except PermissionError as exc:
        return problem(403, str(exc), slug="scope")

    pending = [e for e in entries if e.submission is not None]
    if pending:
        try:
            outcomes = await request.app[WRITER].submit(
                [e.submission for e in pending if e.submission is not None]
            )
        except (StoreUnavailable, WriterClosed) as exc:
            retry = str(settings.unavailable_retry_after)
            return problem(
                503,
                f"the event store is unavailable; nothing was stored ({exc})",
                slug="store-unavailable",
                headers={"Retry-After": retry},
            )
        for entry, outcome in zip(pending, outcomes, strict=True):
            entry.outcome = outcome

    results = [_result(e) for e in entries]
    request.app[METRICS].count_results(results)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for result in results:
        counts[result["status"]] += 1
    body_out = {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": results,
    }
    status = 422 if single and counts["rejected"] else 200
    return web.Response(status=status, body=orjson.dumps(body_out), content_type="application/json")
