"""``POST /api/v1/events`` end to end: real HTTP, real PostgreSQL, real keys
(docs/CONTRACT.md §2, §3, §7).

Each test starts the app from `create_app`, creates its keys with `create_key`, and uses
fresh event ids and subject codes, so tests are independent of each other and of order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from ops_center.access.keystore import revoke_key
from ops_center.ingest.catalogue import CATALOGUE
from ops_center.province.profile import load_profile

PROBLEM = "application/problem+json"
STRUCTURED = "application/cloudevents+json"
PROFILE = load_profile()

Event = dict[str, Any]


def assert_problem(reply: Any, status: int) -> None:
    """An RFC 9457 problem+json answer with this status."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert reply.body["status"] == status
    assert isinstance(reply.body["type"], str)
    assert reply.body["type"]
    assert isinstance(reply.body["title"], str)
    assert reply.body["title"]
    assert isinstance(reply.body["detail"], str)
    assert reply.body["detail"]


def assert_result_shape(result: dict[str, Any]) -> None:
    """A result has exactly the contract's keys for its status."""
    if result["status"] in ("accepted", "duplicate"):
        assert set(result) == {"id", "source", "status", "position"}
        assert isinstance(result["position"], int)
        assert result["position"] > 0
    else:
        assert result["status"] == "rejected"
        assert set(result) == {"id", "source", "status", "error"}
        assert set(result["error"]) == {"code", "pointer", "detail"}
        assert result["error"]["detail"]


def assert_body_shape(body: dict[str, Any]) -> None:
    """Counts match the results, and every result has the contract's shape."""
    assert set(body) == {"accepted", "duplicates", "rejected", "results"}
    statuses = [r["status"] for r in body["results"]]
    assert body["accepted"] == statuses.count("accepted")
    assert body["duplicates"] == statuses.count("duplicate")
    assert body["rejected"] == statuses.count("rejected")
    for result in body["results"]:
        assert_result_shape(result)


def prerequisites(ce: Any, event_type: str, subject: str) -> list[Event]:
    """The events a valid `event_type` event about `subject` needs stored first."""
    events: list[Event] = ce.prerequisites(event_type, subject)
    return events


# --- HTTP modes -----------------------------------------------------------------------


async def test_structured_event_is_accepted_with_exact_body(api, ce) -> None:
    """A structured event answers 200 with counts and one result: id, source, status, position."""
    event = ce.event("camera.registered")
    reply = await api.structured(event)
    assert reply.status == 200
    assert reply.content_type == "application/json"
    position = reply.body["results"][0]["position"]
    assert reply.body == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 0,
        "results": [
            {
                "id": event["id"],
                "source": event["source"],
                "status": "accepted",
                "position": position,
            }
        ],
    }
    assert isinstance(position, int)
    assert position > 0


async def test_batch_results_follow_request_order_with_increasing_positions(api, ce) -> None:
    """Batch mode: one result per event in request order; positions increase."""
    events = [
        ce.event(t)
        for t in (
            "camera.registered",
            "radio.station.registered",
            "dossier.received",
            "kpi.defined",
        )
    ]
    reply = await api.batch(events)
    assert reply.status == 200
    assert_body_shape(reply.body)
    assert reply.body["accepted"] == 4
    assert [(r["id"], r["source"]) for r in reply.results] == [
        (e["id"], e["source"]) for e in events
    ]
    positions = reply.positions()
    assert positions == sorted(positions)
    assert len(set(positions)) == 4


async def test_batch_positions_increase_in_request_order_when_subjects_interleave(api, ce) -> None:
    """Events of two subjects interleaved in one batch get positions in request order."""
    a, b = ce.code("camera.registered"), ce.code("camera.registered")
    events = [
        ce.event("camera.registered", a, time=ce.at(0)),
        ce.event("camera.registered", b, time=ce.at(0)),
        ce.event("camera.status", a, time=ce.at(1)),
        ce.event("camera.status", b, time=ce.at(1)),
    ]
    positions = (await api.batch(events)).positions()
    assert positions == sorted(positions), positions


async def test_binary_mode_reads_ce_headers_and_json_data(api, ce) -> None:
    """Binary mode: ce-* headers plus application/json data is one accepted event."""
    event = ce.event("radio.station.registered")
    reply = await api.binary(event)
    assert reply.status == 200
    assert_body_shape(reply.body)
    (result,) = reply.results
    assert (result["id"], result["source"], result["status"]) == (
        event["id"],
        event["source"],
        "accepted",
    )
    station = await api.aggregate("radio.station.registered", event["subject"])
    assert station.clusters == event["data"]["clusters"]
    assert station.unit == event["data"]["unit"]


async def test_binary_then_structured_copy_of_same_event_is_a_duplicate(api, ce) -> None:
    """The fingerprint does not depend on the HTTP mode: binary then structured → duplicate."""
    event = ce.event("camera.registered")
    (position,) = (await api.binary(event)).positions()
    again = await api.structured(event)
    assert again.status == 200
    assert again.results[0]["status"] == "duplicate"
    assert again.results[0]["position"] == position


