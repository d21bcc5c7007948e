"""`OpsCenter.ingest` against real PostgreSQL: batches, receipts and failure isolation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import ops_center.store.application as application
from ops_center.domain import Camera, subject_id
from ops_center.ingest import cloudevents
from ops_center.ingest.catalogue import CATALOGUE, validate_data
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter, Submission

PROFILE = load_profile()


def submission(event_type: str, subject: str, data: dict[str, Any], minute: int = 0) -> Submission:
    raw = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/test/application",
        "type": event_type,
        "time": f"2026-11-22T09:{minute:02d}:00+07:00",
        "subject": subject,
        "data": data,
    }
    event = cloudevents.parse(raw)
    kind = CATALOGUE[event_type]
    meta = {
        "source": event.source,
        "id": event.id,
        "time": event.time,
        "received_at": "2026-11-22T02:00:00+00:00",
        "key": "test",
    }
    return Submission(event, kind, validate_data(kind, event.data, PROFILE), meta)  # type: ignore[arg-type]


def register(code: str) -> Submission:
    return submission(
        "camera.registered", code, {"name": "Cổng", "unit": "MS-D01-C01", "kind": "security"}
    )


def status(code: str, value: str, minute: int) -> Submission:
    return submission("camera.status", code, {"status": value}, minute)


@pytest.fixture(scope="module")
def app(database_url: str) -> Any:
    store = OpsCenter(database_url)
    yield store
    store.close()


def test_a_crash_while_deciding_one_event_rejects_it_alone(
    app: OpsCenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a decision (not bad input) costs that event only; its subject is reloaded."""
    good, bad = f"CAM-{uuid.uuid4().hex[:8]}", f"CAM-{uuid.uuid4().hex[:8]}"
    assert [o.status for o in app.ingest([register(good), register(bad)])] == ["accepted"] * 2

    real_decide = application.decide

    def decide_with_a_bug(kind: Any, current: Any, subject: str, *args: Any) -> Any:
        if subject == bad and kind.name == "camera.status":
            current.status = "corrupted"  # half-changed state before the crash
            raise ZeroDivisionError("a bug")
        return real_decide(kind, current, subject, *args)

    monkeypatch.setattr(application, "decide", decide_with_a_bug)
    outcomes = app.ingest([status(good, "offline", 1), status(bad, "offline", 1)])
    monkeypatch.undo()

    assert outcomes[0].status == "accepted"
    assert outcomes[1].status == "rejected"
    assert outcomes[1].error is not None
    assert outcomes[1].error.code == "internal_error"
    # the half-changed cached state was dropped: the subject decides from the store again
    (later,) = app.ingest([status(bad, "online", 2)])
    assert later.status == "accepted"
    stored = app.repository.get(subject_id("camera", bad))
    assert isinstance(stored, Camera)
    assert stored.status == "online"
    assert stored.version == 2


def test_positions_follow_request_order_across_subjects(app: OpsCenter) -> None:
    a, b = f"CAM-{uuid.uuid4().hex[:8]}", f"CAM-{uuid.uuid4().hex[:8]}"
    outcomes = app.ingest(
        [register(a), register(b), status(a, "offline", 1), status(b, "online", 1)]
    )
    positions = [o.position for o in outcomes]
    assert all(p is not None for p in positions)
    assert positions == sorted(positions)
    assert len(set(positions)) == 4


def test_a_stale_cache_after_another_writer_is_recovered_event_by_event(
    app: OpsCenter, database_url: str
) -> None:
    """Another node changes a subject behind this writer's cache: the batch is retried
    one by one after reloading, and every event is stored once."""
    code = f"CAM-{uuid.uuid4().hex[:8]}"
    app.ingest([register(code)])
    other = OpsCenter(database_url)
    try:
        assert other.ingest([status(code, "offline", 1)])[0].status == "accepted"
    finally:
        other.close()
    outcomes = app.ingest([status(code, "online", 2), register(f"CAM-{uuid.uuid4().hex[:8]}")])
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    stored = app.repository.get(subject_id("camera", code))
    assert stored.version == 3
    assert stored.status == "online"


def test_an_event_refused_on_stale_cached_state_is_decided_again_on_the_stored_state(
    app: OpsCenter, database_url: str
) -> None:
    """Another HTTP process starts a broadcast behind this one's cache: ending it here is
    accepted (decided on the stored state), and a truly wrong end is still refused."""
    code = f"DTT-{uuid.uuid4().hex[:8]}"
    station = {"name": "Đài xã", "unit": "MS-D01-C01", "clusters": 4}
    assert app.ingest([submission("radio.station.registered", code, station)])[0].status == (
        "accepted"
    )
    other = OpsCenter(database_url)
    try:
        started = submission(
            "radio.broadcast.started",
            code,
            {"broadcast_id": "B-1", "program": "Bản tin sáng", "kind": "normal"},
            1,
        )
        assert other.ingest([started])[0].status == "accepted"
    finally:
        other.close()
    ended, wrong = (
        submission("radio.broadcast.ended", code, {"broadcast_id": b}, 2) for b in ("B-1", "B-9")
    )
    outcomes = app.ingest([ended, wrong])
    assert [o.status for o in outcomes] == ["accepted", "rejected"]
    assert outcomes[1].error is not None
    assert outcomes[1].error.code == "invalid_transition"
    stored = app.repository.get(subject_id("station", code))
    assert stored.version == 3
    assert stored.on_air == {}
