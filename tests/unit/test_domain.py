"""The aggregates (ops_center.domain) driven through `ops_center.ingest.decisions.decide`. No I/O.

Late and out-of-order events are normal (docs/CONTRACT.md §2): every event is recorded as history,
but the current state follows the latest event `time`, not arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_center.domain import Camera, Dossier, Indicator, Meta, RadioStation, Report, subject_id
from ops_center.domain.errors import Rejection
from ops_center.domain.radio import ENDED_MEMORY
from ops_center.domain.report import ASSIGNED, NEW, REJECTED, RESOLVED
from ops_center.ingest.catalogue import CATALOGUE
from ops_center.ingest.decisions import AGGREGATE_TYPES, aggregate_id, decide

_counter = iter(range(1, 1_000_000))


def meta(minute: int = 0, *, time: str | None = None) -> Meta:
    """Provenance of an event that happened `minute` minutes after 09:00 (+07:00)."""
    at = time or f"2026-11-22T{9 + minute // 60:02d}:{minute % 60:02d}:00+07:00"
    return {
        "source": "urn:test",
        "id": f"e{next(_counter)}",
        "time": at,
        "received_at": "2026-11-22T02:00:00+00:00",
        "key": "unit-test",
    }


def apply(
    current: Aggregate | None,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    minute: int = 0,
    *,
    time: str | None = None,
) -> Aggregate:
    return decide(CATALOGUE[event_type], current, subject, data, meta(minute, time=time))


def rejected(
    current: Aggregate | None, event_type: str, subject: str, data: dict[str, Any], minute: int = 0
) -> Rejection:
    """The rejection of an event; asserts the aggregate gained no event."""
    version = None if current is None else current.version
    pending = None if current is None else len(current.pending_events)
    with pytest.raises(Rejection) as info:
        apply(current, event_type, subject, data, minute)
    if current is not None:
        assert current.version == version
        assert len(current.pending_events) == pending
    return info.value


def replay(aggregate: Aggregate) -> Aggregate:
    """The aggregate rebuilt from its own events, as the repository does from the store."""
    events = aggregate.collect_events()
    rebuilt = reduce(lambda agg, event: event.mutate(agg), events, None)
    assert rebuilt is not None
    return rebuilt


def camera(minute: int = 0, code: str = "CAM-1") -> Camera:
    cam = apply(
        None,
        "camera.registered",
        code,
        {"name": "Cổng UBND", "unit": "U1", "kind": "security", "lat": 21.0, "lon": 106.0},
        minute,
    )
    assert isinstance(cam, Camera)
    return cam


def station(clusters: int = 3, minute: int = 0) -> RadioStation:
    st_ = apply(
        None,
        "radio.station.registered",
        "ST-1",
        {"name": "Đài xã", "unit": "U1", "clusters": clusters},
        minute,
    )
    assert isinstance(st_, RadioStation)
    return st_


def dossier(due_at: str = "2026-11-25T17:00:00+07:00") -> Dossier:
    dos = apply(
        None,
        "dossier.received",
        "DOS-1",
        {
            "procedure_code": "1.0001",
            "level": "full_online",
            "channel": "online",
            "agency": "SNV",
            "unit": "U1",
            "due_at": due_at,
        },
    )
    assert isinstance(dos, Dossier)
    return dos


def indicator() -> Indicator:
    ind = apply(
        None,
        "kpi.defined",
        "KPI-1",
        {
            "name": "Online share",
            "measure": "%",
            "owner": "SNV",
            "pillar": "digital_government",
            "direction": "increase",
            "target": 80,
            "deadline": "2026-12-31",
        },
    )
    assert isinstance(ind, Indicator)
    return ind


def report(minute: int = 0, code: str = "PA-1") -> Report:
    rep = apply(
        None,
        "report.received",
        code,
        {
            "category": "environment",
            "title": "Cống bị tắc",
            "unit": "U1",
            "channel": "app",
            "lat": 21.2,
            "lon": 106.2,
        },
        minute,
    )
    assert isinstance(rep, Report)
    return rep


def due(minute: int) -> str:
    """The time `minute` minutes after 09:00 (+07:00), as a due time."""
    return f"2026-11-22T{9 + minute // 60:02d}:{minute % 60:02d}:00+07:00"


# --- identities -----------------------------------------------------------------------


def test_subject_id_is_stable_and_distinct_per_kind() -> None:
    assert subject_id("camera", "X1") == subject_id("camera", "X1")
    assert subject_id("camera", "X1") != subject_id("station", "X1")
    assert subject_id("camera", "X1") != subject_id("camera", "X2")


def test_aggregate_id_follows_the_subject_kind_of_the_type() -> None:
    assert aggregate_id(CATALOGUE["camera.status"], "C") == subject_id("camera", "C")
    assert aggregate_id(CATALOGUE["radio.cluster.fault"], "S") == subject_id("station", "S")
    assert aggregate_id(CATALOGUE["dossier.withdrawn"], "D") == subject_id("dossier", "D")
    assert aggregate_id(CATALOGUE["kpi.reported"], "K") == subject_id("indicator", "K")
    assert aggregate_id(CATALOGUE["report.rated"], "R") == subject_id("report", "R")


def test_created_aggregate_has_the_subject_id() -> None:
    assert camera(code="CAM-9").id == subject_id("camera", "CAM-9")
    assert set(AGGREGATE_TYPES) == {"station", "camera", "dossier", "indicator", "report"}
    assert report(code="PA-9").id == subject_id("report", "PA-9")


@pytest.mark.parametrize(
    "event_type",
    [t for t in CATALOGUE if not t.endswith((".registered", ".received", ".defined"))],
)
def test_event_for_an_unregistered_subject_is_unknown_subject(event_type: str) -> None:
    error = rejected(None, event_type, "NOPE", {})
    assert (error.code, error.pointer) == ("unknown_subject", "/subject")
    assert "NOPE" in error.detail


def test_decide_returns_the_same_aggregate_with_one_new_event() -> None:
    cam = camera()
    after = apply(cam, "camera.status", "CAM-1", {"status": "online"}, 1)
    assert after is cam
    assert len(cam.pending_events) == 2
    assert cam.version == 2


# --- cameras ----------------------------------------------------------------------------


def test_camera_registration_keeps_its_details() -> None:
    cam = camera()
    assert (cam.code, cam.name, cam.unit, cam.kind) == ("CAM-1", "Cổng UBND", "U1", "security")
    assert (cam.lat, cam.lon) == (21.0, 106.0)
    assert cam.status is None


def test_newer_camera_status_replaces_older() -> None:
    cam = camera()
    apply(cam, "camera.status", "CAM-1", {"status": "online"}, 1)
    apply(cam, "camera.status", "CAM-1", {"status": "degraded"}, 2)
    assert cam.status == "degraded"


def test_late_camera_status_is_recorded_but_does_not_overwrite_newer_state() -> None:
    cam = camera()
    apply(cam, "camera.status", "CAM-1", {"status": "online"}, 10)
    apply(cam, "camera.status", "CAM-1", {"status": "offline"}, 5)
    assert cam.status == "online"
    assert cam.status_time is not None
    assert cam.status_time.minute == 10
    assert cam.version == 3  # the late event is history all the same
    assert type(cam.pending_events[-1]).__name__ == "StatusReported"


def test_camera_status_tie_on_time_last_arrival_wins() -> None:
    cam = camera()
    apply(cam, "camera.status", "CAM-1", {"status": "online"}, 10)
    apply(cam, "camera.status", "CAM-1", {"status": "offline"}, 10)
    assert cam.status == "offline"


def test_status_times_compare_as_instants_across_offsets() -> None:
    cam = camera()
    apply(cam, "camera.status", "CAM-1", {"status": "online"}, time="2026-11-22T03:00:00Z")
    # 09:30+07:00 is 02:30Z: older, although its wall-clock reading is larger.
    apply(cam, "camera.status", "CAM-1", {"status": "offline"}, time="2026-11-22T09:30:00+07:00")
    assert cam.status == "online"


def test_camera_reregistration_only_newer_changes_details() -> None:
    cam = camera(minute=10)
    apply(cam, "camera.registered", "CAM-1", {"name": "Old", "unit": "U0", "kind": "public"}, 5)
    assert (cam.name, cam.unit, cam.kind) == ("Cổng UBND", "U1", "security")
    apply(cam, "camera.registered", "CAM-1", {"name": "New", "unit": "U2", "kind": "traffic"}, 20)
    assert (cam.name, cam.unit, cam.kind, cam.lat) == ("New", "U2", "traffic", None)
    assert cam.version == 3


def test_camera_alert_is_recorded_without_changing_status() -> None:
    cam = camera()
    apply(cam, "camera.status", "CAM-1", {"status": "online"}, 1)
    apply(
        cam,
        "camera.alert",
        "CAM-1",
        {"alert_id": "A1", "category": "fire", "severity": "critical"},
        2,
    )
    event = cam.pending_events[-1]
    assert type(event).__name__ == "AlertRaised"
    assert (event.category, event.severity, event.plate) == ("fire", "critical", None)
    assert cam.status == "online"


# --- radio stations ---------------------------------------------------------------------


def test_broadcast_goes_on_air_and_off_air() -> None:
    st_ = station()
    apply(
        st_,
        "radio.broadcast.started",
        "ST-1",
        {"broadcast_id": "B1", "program": "Tin", "kind": "emergency"},
        1,
    )
    assert st_.on_air == {"B1": "emergency"}
    apply(st_, "radio.broadcast.ended", "ST-1", {"broadcast_id": "B1"}, 2)
    assert st_.on_air == {}
    assert "B1" in st_.ended


def test_starting_the_same_broadcast_twice_is_invalid_transition() -> None:
    st_ = station()
    data = {"broadcast_id": "B1", "program": "Tin", "kind": "normal"}
    apply(st_, "radio.broadcast.started", "ST-1", data, 1)
    error = rejected(st_, "radio.broadcast.started", "ST-1", data, 2)
    assert (error.code, error.pointer) == ("invalid_transition", "/data/broadcast_id")


def test_restarting_an_ended_broadcast_is_invalid_transition() -> None:
    st_ = station()
    data = {"broadcast_id": "B1", "program": "Tin", "kind": "normal"}
    apply(st_, "radio.broadcast.started", "ST-1", data, 1)
    apply(st_, "radio.broadcast.ended", "ST-1", {"broadcast_id": "B1"}, 2)
    assert rejected(st_, "radio.broadcast.started", "ST-1", data, 3).code == "invalid_transition"


def test_ending_a_broadcast_not_on_air_is_invalid_transition() -> None:
    st_ = station()
    error = rejected(st_, "radio.broadcast.ended", "ST-1", {"broadcast_id": "B9"}, 1)
    assert (error.code, error.pointer) == ("invalid_transition", "/data/broadcast_id")
    apply(
        st_,
        "radio.broadcast.started",
        "ST-1",
        {"broadcast_id": "B9", "program": "Tin", "kind": "priority"},
        2,
    )
    apply(st_, "radio.broadcast.ended", "ST-1", {"broadcast_id": "B9"}, 3)
    assert rejected(st_, "radio.broadcast.ended", "ST-1", {"broadcast_id": "B9"}, 4).code == (
        "invalid_transition"
    )


def test_ended_broadcast_memory_is_bounded() -> None:
    st_ = station()
    for n in range(ENDED_MEMORY + 1):
        apply(
            st_,
            "radio.broadcast.started",
            "ST-1",
            {"broadcast_id": f"B{n}", "program": "Tin", "kind": "normal"},
            1,
        )
        apply(st_, "radio.broadcast.ended", "ST-1", {"broadcast_id": f"B{n}"}, 2)
    assert len(st_.ended) == ENDED_MEMORY
    assert "B0" not in st_.ended
    assert f"B{ENDED_MEMORY}" in st_.ended


@pytest.mark.parametrize("cluster", [1, 2, 3])
def test_cluster_within_range_may_fault(cluster: int) -> None:
    st_ = station(clusters=3)
    apply(st_, "radio.cluster.fault", "ST-1", {"cluster": cluster, "fault": "speaker"}, 1)
    assert st_.faults == {cluster: "speaker"}


@pytest.mark.parametrize("event_type", ["radio.cluster.fault", "radio.cluster.restored"])
def test_cluster_beyond_the_station_clusters_is_invalid_data(event_type: str) -> None:
    st_ = station(clusters=3)
    data = {"cluster": 4, "fault": "power"} if event_type.endswith("fault") else {"cluster": 4}
    error = rejected(st_, event_type, "ST-1", data, 1)
    assert (error.code, error.pointer) == ("invalid_data", "/data/cluster")
    assert "3 clusters" in error.detail


def test_newer_registration_with_more_clusters_widens_the_range() -> None:
    st_ = station(clusters=2, minute=0)
    apply(
        st_, "radio.station.registered", "ST-1", {"name": "Đài xã", "unit": "U1", "clusters": 6}, 5
    )
    apply(st_, "radio.cluster.fault", "ST-1", {"cluster": 6, "fault": "network"}, 6)
    assert st_.faults == {6: "network"}


def test_older_registration_does_not_change_clusters() -> None:
    st_ = station(clusters=2, minute=10)
    apply(
        st_, "radio.station.registered", "ST-1", {"name": "Đài cũ", "unit": "U1", "clusters": 6}, 5
    )
    assert (st_.clusters, st_.name) == (2, "Đài xã")
    assert rejected(st_, "radio.cluster.fault", "ST-1", {"cluster": 6, "fault": "power"}).code == (
        "invalid_data"
    )


def test_cluster_restore_clears_fault_but_a_late_restore_does_not() -> None:
    st_ = station()
    apply(st_, "radio.cluster.fault", "ST-1", {"cluster": 2, "fault": "power"}, 10)
    apply(st_, "radio.cluster.restored", "ST-1", {"cluster": 2}, 5)  # older than the fault
    assert st_.faults == {2: "power"}
    apply(st_, "radio.cluster.restored", "ST-1", {"cluster": 2}, 15)
    assert st_.faults == {}
    apply(st_, "radio.cluster.fault", "ST-1", {"cluster": 2, "fault": "speaker"}, 12)  # late
    assert st_.faults == {}


def test_restoring_a_cluster_without_known_fault_is_accepted() -> None:
    st_ = station()
    apply(st_, "radio.cluster.restored", "ST-1", {"cluster": 1}, 1)
    assert st_.faults == {}
    assert st_.version == 2


def test_late_station_status_does_not_overwrite_newer() -> None:
    st_ = station()
    apply(st_, "radio.station.status", "ST-1", {"status": "offline"}, 20)
    apply(st_, "radio.station.status", "ST-1", {"status": "online"}, 10)
    assert st_.status == "offline"


# --- dossiers ---------------------------------------------------------------------------


def test_dossier_completed_before_due_is_on_time() -> None:
    dos = dossier(due_at="2026-11-25T17:00:00+07:00")
    apply(
        dos, "dossier.completed", "DOS-1", {"result": "approved"}, time="2026-11-24T10:00:00+07:00"
    )
    event = dos.pending_events[-1]
    assert type(event).__name__ == "Completed"
    assert event.on_time is True
    assert event.result == "approved"
    assert dos.state == "completed"


def test_dossier_completed_exactly_at_due_is_on_time_across_offsets() -> None:
    dos = dossier(due_at="2026-11-25T10:00:00Z")
    apply(
        dos, "dossier.completed", "DOS-1", {"result": "refused"}, time="2026-11-25T17:00:00+07:00"
    )
    assert dos.pending_events[-1].on_time is True


def test_dossier_completed_after_due_is_late() -> None:
    dos = dossier(due_at="2026-11-25T17:00:00+07:00")
    apply(
        dos, "dossier.completed", "DOS-1", {"result": "approved"}, time="2026-11-25T17:00:01+07:00"
    )
    assert dos.pending_events[-1].on_time is False


def test_completing_a_dossier_twice_is_invalid_transition() -> None:
    dos = dossier()
    apply(dos, "dossier.completed", "DOS-1", {"result": "approved"}, 10)
    error = rejected(dos, "dossier.completed", "DOS-1", {"result": "approved"}, 20)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert "completed" in error.detail


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("dossier.completed", "dossier.withdrawn"),
        ("dossier.withdrawn", "dossier.completed"),
        ("dossier.withdrawn", "dossier.withdrawn"),
    ],
)
def test_a_closed_dossier_cannot_close_again(first: str, then: str) -> None:
    dos = dossier()
    data = {"result": "approved"}
    apply(dos, first, "DOS-1", data if first.endswith("completed") else {}, 10)
    error = rejected(dos, then, "DOS-1", data if then.endswith("completed") else {}, 20)
    assert error.code == "invalid_transition"


def test_receiving_a_dossier_again_is_invalid_transition() -> None:
    dos = dossier()
    error = rejected(dos, "dossier.received", "DOS-1", {"due_at": "2026-11-30T00:00:00Z"}, 1)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")


def test_supplement_requests_are_counted_while_open() -> None:
    dos = dossier()
    apply(dos, "dossier.supplement_requested", "DOS-1", {"reason": "thiếu giấy tờ"}, 1)
    apply(dos, "dossier.supplement_requested", "DOS-1", {}, 2)
    assert dos.supplements == 2
    assert dos.state == "open"


def test_late_supplement_request_from_before_closing_is_history() -> None:
    dos = dossier()
    apply(dos, "dossier.completed", "DOS-1", {"result": "approved"}, 30)
    apply(dos, "dossier.supplement_requested", "DOS-1", {}, 10)  # happened before closing
    assert dos.supplements == 1
    assert dos.state == "completed"
    error = rejected(dos, "dossier.supplement_requested", "DOS-1", {}, 40)
    assert error.code == "invalid_transition"


def test_withdrawn_dossier_is_closed() -> None:
    dos = dossier()
    apply(dos, "dossier.withdrawn", "DOS-1", {"reason": "rút"}, 5)
    assert dos.state == "withdrawn"
    assert dos.closed_time is not None


def test_the_service_index_facts_travel_with_reception_and_completion() -> None:
    dos = apply(
        None,
        "dossier.received",
        "DOS-2",
        {
            "procedure_code": "1.0001",
            "level": "partial_online",
            "channel": "counter",
            "agency": "SNV",
            "unit": "U1",
            "due_at": "2026-11-25T17:00:00+07:00",
            "digitised": True,
            "fee": False,
        },
    )
    apply(dos, "dossier.completed", "DOS-2", {"result": "approved", "e_result": True}, 5)
    received, completed = dos.collect_events()
    assert (received.digitised, received.fee) == (True, False)
    assert (completed.e_result, completed.paid_online) == (True, None)
    # a dossier without them (as stored before the fields existed) says None
    plain = dossier()
    apply(plain, "dossier.completed", "DOS-1", {"result": "approved"}, 5)
    received, completed = plain.collect_events()
    assert (received.digitised, received.fee, completed.e_result) == (None, None, None)


def test_a_completed_dossier_is_rated_once() -> None:
    dos = dossier()
    apply(dos, "dossier.completed", "DOS-1", {"result": "approved"}, 10)
    apply(dos, "dossier.rated", "DOS-1", {"rating": "satisfied"}, 20)
    assert dos.rating == "satisfied"
    assert type(dos.pending_events[-1]).__name__ == "Rated"
    error = rejected(dos, "dossier.rated", "DOS-1", {"rating": "dissatisfied"}, 30)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert "already rated" in error.detail
    assert replay(dos).rating == "satisfied"


@pytest.mark.parametrize("closing", [None, "dossier.withdrawn"])
def test_only_a_completed_dossier_is_rated(closing: str | None) -> None:
    dos = dossier()
    if closing is not None:
        apply(dos, closing, "DOS-1", {}, 10)
    error = rejected(dos, "dossier.rated", "DOS-1", {"rating": "very_satisfied"}, 20)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert "only a completed dossier is rated" in error.detail


# --- indicators -------------------------------------------------------------------------


def test_kpi_reports_by_period_and_late_report_does_not_replace() -> None:
    ind = indicator()
    apply(ind, "kpi.reported", "KPI-1", {"period": "2026-Q3", "value": 60}, 20)
    apply(ind, "kpi.reported", "KPI-1", {"period": "2026-Q3", "value": 40}, 10)
    apply(ind, "kpi.reported", "KPI-1", {"period": "2026-Q2", "value": 30}, 5)
    assert ind.values == {"2026-Q3": 60, "2026-Q2": 30}
    apply(ind, "kpi.reported", "KPI-1", {"period": "2026-Q3", "value": 65}, 25)
    assert ind.values["2026-Q3"] == 65


def test_kpi_target_revision_follows_time() -> None:
    ind = indicator()
    apply(ind, "kpi.target_revised", "KPI-1", {"target": 90, "deadline": "2027-12-31"}, 30)
    apply(ind, "kpi.target_revised", "KPI-1", {"target": 70, "deadline": "2027-01-31"}, 20)
    assert (ind.target, ind.deadline) == (90, "2027-12-31")


def test_kpi_redefinition_between_definition_and_revision_keeps_the_revised_target() -> None:
    """A definition at t20 is newer than the definition (t0) but older than the revision (t30)."""
    ind = indicator()
    apply(ind, "kpi.target_revised", "KPI-1", {"target": 90, "deadline": "2027-12-31"}, 30)
    apply(
        ind,
        "kpi.defined",
        "KPI-1",
        {
            "name": "Online share",
            "measure": "%",
            "owner": "STTTT",
            "pillar": "digital_government",
            "direction": "decrease",
            "target": 85,
            "deadline": "2027-06-30",
        },
        20,
    )
    assert (ind.owner, ind.direction) == ("STTTT", "decrease")
    assert (ind.target, ind.deadline) == (90, "2027-12-31")


# --- citizens' field reports -----------------------------------------------------------


def test_a_received_report_is_new_and_unassigned() -> None:
    rep = report(5)
    assert (rep.state, rep.agency, rep.due_at, rep.rating) == (NEW, None, None, None)
    assert rep.received_time.isoformat() == "2026-11-22T09:05:00+07:00"


def test_receiving_a_report_again_is_invalid_transition() -> None:
    rep = report()
    error = rejected(rep, "report.received", "PA-1", {})
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert "already received" in error.detail


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("report.assigned", {"agency": "SNV", "due_at": due(600)}),
        ("report.reassigned", {"agency": "SNV", "due_at": due(600)}),
        ("report.resolved", {"result": "xong"}),
        ("report.rejected", {"reason": "ngoài phạm vi"}),
    ],
)
def test_nothing_happens_to_a_report_before_its_reception(
    event_type: str, data: dict[str, Any]
) -> None:
    rep = report(30)
    error = rejected(rep, event_type, "PA-1", data, 29)
    assert (error.code, error.pointer) == ("invalid_transition", "/time")
    assert "received at 2026-11-22T09:30:00+07:00" in error.detail


def test_an_assignment_gives_the_agency_and_the_due_time_once() -> None:
    rep = report()
    apply(rep, "report.assigned", "PA-1", {"agency": "SNV", "due_at": due(120)}, 10)
    assert (rep.state, rep.agency, rep.due_at.isoformat()) == (ASSIGNED, "SNV", due(120))
    error = rejected(rep, "report.assigned", "PA-1", {"agency": "STP", "due_at": due(180)}, 20)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert "report.reassigned" in error.detail
    assert rep.agency == "SNV"


def test_the_latest_assignment_by_time_is_in_effect_a_late_one_is_history() -> None:
    rep = report()
    apply(rep, "report.assigned", "PA-1", {"agency": "SNV", "due_at": due(120)}, 10)
    apply(rep, "report.reassigned", "PA-1", {"agency": "U1", "due_at": due(240)}, 30)
    assert (rep.agency, rep.due_at.isoformat()) == ("U1", due(240))
    # an older reassignment arrives late: recorded, changes nothing
    version = rep.version
    apply(rep, "report.reassigned", "PA-1", {"agency": "STP", "due_at": due(60)}, 20)
    assert rep.version == version + 1
    assert (rep.agency, rep.due_at.isoformat()) == ("U1", due(240))
    # the same time as the one in effect: the later one wins
    apply(rep, "report.reassigned", "PA-1", {"agency": "STP", "due_at": due(300)}, 30)
    assert (rep.agency, rep.due_at.isoformat()) == ("STP", due(300))


def test_a_reassignment_that_arrives_before_the_assignment_is_kept_in_effect() -> None:
    rep = report()
    apply(rep, "report.reassigned", "PA-1", {"agency": "U1", "due_at": due(240)}, 30)
    assert (rep.state, rep.agency) == (ASSIGNED, "U1")
    apply(rep, "report.assigned", "PA-1", {"agency": "SNV", "due_at": due(120)}, 10)
    assert (rep.agency, rep.due_at.isoformat()) == ("U1", due(240))


@pytest.mark.parametrize(
    ("resolved_at", "on_time"),
    [
        ("2026-11-22T10:59:00+07:00", True),
        ("2026-11-22T11:00:00+07:00", True),
        ("2026-11-22T04:00:00Z", True),  # the due time itself, in UTC
        ("2026-11-22T11:00:01+07:00", False),
    ],
)
def test_a_report_resolved_by_its_due_time_is_on_time(resolved_at: str, on_time: bool) -> None:
    rep = report()
    apply(rep, "report.assigned", "PA-1", {"agency": "SNV", "due_at": due(120)}, 10)
    apply(rep, "report.resolved", "PA-1", {"result": "đã xử lý"}, time=resolved_at)
    assert rep.state == RESOLVED
    assert rep.pending_events[-1].on_time is on_time


def test_the_due_time_in_effect_judges_the_resolution() -> None:
    rep = report()
    apply(rep, "report.assigned", "PA-1", {"agency": "SNV", "due_at": due(60)}, 10)
    apply(rep, "report.reassigned", "PA-1", {"agency": "U1", "due_at": due(240)}, 50)
    apply(rep, "report.resolved", "PA-1", {"result": "đã xử lý"}, 200)
    assert rep.pending_events[-1].on_time is True


def test_a_report_resolved_without_an_assignment_is_on_time() -> None:
    rep = report()
    apply(rep, "report.resolved", "PA-1", {"result": "trả lời trực tiếp"}, 600)
    assert rep.state == RESOLVED
    assert rep.pending_events[-1].on_time is True


CLOSED_THEN = [
    ("report.assigned", {"agency": "SNV", "due_at": due(600)}),
    ("report.reassigned", {"agency": "SNV", "due_at": due(600)}),
    ("report.resolved", {"result": "xong"}),
    ("report.rejected", {"reason": "ngoài phạm vi"}),
]


@pytest.mark.parametrize("closing", ["report.resolved", "report.rejected"])
@pytest.mark.parametrize(("event_type", "data"), CLOSED_THEN)
def test_nothing_but_a_rating_after_resolution_or_rejection(
    closing: str, event_type: str, data: dict[str, Any]
) -> None:
    rep = report()
    closed = {"result": "xong"} if closing == "report.resolved" else {"reason": "trùng"}
    apply(rep, closing, "PA-1", closed, 10)
    state = rep.state
    for minute in (5, 20):  # before the closing (a late event) and after it
        error = rejected(rep, event_type, "PA-1", data, minute)
        assert (error.code, error.pointer) == ("invalid_transition", "/type")
        assert f"already {state}" in error.detail


def test_a_resolved_report_is_rated_once() -> None:
    rep = report()
    apply(rep, "report.resolved", "PA-1", {"result": "xong"}, 10)
    apply(rep, "report.rated", "PA-1", {"rating": "dissatisfied"}, 40)
    assert rep.rating == "dissatisfied"
    error = rejected(rep, "report.rated", "PA-1", {"rating": "satisfied"}, 50)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert "already rated" in error.detail
    assert rep.rating == "dissatisfied"


def test_a_rating_before_the_resolution_is_invalid_transition() -> None:
    rep = report()
    apply(rep, "report.resolved", "PA-1", {"result": "xong"}, 10)
    error = rejected(rep, "report.rated", "PA-1", {"rating": "satisfied"}, 9)
    assert (error.code, error.pointer) == ("invalid_transition", "/time")


@pytest.mark.parametrize(
    ("before", "detail"),
    [
        ([], "is not resolved yet"),
        ([("report.assigned", {"agency": "SNV", "due_at": due(60)})], "is not resolved yet"),
        ([("report.rejected", {"reason": "trùng"})], "was rejected"),
    ],
)
def test_only_a_resolved_report_may_be_rated(
    before: list[tuple[str, dict[str, Any]]], detail: str
) -> None:
    rep = report()
    for event_type, data in before:
        apply(rep, event_type, "PA-1", data, 10)
    error = rejected(rep, "report.rated", "PA-1", {"rating": "satisfied"}, 20)
    assert (error.code, error.pointer) == ("invalid_transition", "/type")
    assert detail in error.detail


def test_a_report_rejected_as_a_duplicate_names_the_other_but_not_itself() -> None:
    rep = report()
    error = rejected(rep, "report.rejected", "PA-1", {"reason": "trùng", "duplicate_of": "PA-1"})
    assert (error.code, error.pointer) == ("invalid_data", "/data/duplicate_of")
    apply(rep, "report.rejected", "PA-1", {"reason": "trùng", "duplicate_of": "PA-0"}, 3)
    assert rep.state == REJECTED
    assert rep.pending_events[-1].duplicate_of == "PA-0"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.sampled_from(["SNV", "STP", "U1"])),
        min_size=1,
        max_size=8,
    )
)
def test_the_assignment_in_effect_is_the_latest_by_time_whatever_the_arrival_order(
    assignments: Sequence[tuple[int, str]],
) -> None:
    rep = report()
    for i, (minute, agency) in enumerate(assignments):
        kind = "report.assigned" if i == 0 else "report.reassigned"
        apply(rep, kind, "PA-1", {"agency": agency, "due_at": due(minute + 60)}, minute)
    latest = max(minute for minute, _ in assignments)
    expected = [agency for minute, agency in assignments if minute == latest][-1]
    assert rep.agency == expected
    assert rep.due_at is not None
    assert rep.due_at.isoformat() == due(latest + 60)


# --- replay -----------------------------------------------------------------------------


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    """What decide computed is what the repository rebuilds from the stored events."""
    dos = dossier(due_at="2026-11-22T09:30:00+07:00")
    apply(dos, "dossier.supplement_requested", "DOS-1", {}, 10)
    apply(dos, "dossier.completed", "DOS-1", {"result": "approved"}, 45)
    st_ = station()
    apply(st_, "radio.station.status", "ST-1", {"status": "online"}, 10)
    apply(st_, "radio.station.status", "ST-1", {"status": "offline"}, 5)
    apply(
        st_,
        "radio.broadcast.started",
        "ST-1",
        {"broadcast_id": "B", "program": "Tin", "kind": "normal"},
        11,
    )
    apply(st_, "radio.cluster.fault", "ST-1", {"cluster": 3, "fault": "power"}, 12)
    rep = report()
    apply(rep, "report.assigned", "PA-1", {"agency": "SNV", "due_at": due(60)}, 10)
    apply(rep, "report.reassigned", "PA-1", {"agency": "U1", "due_at": due(30)}, 5)
    apply(rep, "report.resolved", "PA-1", {"result": "xong"}, 50)
    apply(rep, "report.rated", "PA-1", {"rating": "satisfied"}, 55)
    for aggregate in (dos, st_, rep):
        expected = {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}
        rebuilt = replay(aggregate)
        assert {k: v for k, v in vars(rebuilt).items() if k != "_pending_events"} == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.sampled_from(["online", "offline", "degraded"])),
        min_size=1,
        max_size=12,
    )
)
def test_camera_status_is_the_latest_by_time_whatever_the_arrival_order(
    reports: Sequence[tuple[int, str]],
) -> None:
    cam = camera()
    for minute, status in reports:
        apply(cam, "camera.status", "CAM-1", {"status": status}, minute)
    latest = max(minute for minute, _ in reports)
    # Among reports at the latest time, the last to arrive wins.
    expected = [status for minute, status in reports if minute == latest][-1]
    assert cam.status == expected
    assert cam.version == 1 + len(reports)