async def test_ndjson_bad_line_is_rejected_and_good_lines_beside_it_accepted(api, ce) -> None:
    """NDJSON: a line that is not JSON is rejected (invalid_envelope); other lines are stored."""
    first, last = ce.event("camera.registered"), ce.event("kpi.defined")
    reply = await api.ndjson([first, '{"specversion": "1.0", "id": ', last])
    assert reply.status == 200
    assert_body_shape(reply.body)
    assert (reply.body["accepted"], reply.body["rejected"]) == (2, 1)
    good = [reply.results[0], reply.results[2]]
    assert [(r["id"], r["status"]) for r in good] == [
        (first["id"], "accepted"),
        (last["id"], "accepted"),
    ]
    assert good[0]["position"] < good[1]["position"]
    bad = reply.results[1]
    assert bad["status"] == "rejected"
    assert bad["error"]["code"] == "invalid_envelope"
    assert "line 2" in bad["error"]["detail"]


async def test_ndjson_skips_blank_lines(api, ce) -> None:
    """Blank lines in NDJSON are not events."""
    events = [ce.event("camera.registered"), ce.event("camera.registered")]
    reply = await api.post(
        "application/x-ndjson",
        orjson.dumps(events[0]) + b"\n\n   \n" + orjson.dumps(events[1]) + b"\n",
    )
    assert len(reply.positions()) == 2


@pytest.mark.parametrize("event_type", list(CATALOGUE))
async def test_every_catalogue_type_with_valid_data_is_accepted(api, ce, event_type) -> None:
    """Each catalogue type, with valid data and its subject registered, is accepted."""
    subject = ce.code(event_type)
    before = prerequisites(ce, event_type, subject)
    event = ce.event(event_type, subject)
    if event_type == "radio.broadcast.ended":
        started = ce.event(
            "radio.broadcast.started",
            subject,
            time=ce.at(-1),
            broadcast_id=event["data"]["broadcast_id"],
        )
        before.append(started)
    if before:
        await api.ingest(*before)
    reply = await api.structured(event)
    assert reply.status == 200, reply.body
    assert reply.results[0]["status"] == "accepted"


async def test_optional_fields_may_be_left_out(api, ce) -> None:
    """Optional fields (lat/lon, plate, snapshot_url, procedure_name, reference) can be omitted."""
    camera = ce.event("camera.registered", data={"name": "Cam", "unit": ce.UNIT, "kind": "traffic"})
    alert = ce.event(
        "camera.alert",
        camera["subject"],
        data={"alert_id": "a1", "category": "fire", "severity": "critical"},
    )
    dossier = ce.event("dossier.received")
    del dossier["data"]["procedure_name"]
    kpi = ce.event("kpi.defined")
    del kpi["data"]["reference"]
    withdrawn = ce.event("dossier.withdrawn", dossier["subject"], data={})
    assert len(await api.ingest(camera, alert, dossier, kpi, withdrawn)) == 5


async def test_kpi_owner_may_be_a_unit(api, ce) -> None:
    """A KPI's owner is an agency or a unit code."""
    reply = await api.structured(ce.event("kpi.defined", owner=ce.DISTRICT))
    assert reply.status == 200
    assert reply.results[0]["status"] == "accepted"


# --- Body shape and status codes ---------------------------------------------------------


async def test_mixed_batch_counts_and_result_shapes(api, ce) -> None:
    """One batch with accepted, duplicate and rejected events: counts and shapes as contracted."""
    stored = ce.event("camera.registered")
    (original,) = await api.ingest(stored)
    fresh = ce.event("camera.registered")
    bad = ce.event("camera.status", status="broken")
    reply = await api.batch([fresh, stored, bad])
    assert reply.status == 200
    assert_body_shape(reply.body)
    assert (reply.body["accepted"], reply.body["duplicates"], reply.body["rejected"]) == (1, 1, 1)
    assert [r["status"] for r in reply.results] == ["accepted", "duplicate", "rejected"]
    assert reply.results[1]["position"] == original
    assert reply.results[2] == {
        "id": bad["id"],
        "source": bad["source"],
        "status": "rejected",
        "error": {
            "code": "invalid_data",
            "pointer": "/data/status",
            "detail": "must be one of online, offline, degraded",
        },
    }


async def test_rejected_structured_event_answers_422_with_the_same_body(api, ce) -> None:
    event = ce.event("camera.status", status="broken")
    reply = await api.structured(event)
    assert reply.status == 422
    assert reply.content_type == "application/json"
    assert_body_shape(reply.body)
    assert reply.body["rejected"] == 1
    assert reply.error()["code"] == "invalid_data"


async def test_rejected_binary_event_answers_422(api, ce) -> None:
    reply = await api.binary(ce.event("camera.registered", unit="NO-SUCH-UNIT"))
    assert reply.status == 422
    assert_body_shape(reply.body)
    assert reply.error() == {
        "code": "unknown_unit",
        "pointer": "/data/unit",
        "detail": "no unit with code 'NO-SUCH-UNIT' in the profile",
    }


async def test_batch_and_ndjson_of_only_rejected_events_answer_200(api, ce) -> None:
    """Per-item outcomes: batch and NDJSON answer 200 even when every event is rejected."""
    bad = ce.event("camera.status", status="broken")
    for reply in (await api.batch([bad]), await api.ndjson([bad])):
        assert reply.status == 200
        assert reply.body["rejected"] == 1
        assert reply.error()["code"] == "invalid_data"


async def test_empty_batch_answers_200_with_no_results(api) -> None:
    reply = await api.batch([])
    assert reply.status == 200
    assert reply.body == {"accepted": 0, "duplicates": 0, "rejected": 0, "results": []}


@pytest.mark.parametrize(
    ("content_type", "body", "headers"),
    [
        pytest.param("application/cloudevents+json", b'{"specversion": "1.0",', {}, id="truncated"),
        pytest.param("application/cloudevents+json", b"not json at all", {}, id="garbage"),
        pytest.param("application/cloudevents+json", b"[]", {}, id="structured-array"),
        pytest.param("application/cloudevents+json", b"null", {}, id="structured-null"),
        pytest.param("application/cloudevents-batch+json", b'{"id": "x"}', {}, id="batch-object"),
        pytest.param("application/cloudevents-batch+json", b"[{]", {}, id="batch-garbage"),
        pytest.param("application/json", b'{"status": "online"}', {}, id="json-no-ce-headers"),
        pytest.param(
            "application/json",
            b"{not json",
            {
                "ce-specversion": "1.0",
                "ce-id": "x",
                "ce-source": "s",
                "ce-type": "camera.status",
                "ce-time": "2026-11-22T09:00:00+07:00",
                "ce-subject": "cam-1",
            },
            id="binary-bad-json",
        ),
    ],
)
async def test_unparseable_or_non_cloudevents_body_is_400(api, content_type, body, headers):
    """Bodies that are not JSON, or JSON that is not CloudEvents, answer 400 problem+json."""
    reply = await api.post(content_type, body, headers=headers)
    assert_problem(reply, 400)


async def test_text_plain_is_415(api, ce) -> None:
    reply = await api.post("text/plain", orjson.dumps(ce.event("camera.registered")))
    assert_problem(reply, 415)


async def test_body_over_max_body_bytes_is_413(make_api, ce) -> None:
    """A body larger than max_body_bytes answers 413 problem+json and nothing is stored."""
    api = await make_api(max_body_bytes=2048)
    events = [ce.event("camera.registered") for _ in range(12)]
    body = orjson.dumps(events)
    assert len(body) > 2048
    reply = await api.post("application/cloudevents-batch+json", body)
    assert_problem(reply, 413)
    # Nothing of the refused body was stored: the first event is new afterwards.
    assert (await api.structured(events[0])).results[0]["status"] == "accepted"


async def test_more_events_than_max_request_events_is_413(make_api, ce) -> None:
    api = await make_api(max_request_events=3)
    assert len(await api.ingest(*(ce.event("camera.registered") for _ in range(3)))) == 3
    too_many = [ce.event("camera.registered") for _ in range(4)]
    assert_problem(await api.batch(too_many), 413)
    assert_problem(await api.ndjson(too_many), 413)
    assert (await api.structured(too_many[0])).results[0]["status"] == "accepted"


# --- Keys and roles (docs/CONTRACT.md §7) -------------------------------------------------------


async def test_no_key_is_401(api, ce) -> None:
    reply = await api.structured(ce.event("camera.registered"), key=None)
    assert_problem(reply, 401)
    assert reply.headers["WWW-Authenticate"].lower().startswith("bearer")


async def test_unknown_key_is_401(api, ce) -> None:
    event = orjson.dumps(ce.event("camera.registered"))
    for token in ("oc_" + "x" * 43, "not-a-key"):
        reply = await api.post(
            STRUCTURED, event, key=None, headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(reply, 401)


async def test_revoked_key_is_401_once_revoked(make_api, make_key, ce, database_url) -> None:
    """A revoked key stops working (key_cache_seconds=0: no lag)."""
    key = make_key("integration", scopes=("camera.*",))
    api = await make_api(key=key, key_cache_seconds=0)
    assert (await api.structured(ce.event("camera.registered"))).status == 200
    await asyncio.to_thread(revoke_key, database_url, key.name)
    reply = await api.structured(ce.event("camera.registered"))
    assert_problem(reply, 401)


async def test_viewer_key_may_not_ingest_403(api, viewer_key, ce) -> None:
    event = ce.event("camera.registered")
    reply = await api.structured(event, key=viewer_key)
    assert_problem(reply, 403)
    assert (await api.structured(event)).results[0]["status"] == "accepted"


async def test_operator_key_may_not_ingest_403(api, make_key, ce) -> None:
    reply = await api.batch([ce.event("camera.registered")], key=make_key("operator"))
    assert_problem(reply, 403)


async def test_admin_key_may_ingest_any_type(api, admin_key, ce) -> None:
    events = [ce.event("camera.registered"), ce.event("kpi.defined", source="urn:any")]
    reply = await api.batch(events, key=admin_key)
    assert len(reply.positions()) == 2


async def test_integration_key_outside_its_type_scope_is_403_for_a_single_event(
    api, make_key, ce
) -> None:
    """A key scoped to camera.* may not send a radio event: 403, and nothing is stored."""
    key = make_key("integration", scopes=("camera.*",))
    radio = ce.event("radio.station.registered")
    assert_problem(await api.structured(radio, key=key), 403)
    assert_problem(await api.binary(radio, key=key), 403)
    assert (await api.structured(ce.event("camera.registered"), key=key)).status == 200
    assert (await api.structured(radio)).results[0]["status"] == "accepted"


async def test_integration_key_outside_its_type_scope_in_a_batch_is_forbidden_per_item(
    api, make_key, ce
) -> None:
    key = make_key("integration", scopes=("camera.*", "kpi.reported"))
    camera, radio = ce.event("camera.registered"), ce.event("radio.station.registered")
    kpi = ce.event("kpi.defined")
    for reply in (
        await api.batch([camera, radio, kpi], key=key),
        await api.ndjson([ce.event("camera.registered"), radio, kpi], key=key),
    ):
        assert reply.status == 200
        assert [r["status"] for r in reply.results] == ["accepted", "rejected", "rejected"]
        assert [r["error"]["code"] for r in reply.results[1:]] == ["forbidden", "forbidden"]


async def test_integration_key_outside_its_source_patterns_is_403(api, make_key, ce) -> None:
    """A key limited to sources urn:cams:* may not send from another source."""
    key = make_key("integration", scopes=("camera.*",), sources=("urn:cams:*",))
    outside = ce.event("camera.registered", source="urn:other:1")
    inside = ce.event("camera.registered", source="urn:cams:north")
    assert_problem(await api.structured(outside, key=key), 403)
    reply = await api.batch([inside, ce.event("camera.registered", source="urn:other:2")], key=key)
    assert reply.status == 200
    assert [r["status"] for r in reply.results] == ["accepted", "rejected"]
    assert reply.results[1]["error"]["code"] == "forbidden"


async def test_key_over_its_rate_is_429_with_retry_after(make_api, make_key, ce) -> None:
    """A key with rate 1 event/s (burst 2 s) that sent 5 events is refused with Retry-After."""
    key = make_key("integration", scopes=("camera.*",), rate=1)
    api = await make_api(key=key)
    first = await api.batch([ce.event("camera.registered") for _ in range(5)])
    assert len(first.positions()) == 5
    refused = ce.event("camera.registered")
    reply = await api.structured(refused)
    assert_problem(reply, 429)
    assert int(reply.headers["Retry-After"]) >= 1
    # Other keys are not limited, and the refused event was not stored.
    other = await api.structured(refused, key=make_key("integration", scopes=("*",)))
    assert other.results[0]["status"] == "accepted"


# --- Rejection codes and pointers --------------------------------------------------------


def _without(event: Event, name: str) -> Event:
    return {k: v for k, v in event.items() if k != name}


def _base64(event: Event) -> Event:
    out = _without(event, "data")
    out["data_base64"] = "eyJzdGF0dXMiOiAib25saW5lIn0="
    return out


#: (case id, event type, change to a valid event, expected code, expected pointer)
REJECTIONS: list[tuple[str, str, Callable[[Event], Event], str, str]] = [
    ("missing-id", "camera.registered", lambda e: _without(e, "id"), "invalid_envelope", "/id"),
    (
        "missing-subject",
        "camera.registered",
        lambda e: _without(e, "subject"),
        "invalid_envelope",
        "/subject",
    ),
    (
        "bad-specversion",
        "camera.registered",
        lambda e: {**e, "specversion": "0.3"},
        "invalid_envelope",
        "/specversion",
    ),
    (
        "time-without-offset",
        "camera.registered",
        lambda e: {**e, "time": "2026-11-22T09:00:00"},
        "invalid_envelope",
        "/time",
    ),
    (
        "impossible-time",
        "camera.registered",
        lambda e: {**e, "time": "2026-02-30T09:00:00+07:00"},
        "invalid_envelope",
        "/time",
    ),
    ("data-base64", "camera.status", _base64, "invalid_envelope", "/data_base64"),
    (
        "missing-data",
        "camera.registered",
        lambda e: _without(e, "data"),
        "invalid_envelope",
        "/data",
    ),
    (
        "non-json-datacontenttype",
        "camera.registered",
        lambda e: {**e, "datacontenttype": "text/plain"},
        "invalid_envelope",
        "/datacontenttype",
    ),
    (
        "subject-not-a-code",
        "camera.registered",
        lambda e: {**e, "subject": "cam with spaces"},
        "invalid_envelope",
        "/subject",
    ),
    (
        "unknown-type",
        "camera.registered",
        lambda e: {**e, "type": "camera.exploded"},
        "unknown_type",
        "/type",
    ),
    (
        "enum",
        "camera.status",
        lambda e: {**e, "data": {"status": "broken"}},
        "invalid_data",
        "/data/status",
    ),
    (
        "integer-below-minimum",
        "radio.station.registered",
        lambda e: {**e, "data": {**e["data"], "clusters": 0}},
        "invalid_data",
        "/data/clusters",
    ),
    (
        "integer-not-whole",
        "radio.cluster.fault",
        lambda e: {**e, "data": {**e["data"], "cluster": 1.5}},
        "invalid_data",
        "/data/cluster",
    ),
    (
        "cluster-beyond-station",
        "radio.cluster.fault",
        lambda e: {**e, "data": {**e["data"], "cluster": 5}},
        "invalid_data",
        "/data/cluster",
    ),
    (
        "lat-range",
        "camera.registered",
        lambda e: {**e, "data": {**e["data"], "lat": 91}},
        "invalid_data",
        "/data/lat",
    ),
    (
        "lon-range",
        "radio.station.registered",
        lambda e: {**e, "data": {**e["data"], "lon": -180.5}},
        "invalid_data",
        "/data/lon",
    ),
    (
        "date",
        "kpi.defined",
        lambda e: {**e, "data": {**e["data"], "deadline": "2026-02-30"}},
        "invalid_data",
        "/data/deadline",
    ),
    (
        "due-at-without-offset",
        "dossier.received",
        lambda e: {**e, "data": {**e["data"], "due_at": "2026-11-27T17:00:00"}},
        "invalid_data",
        "/data/due_at",
    ),
    (
        "period",
        "kpi.reported",
        lambda e: {**e, "data": {**e["data"], "period": "2026-Q5"}},
        "invalid_data",
        "/data/period",
    ),
    (
        "number",
        "kpi.reported",
        lambda e: {**e, "data": {**e["data"], "value": "71.5"}},
        "invalid_data",
        "/data/value",
    ),
    (
        "url",
        "camera.alert",
        lambda e: {**e, "data": {**e["data"], "snapshot_url": "ftp://cams/1.jpg"}},
        "invalid_data",
        "/data/snapshot_url",
    ),
    (
        "unknown-field",
        "camera.status",
        lambda e: {**e, "data": {"status": "online", "colour": "red"}},
        "invalid_data",
        "/data/colour",
    ),
    (
        "missing-required",
        "camera.registered",
        lambda e: {**e, "data": {k: v for k, v in e["data"].items() if k != "name"}},
        "invalid_data",
        "/data/name",
    ),
    (
        "data-not-object",
        "camera.status",
        lambda e: {**e, "data": ["online"]},
        "invalid_data",
        "/data",
    ),
    (
        "unknown-unit",
        "camera.registered",
        lambda e: {**e, "data": {**e["data"], "unit": "NO-SUCH-UNIT"}},
        "unknown_unit",
        "/data/unit",
    ),
    (
        "unknown-dossier-agency",
        "dossier.received",
        lambda e: {**e, "data": {**e["data"], "agency": "NO-SUCH-AGENCY"}},
        "unknown_agency",
        "/data/agency",
    ),
    (
        "unknown-kpi-owner",
        "kpi.defined",
        lambda e: {**e, "data": {**e["data"], "owner": "NO-SUCH-OWNER"}},
        "unknown_agency",
        "/data/owner",
    ),
    (
        "report-lat-range",
        "report.received",
        lambda e: {**e, "data": {**e["data"], "lat": 90.01}},
        "invalid_data",
        "/data/lat",
    ),
    (
        "report-lon-range",
        "report.received",
        lambda e: {**e, "data": {**e["data"], "lon": 181}},
        "invalid_data",
        "/data/lon",
    ),
    (
        "report-category",
        "report.received",
        lambda e: {**e, "data": {**e["data"], "category": "pothole"}},
        "invalid_data",
        "/data/category",
    ),
    (
        "report-unknown-unit",
        "report.received",
        lambda e: {**e, "data": {**e["data"], "unit": "NO-SUCH-UNIT"}},
        "unknown_unit",
        "/data/unit",
    ),
    (
        "report-unknown-assignee",
        "report.assigned",
        lambda e: {**e, "data": {**e["data"], "agency": "NO-SUCH-AGENCY"}},
        "unknown_agency",
        "/data/agency",
    ),
    (
        "report-assigned-before-its-reception",
        "report.assigned",
        lambda e: {**e, "time": "2026-11-22T07:00:00+07:00"},  # received at 08:00
        "invalid_transition",
        "/time",
    ),
    (
        "report-duplicate-of-itself",
        "report.rejected",
        lambda e: {**e, "data": {**e["data"], "duplicate_of": e["subject"]}},
        "invalid_data",
        "/data/duplicate_of",
    ),
    (
        "report-rating",
        "report.rated",
        lambda e: {**e, "data": {"rating": "5 stars"}},
        "invalid_data",
        "/data/rating",
    ),
]


@pytest.mark.parametrize(
    ("event_type", "change", "code", "pointer"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS],
)
async def test_rejection_code_and_pointer(api, ce, event_type, change, code, pointer) -> None:
    """A bad event is rejected with its code and pointer: 422 alone, and in a batch the good
    event beside it is still accepted."""
    subject = ce.code(event_type)
    if before := prerequisites(ce, event_type, subject):
        await api.ingest(*before)
    bad = change(ce.event(event_type, subject))
    single = await api.structured(bad)
    assert single.status == 422, single.body
    error = single.error()
    assert (error["code"], error["pointer"]) == (code, pointer), error
    assert single.results[0]["id"] == bad.get("id")

    good = ce.event("camera.registered")
    reply = await api.batch([change(ce.event(event_type, subject)), good])
    assert reply.status == 200
    assert [r["status"] for r in reply.results] == ["rejected", "accepted"]
    assert reply.results[0]["error"]["code"] == code


async def test_status_for_a_never_registered_camera_is_unknown_subject(api, ce) -> None:
    reply = await api.structured(ce.event("camera.status"))
    assert reply.status == 422
    assert reply.error()["code"] == "unknown_subject"
    assert reply.error()["pointer"] == "/subject"


@pytest.mark.parametrize(
    "event_type",
    [t for t in CATALOGUE if not t.endswith((".registered", ".received", ".defined"))],
)
async def test_every_non_registration_type_needs_a_registered_subject(api, ce, event_type):
    reply = await api.structured(ce.event(event_type))
    assert reply.status == 422
    assert reply.error()["code"] == "unknown_subject"


async def test_completing_a_dossier_twice_is_invalid_transition(api, ce) -> None:
    code = ce.code("dossier.received")
    await api.ingest(ce.event("dossier.received", code, time=ce.at(0)))
    await api.ingest(ce.event("dossier.completed", code, time=ce.at(10)))
    reply = await api.structured(ce.event("dossier.completed", code, time=ce.at(20)))
    assert reply.status == 422
    assert (reply.error()["code"], reply.error()["pointer"]) == ("invalid_transition", "/type")


async def test_a_dossier_is_rated_once_and_only_once_completed(api, ce) -> None:
    open_ = ce.code("dossier.received")
    await api.ingest(ce.event("dossier.received", open_, time=ce.at(0)))
    reply = await api.structured(ce.event("dossier.rated", open_, time=ce.at(5)))
    assert reply.status == 422
    assert (reply.error()["code"], reply.error()["pointer"]) == ("invalid_transition", "/type")
    await api.ingest(ce.event("dossier.completed", open_, time=ce.at(10)))
    await api.ingest(ce.event("dossier.rated", open_, time=ce.at(20), rating="satisfied"))
    again = await api.structured(ce.event("dossier.rated", open_, time=ce.at(30)))
    assert (again.status, again.error()["code"]) == (422, "invalid_transition")
    bad = await api.structured(ce.event("dossier.rated", open_, rating="happy"))
    assert (bad.error()["code"], bad.error()["pointer"]) == ("invalid_data", "/data/rating")
    flag = await api.structured(ce.event("dossier.received", digitised="yes"))
    assert (flag.error()["code"], flag.error()["pointer"]) == ("invalid_data", "/data/digitised")


async def test_invalid_transition_within_one_batch_keeps_the_good_events(api, ce) -> None:
    """received, completed, completed again, withdrawn in one batch: the last two are refused."""
    code = ce.code("dossier.received")
    events = [
        ce.event("dossier.received", code, time=ce.at(0)),
        ce.event("dossier.completed", code, time=ce.at(5)),
        ce.event("dossier.completed", code, time=ce.at(6)),
        ce.event("dossier.withdrawn", code, time=ce.at(7)),
        ce.event("camera.registered"),
    ]
    reply = await api.batch(events)
    assert [r["status"] for r in reply.results] == [
        "accepted",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert {r["error"]["code"] for r in reply.results if "error" in r} == {"invalid_transition"}
    dossier = await api.aggregate("dossier.received", code)
    assert dossier.state == "completed"


async def test_receiving_a_dossier_twice_is_invalid_transition(api, ce) -> None:
    code = ce.code("dossier.received")
    await api.ingest(ce.event("dossier.received", code))
    reply = await api.structured(ce.event("dossier.received", code))
    assert reply.error()["code"] == "invalid_transition"


async def test_ending_a_broadcast_never_started_is_invalid_transition(api, ce) -> None:
    station = ce.code("radio.station.registered")
    await api.ingest(ce.event("radio.station.registered", station))
    reply = await api.structured(ce.event("radio.broadcast.ended", station, broadcast_id="b-1"))
    assert reply.status == 422
    error = reply.error()
    assert (error["code"], error["pointer"]) == ("invalid_transition", "/data/broadcast_id")


async def test_starting_the_same_broadcast_twice_is_invalid_transition(api, ce) -> None:
    station = ce.code("radio.station.registered")
    start = ce.event("radio.broadcast.started", station, broadcast_id="b-7", kind="emergency")
    await api.ingest(ce.event("radio.station.registered", station, time=ce.at(-5)), start)
    again = ce.event("radio.broadcast.started", station, broadcast_id="b-7", time=ce.at(1))
    reply = await api.structured(again)
    error = reply.error()
    assert (error["code"], error["pointer"]) == ("invalid_transition", "/data/broadcast_id")
    # After it ended, the same id still cannot start again.
    await api.ingest(ce.event("radio.broadcast.ended", station, broadcast_id="b-7"))
    reply = await api.structured(ce.event("radio.broadcast.started", station, broadcast_id="b-7"))
    assert reply.error()["code"] == "invalid_transition"


async def test_same_source_and_id_with_different_content_is_conflict(api, ce) -> None:
    camera = ce.event("camera.registered")
    (position,) = await api.ingest(camera)
    changed = {**camera, "data": {**camera["data"], "name": "Another name"}}
    reply = await api.structured(changed)
    assert reply.status == 422
    error = reply.error()
    assert (error["code"], error["pointer"]) == ("conflict", "/id")
    # The original is untouched and still answers as a duplicate.
    again = await api.structured(camera)
    assert (again.results[0]["status"], again.results[0]["position"]) == ("duplicate", position)


async def test_same_id_from_another_source_is_a_different_event(api, ce) -> None:
    """(source, id) identifies an event: the same id from another source is new."""
    first = ce.event("camera.registered", source="urn:a")
    second = ce.event("camera.registered", source="urn:b", event_id=first["id"])
    positions = await api.ingest(first, second)
    assert positions[0] != positions[1]


async def test_batch_with_every_kind_of_bad_event_still_accepts_the_good_ones(api, ce) -> None:
    """Good events interleaved with one bad event of every rejection kind are all accepted."""
    stored = ce.event("camera.registered")
    await api.ingest(stored)
    dossier = ce.code("dossier.received")
    await api.ingest(
        ce.event("dossier.received", dossier, time=ce.at(0)),
        ce.event("dossier.completed", dossier, time=ce.at(1)),
    )
    bad = [
        _without(ce.event("camera.registered"), "id"),
        {**ce.event("camera.registered"), "type": "camera.nope"},
        ce.event("camera.registered", kind="drone"),
        ce.event("camera.registered", unit="NO-SUCH-UNIT"),
        ce.event("dossier.received", agency="NO-SUCH-AGENCY"),
        ce.event("camera.status"),
        ce.event("dossier.completed", dossier, time=ce.at(2)),
        {**stored, "data": {**stored["data"], "name": "changed"}},
        "not an event",
    ]
    good = [ce.event("camera.registered") for _ in bad]
    events = [item for pair in zip(good, bad, strict=True) for item in pair]
    reply = await api.batch(events)
    assert reply.status == 200
    assert_body_shape(reply.body)
    assert [r["status"] for r in reply.results[0::2]] == ["accepted"] * len(good)
    assert [r["error"]["code"] for r in reply.results[1::2]] == [
        "invalid_envelope",
        "unknown_type",
        "invalid_data",
        "unknown_unit",
        "unknown_agency",
        "unknown_subject",
        "invalid_transition",
        "conflict",
        "invalid_envelope",
    ]


async def test_event_id_with_nul_character_is_rejected_without_failing_its_batch(api, ce):
    """An id PostgreSQL cannot store is rejected alone; the good event beside it is stored."""
    good = ce.event("camera.registered")
    bad = ce.event("camera.registered", event_id="nul\u0000id")
    reply = await api.batch([good, bad])
    assert reply.status == 200, reply.body
    assert [r["status"] for r in reply.results] == ["accepted", "rejected"]
    assert reply.results[1]["error"]["code"] == "invalid_envelope"


# --- Duplicates ----------------------------------------------------------------------------


async def test_same_event_again_is_duplicate_with_original_position(api, ce) -> None:
    event = ce.event("camera.registered")
    (position,) = await api.ingest(event)
    reply = await api.structured(event)
    assert reply.status == 200
    assert reply.body == {
        "accepted": 0,
        "duplicates": 1,
        "rejected": 0,
        "results": [
            {
                "id": event["id"],
                "source": event["source"],
                "status": "duplicate",
                "position": position,
            }
        ],
    }
    camera = await api.aggregate("camera.registered", event["subject"])
    assert camera.version == 1  # nothing more was stored


async def test_duplicate_ignores_json_key_order_and_mode(api, ce) -> None:
    """Same content with keys in another order, or sent as NDJSON, is still a duplicate."""
    event = ce.event("camera.alert", ce.code("camera.registered"))
    await api.ingest(ce.event("camera.registered", event["subject"], time=ce.at(-1)))
    (position,) = await api.ingest(event)
    reordered = {k: event[k] for k in reversed(list(event))}
    reordered["data"] = {k: event["data"][k] for k in reversed(list(event["data"]))}
    for reply in (await api.structured(reordered), await api.ndjson([reordered])):
        assert reply.results[0]["status"] == "duplicate"
        assert reply.results[0]["position"] == position


async def test_duplicate_inside_the_same_batch_answers_the_first_position(api, ce) -> None:
    event = ce.event("camera.registered")
    reply = await api.batch([event, ce.event("kpi.defined"), event])
    assert [r["status"] for r in reply.results] == ["accepted", "accepted", "duplicate"]
    assert reply.results[2]["position"] == reply.results[0]["position"]
    assert (reply.body["accepted"], reply.body["duplicates"]) == (2, 1)


async def test_conflict_inside_the_same_batch(api, ce) -> None:
    event = ce.event("camera.registered")
    changed = {**event, "data": {**event["data"], "kind": "public"}}
    reply = await api.batch([event, changed])
    assert [r["status"] for r in reply.results] == ["accepted", "rejected"]
    assert reply.results[1]["error"]["code"] == "conflict"


async def test_concurrent_copies_of_one_event_store_it_once(api, ce) -> None:
    """The same event sent by concurrent requests is accepted once; the others are duplicates."""
    event = ce.event("camera.registered")
    replies = await asyncio.gather(*(api.structured(event) for _ in range(5)))
    results = [r.results[0] for r in replies]
    assert sorted(r["status"] for r in results) == ["accepted"] + ["duplicate"] * 4
    assert len({r["position"] for r in results}) == 1


async def test_duplicate_after_restart_answers_the_original_position(make_api, ce) -> None:
    """A second app on the same database (a restart) still knows what was stored."""
    first = await make_api()
    event = ce.event("dossier.received")
    (position,) = await first.ingest(event)
    await first.client.close()  # shut the first app down: writer, store and pools closed
    second = await make_api(key=first.key)
    reply = await second.structured(event)
    assert (reply.results[0]["status"], reply.results[0]["position"]) == ("duplicate", position)
    changed = {**event, "data": {**event["data"], "channel": "postal"}}
    assert (await second.structured(changed)).error()["code"] == "conflict"


async def test_rejected_event_sent_again_is_rejected_again_not_duplicate(api, ce) -> None:
    """A rejected event was not stored: sending it again is judged afresh."""
    event = ce.event("camera.status")
    assert (await api.structured(event)).error()["code"] == "unknown_subject"
    await api.ingest(ce.event("camera.registered", event["subject"], time=ce.at(-1)))
    assert (await api.structured(event)).results[0]["status"] == "accepted"


# --- Late and out-of-order events ---------------------------------------------------------


async def test_older_camera_status_is_stored_but_does_not_overwrite_newer(api, ce) -> None:
    code = ce.code("camera.registered")
    await api.ingest(ce.event("camera.registered", code, time=ce.at(0)))
    newer = ce.event("camera.status", code, time=ce.at(10), status="online")
    older = ce.event("camera.status", code, time=ce.at(5), status="offline")
    (p_new,) = await api.ingest(newer)
    (p_old,) = await api.ingest(older)
    assert p_old > p_new  # the late event is stored, after the newer one
    camera = await api.aggregate("camera.registered", code)
    assert camera.status == "online"
    assert camera.status_time.isoformat() == newer["time"]
    assert camera.version == 3


async def test_status_order_within_one_batch_follows_time(api, ce) -> None:
    """Out of order inside a batch: the latest time wins, whatever the arrival order."""
    code = ce.code("radio.station.registered")
    events = [
        ce.event("radio.station.registered", code, time=ce.at(0)),
        ce.event("radio.station.status", code, time=ce.at(30), status="offline"),
        ce.event("radio.station.status", code, time=ce.at(20), status="online"),
        ce.event("radio.cluster.fault", code, time=ce.at(15), cluster=2, fault="network"),
        ce.event("radio.cluster.restored", code, time=ce.at(12), cluster=2),
    ]
    assert len(await api.ingest(*events)) == 5
    station = await api.aggregate("radio.station.registered", code)
    assert station.status == "offline"
    assert station.faults == {2: "network"}


async def test_late_kpi_report_for_a_period_does_not_replace_newer_value(api, ce) -> None:
    code = ce.code("kpi.defined")
    await api.ingest(
        ce.event("kpi.defined", code, time=ce.at(0)),
        ce.event("kpi.reported", code, time=ce.at(20), period="2026-Q3", value=60),
        ce.event("kpi.reported", code, time=ce.at(10), period="2026-Q3", value=40),
        ce.event("kpi.target_revised", code, time=ce.at(30), target=90, deadline="2027-12-31"),
        ce.event("kpi.target_revised", code, time=ce.at(25), target=70, deadline="2027-01-31"),
    )
    indicator = await api.aggregate("kpi.defined", code)
    assert indicator.values == {"2026-Q3": 60}
    assert (indicator.target, indicator.deadline) == (90, "2027-12-31")


async def test_dossier_completion_records_whether_it_was_on_time(api, ce) -> None:
    """on_time is decided from the completion's time against due_at (equal is on time)."""
    due = ce.at(60)
    on_time, late = ce.code("dossier.received"), ce.code("dossier.received")
    await api.ingest(
        ce.event("dossier.received", on_time, time=ce.at(0), due_at=due),
        ce.event("dossier.received", late, time=ce.at(0), due_at=due),
        ce.event("dossier.completed", on_time, time=due),
        ce.event("dossier.completed", late, time=ce.at(61)),
    )
    for code, expected in ((on_time, True), (late, False)):
        events = await api.stored_events("dossier.received", code)
        completed = events[-1]
        assert type(completed).__name__ == "Completed"
        assert completed.on_time is expected
        assert completed.meta["time"] in (due, ce.at(61))


# --- Reference data and health -------------------------------------------------------------


async def test_units_for_a_viewer(api, viewer_key) -> None:
    reply = await api.get("/api/v1/units", key=viewer_key)
    assert reply.status == 200
    codes = [item["code"] for item in reply.body["items"]]
    assert codes == list(PROFILE.units)
    province = reply.body["items"][0]
    assert (province["level"], province["parent"]) == ("province", None)
    assert set(province) >= {"code", "name", "name_en", "level", "parent"}


async def test_agencies_for_a_viewer(api, viewer_key) -> None:
    reply = await api.get("/api/v1/agencies", key=viewer_key)
    assert reply.status == 200
    assert [item["code"] for item in reply.body["items"]] == list(PROFILE.agencies)
    assert all(set(item) == {"code", "name", "name_en", "unit"} for item in reply.body["items"])


async def test_reference_data_needs_a_key(api) -> None:
    for path in ("/api/v1/units", "/api/v1/agencies"):
        assert_problem(await api.get(path, key=None), 401)


async def test_healthz_without_a_key_is_200(api) -> None:
    reply = await api.get("/healthz", key=None)
    assert reply.status == 200
    assert reply.body["status"] == "ok"
