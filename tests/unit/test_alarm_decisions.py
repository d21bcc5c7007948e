"""The alarm aggregate and the rule decisions, without any I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

import pytest

from ops_center.alarms.rules.book import Clear, Raise, Repeat, RuleBook, decide
from ops_center.alarms.rules.facts import fold
from ops_center.alarms.rules.observe import Observation, observe
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain.alarm import Alarm, AlarmConflict, alarm_id
from ops_center.province.calendar import TZ

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)
THRESHOLDS = Thresholds(
    offline_grace=timedelta(minutes=5),
    alert_hold=timedelta(minutes=30),
    dossier_grace=timedelta(minutes=10),
)
NS = UUID("00000000-0000-0000-0000-000000000001")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def raised(occurrence: int = 1) -> Alarm:
    return Alarm(
        cause="cluster_fault",
        subject_kind="radio",
        subject="ST-1",
        occurrence=occurrence,
        unit="MS-D01-C01",
        severity="warning",
        summary="faulty",
        detail={"clusters": [{"cluster": 1, "fault": "power"}]},
        at=at(0).isoformat(),
    )


# -- the aggregate ------------------------------------------------------------------------


def test_alarm_moves_active_acknowledged_resolved_and_keeps_who_did_it() -> None:
    alarm = raised()
    assert alarm.id == alarm_id("cluster_fault", "radio", "ST-1", 1)
    assert alarm.state == "active"
    alarm.repeat("MS-D01-C01", "warning", "still faulty", {"clusters": []}, at(1).isoformat())
    alarm.acknowledge("op-1", "on it", at(2).isoformat())
    alarm.resolve("admin-1", None, at(3).isoformat())
    events = alarm.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Raised",
        "Repeated",
        "Acknowledged",
        "Resolved",
    ]
    assert (events[2].by, events[2].note) == ("op-1", "on it")  # type: ignore[attr-defined]
    assert (alarm.state, alarm.repeats, alarm.resolved_by) == ("resolved", 1, "admin-1")


def test_alarm_refuses_what_its_state_does_not_allow() -> None:
    alarm = raised()
    alarm.acknowledge("op-1", None, at(1).isoformat())
    with pytest.raises(AlarmConflict, match="already acknowledged by 'op-1'"):
        alarm.acknowledge("op-2", None, at(2).isoformat())
    alarm.resolve("rules", None, at(3).isoformat(), automatic=True)
    for act in (
        lambda: alarm.resolve("op-1", None, at(4).isoformat()),
        lambda: alarm.acknowledge("op-1", None, at(4).isoformat()),
        lambda: alarm.repeat(None, "warning", "", {}, at(4).isoformat()),
    ):
        with pytest.raises(AlarmConflict, match="already resolved") as refused:
            act()
        assert refused.value.state == "resolved"
    assert len(alarm.collect_events()) == 3


def test_each_occurrence_has_its_own_stable_id() -> None:
    assert raised(1).id == raised(1).id
    assert raised(1).id != raised(2).id
    assert alarm_id("dossier_overdue", "dossier", "D-1", 1) != alarm_id(
        "dossier_overdue", "dossier", "D-2", 1
    )


# -- decisions --------------------------------------------------------------------------------


def obs(present: bool, detail: dict[str, Any] | None = None, **kw: Any) -> Observation:
    return Observation(present, "U", "warning", "s" if present else "", detail or {}, **kw)


def decide_(prev: Any, observation: Observation, alarm_open: bool) -> tuple[Any, Any]:
    return decide(
        prev,
        observation,
        alarm_open,
        at(10),
        subject_id=NS,
        cause="cluster_fault",
        subject_kind="radio",
        subject="ST-1",
    )


def test_decide_raises_repeats_and_clears() -> None:
    record, action = decide_(None, obs(True, {"a": 1}, since=at(1)), alarm_open=False)
    assert isinstance(action, Raise)
    assert (record.occurrence, record.alarm_id) == (
        1,
        alarm_id("cluster_fault", "radio", "ST-1", 1),
    )
    same, nothing = decide_(record, obs(True, {"a": 1}, since=at(1)), alarm_open=True)
    assert nothing is None
    assert same == record
    changed, repeat = decide_(record, obs(True, {"a": 2}, since=at(1)), alarm_open=True)
    assert isinstance(repeat, Repeat)
    assert changed.occurrence == 1
    cleared, clear = decide_(changed, obs(False), alarm_open=True)
    assert clear == Clear(at(10))
    assert not cleared.present
    again, second = decide_(cleared, obs(True, {"a": 2}, since=at(11)), alarm_open=False)
    assert isinstance(second, Raise)
    assert (again.occurrence, second.occurrence) == (2, 2)


def test_decide_gives_back_the_same_record_when_nothing_changed() -> None:
    """A heartbeat repeating what is known builds nothing (the record is not saved again);
    any change of what the record holds builds a new one."""
    record, _ = decide_(None, obs(True, {"a": 1}, since=at(1)), alarm_open=False)
    same, nothing = decide_(record, obs(True, {"a": 1}, since=at(1)), alarm_open=True)
    assert same is record
    assert nothing is None
    later, nothing = decide_(record, obs(True, {"a": 1}, since=at(2)), alarm_open=True)
    assert later is not record
    assert later.since == at(2)
    assert nothing is None
    pending, _ = decide_(None, obs(False, starts_at=at(15)), alarm_open=False)
    assert decide_(pending, obs(False, starts_at=at(15)), alarm_open=False)[0] is pending
    moved, _ = decide_(pending, obs(False, starts_at=at(16)), alarm_open=False)
    assert moved.starts_at == at(16)


def test_decide_after_a_manual_resolution_waits_for_a_change_of_the_cause() -> None:
    record, _ = decide_(None, obs(True, {"a": 1}, since=at(1)), alarm_open=False)
    kept, nothing = decide_(record, obs(True, {"a": 1}, since=at(1)), alarm_open=False)
    assert nothing is None
    assert kept.occurrence == 1
    _, new = decide_(kept, obs(True, {"a": 3}, since=at(1)), alarm_open=False)
    assert isinstance(new, Raise)


def test_decide_keeps_a_pending_start() -> None:
    record, action = decide_(None, obs(False, starts_at=at(15)), alarm_open=False)
    assert action is None
    assert record.starts_at == at(15)


# -- the rule book ------------------------------------------------------------------------------


def camera(code: str = "CAM-1") -> dict[str, Any]:
    return {"code": code, "name": "Gate", "unit": "U1", "kind": "security"}


def book() -> RuleBook:
    return RuleBook(THRESHOLDS, lambda owner: "U-" + owner, {}, {}, {})


def cam_id(code: str = "CAM-1") -> UUID:
    return uuid5(NS, code)


def test_offline_camera_raises_once_its_grace_period_ran_out() -> None:
    rules = book()
    rules.on_event(cam_id(), "Camera.Registered", camera(), at(0), at(0))
    rules.on_event(cam_id(), "Camera.StatusReported", {"status": "offline"}, at(1), at(2))
    assert rules.touched == {}
    rules.on_clock(cam_id(), at(5.9))
    assert rules.touched == {}
    rules.on_clock(cam_id(), at(6))
    (alarm,) = rules.touched.values()
    assert (alarm.cause, alarm.raised_at, alarm.severity) == (
        "device_offline",
        at(6).isoformat(),
        "warning",
    )
    rules.on_event(cam_id(), "Camera.StatusReported", {"status": "online"}, at(8), at(8))
    assert alarm.state == "resolved"
    assert alarm.resolved_by == "rules"


def test_a_late_event_never_moves_a_subject_back_in_time() -> None:
    rules = book()
    rules.on_event(cam_id(), "Camera.Registered", camera(), at(0), at(0))
    rules.on_event(cam_id(), "Camera.StatusReported", {"status": "offline"}, at(1), at(1))
    rules.on_clock(cam_id(), at(10))
    (alarm,) = rules.touched.values()
    late = {"alert_id": "x", "category": "fire", "severity": "warning"}
    rules.on_event(cam_id(), "Camera.AlertRaised", late, at(-30), at(11))
    rules.on_event(cam_id(), "Camera.StatusReported", {"status": "online"}, at(-20), at(11))
    assert alarm.state == "active"  # the older status is history only


def test_dossier_due_time_is_seen_at_the_next_events_time_during_a_catch_up() -> None:
    rules = book()
    dossier = uuid5(NS, "D-1")
    received = {
        "code": "D-1",
        "procedure_code": "P",
        "procedure_name": None,
        "level": "full_online",
        "channel": "online",
        "agency": "A",
        "unit": "U1",
        "due_at": at(60).isoformat(),
    }
    rules.on_event(dossier, "Dossier.Received", received, at(0), at(500))
    rules.on_event(dossier, "Dossier.Completed", {"result": "approved"}, at(65), at(500))
    assert rules.touched == {}  # 60 + 10 minutes of grace had not run out at 65
    rules.on_event(
        uuid5(NS, "D-2"), "Dossier.Received", {**received, "code": "D-2"}, at(0), at(500)
    )
    rules.on_event(uuid5(NS, "D-2"), "Dossier.Completed", {"result": "approved"}, at(90), at(500))
    (alarm,) = rules.touched.values()
    assert (alarm.subject, alarm.raised_at, alarm.state) == ("D-2", at(70).isoformat(), "resolved")


def test_kpi_owner_gives_the_alarm_its_unit_and_met_clears() -> None:
    rules = book()
    kpi = uuid5(NS, "K-1")
    defined = {
        "code": "K-1",
        "name": "Online share",
        "measure": "%",
        "owner": "STTTT",
        "pillar": "digital_government",
        "direction": "increase",
        "target": 80,
        "deadline": "2026-12-31",
        "reference": None,
    }
    rules.on_event(kpi, "Indicator.Defined", defined, at(0), at(0))
    rules.on_event(kpi, "Indicator.Reported", {"period": "2026-01", "value": 40}, at(1), at(1))
    assert rules.touched == {}  # a single report: on track
    rules.on_event(kpi, "Indicator.Reported", {"period": "2026-06", "value": 41}, at(2), at(2))
    (alarm,) = rules.touched.values()
    assert (alarm.cause, alarm.unit) == ("kpi_off_track", "U-STTTT")
    rules.on_event(kpi, "Indicator.Reported", {"period": "2026-10", "value": 80}, at(3), at(3))
    assert alarm.state == "resolved"


def test_observe_names_each_cause_and_refuses_an_unknown_one() -> None:
    facts = fold(None, "RadioStation.Registered", {**camera("ST-1"), "clusters": 4}, at(0))
    assert facts is not None
    facts = fold(facts, "RadioStation.ClusterFaulted", {"cluster": 3, "fault": "power"}, at(1))
    assert facts is not None
    seen = observe("cluster_fault", facts, at(2), THRESHOLDS, lambda _: None)
    assert seen.present
    assert seen.since == at(1)
    assert seen.summary == "Radio station ST-1 (Gate): loudspeaker cluster 3 (power) faulty"
    with pytest.raises(ValueError, match="unknown cause"):
        observe("boredom", facts, at(2), THRESHOLDS, lambda _: None)


def test_thresholds_and_the_switch_are_settings() -> None:
    from ops_center.pipeline.assembly import thresholds
    from ops_center.settings import Settings

    settings = Settings.from_env(
        {
            "OPS_CENTER_ALARM_RULES": "false",
            "OPS_CENTER_ALARM_OFFLINE_GRACE_SECONDS": "60",
            "OPS_CENTER_ALARM_ALERT_HOLD_SECONDS": "90",
        }
    )
    assert settings.alarm_rules is False
    assert Settings().alarm_rules is True
    assert thresholds(settings) == Thresholds(
        offline_grace=timedelta(seconds=60),
        alert_hold=timedelta(seconds=90),
        dossier_grace=timedelta(0),
    )
    assert thresholds(Settings()) == Thresholds()


# -- facts ----------------------------------------------------------------------------------


def _meta(minutes: float) -> Any:
    return {
        "source": "urn:test",
        "id": f"e-{minutes}",
        "time": at(minutes).isoformat(),
        "received_at": at(minutes).isoformat(),
        "key": "test",
    }


def test_a_repeated_registration_updates_the_facts_without_a_code() -> None:
    """A camera registered again (newer time) keeps its code and takes the new name and
    unit; the stored event carries no code (this once stopped the rules in a loop)."""
    from ops_center.domain import Camera

    camera = Camera(
        code="CAM-9", name="Cổng chợ", unit="MS-D01-C01", kind="security", lat=None, lon=None,
        meta=_meta(0),
    )  # fmt: skip
    camera.register_again("Cổng chợ mới", "MS-D01-C02", "traffic", None, None, _meta(5))
    created, again = camera.collect_events()
    state = {k: v for k, v in again.__dict__.items() if not k.startswith("originator")}
    assert "code" not in state
    facts = fold(None, "Camera.Registered", dict(created.__dict__), at(0))
    assert facts is not None
    after = fold(facts, "Camera.Reregistered", state, at(5))
    assert after is not None
    assert (after["code"], after["name"], after["unit"]) == ("CAM-9", "Cổng chợ mới", "MS-D01-C02")
    older = fold(after, "Camera.Reregistered", {**state, "name": "cũ"}, at(1))
    assert older is not None
    assert older["name"] == "Cổng chợ mới"


# -- citizens' field reports ------------------------------------------------------------------

REPORT = uuid5(NS, "PA-1")
RECEIVED = {
    "code": "PA-1",
    "category": "environment",
    "title": "Cống bị tắc",
    "description": None,
    "unit": "MS-D01-C01",
    "channel": "app",
    "lat": None,
    "lon": None,
    "photo_url": None,
}


def assigned(due_minutes: float, agency: str = "SXD") -> dict[str, Any]:
    return {"agency": agency, "due_at": at(due_minutes).isoformat()}


def test_an_assigned_report_raises_by_the_clock_alone_when_its_due_time_passes() -> None:
    rules = book()
    rules.on_event(REPORT, "Report.Received", RECEIVED, at(0), at(0))
    rules.on_clock(REPORT, at(500))
    assert rules.touched == {}  # not assigned: no due time
    rules.on_event(REPORT, "Report.Assigned", assigned(60), at(1), at(1))
    rules.on_clock(REPORT, at(59.9))
    assert rules.touched == {}
    rules.on_clock(REPORT, at(60))  # no event: the clock alone
    (alarm,) = rules.touched.values()
    assert (alarm.cause, alarm.subject_kind, alarm.subject, alarm.unit) == (
        "report_overdue",
        "report",
        "PA-1",
        "MS-D01-C01",
    )
    assert (alarm.raised_at, alarm.severity, alarm.state) == (
        at(60).isoformat(),
        "warning",
        "active",
    )
    assert alarm.summary == "Report PA-1 (Cống bị tắc) is past its due time"
    assert alarm.detail == {
        "due_at": at(60).isoformat(),
        "agency": "SXD",
        "category": "environment",
    }
    # still overdue later: nothing new
    rules.on_clock(REPORT, at(90))
    assert alarm.repeats == 0
    # resolved (late): the alarm resolves by itself, at the resolution's time
    rules.on_event(REPORT, "Report.Resolved", {"result": "xong", "on_time": False}, at(95), at(96))
    assert (alarm.state, alarm.resolved_by) == ("resolved", "rules")
    assert rules.facts[REPORT]["open"] is False


def test_a_rejected_report_resolves_its_overdue_alarm() -> None:
    rules = book()
    rules.on_event(REPORT, "Report.Received", RECEIVED, at(0), at(0))
    rules.on_event(REPORT, "Report.Assigned", assigned(10), at(1), at(20))
    assert rules.touched == {}  # judged at the event's time
    rules.on_clock(REPORT, at(20))  # then at the clock, as the engine does after the events
    (alarm,) = rules.touched.values()
    assert alarm.raised_at == at(10).isoformat()  # at its due time, though seen later
    rules.on_event(
        REPORT, "Report.Rejected", {"reason": "trùng", "duplicate_of": None}, at(30), at(30)
    )
    assert alarm.state == "resolved"


def test_a_reassignment_moves_the_due_time_and_a_late_one_changes_nothing() -> None:
    rules = book()
    rules.on_event(REPORT, "Report.Received", RECEIVED, at(0), at(0))
    rules.on_event(REPORT, "Report.Assigned", assigned(60), at(1), at(1))
    rules.on_event(
        REPORT, "Report.Reassigned", {**assigned(240, "U1"), "reason": None}, at(30), at(30)
    )
    rules.on_clock(REPORT, at(100))
    assert rules.touched == {}  # the due time in effect is 240
    # an older reassignment arriving late keeps the due time in effect
    rules.on_event(REPORT, "Report.Reassigned", {**assigned(61), "reason": None}, at(20), at(101))
    assert rules.touched == {}
    assert rules.facts[REPORT]["agency"] == "U1"
    rules.on_clock(REPORT, at(240))
    (alarm,) = rules.touched.values()
    assert (alarm.raised_at, alarm.detail["agency"]) == (at(240).isoformat(), "U1")
    # reassigned with a later due time: no longer overdue, the alarm clears by itself
    rules.on_event(
        REPORT, "Report.Reassigned", {**assigned(900, "SXD"), "reason": None}, at(250), at(250)
    )
    assert alarm.state == "resolved"
    # and it raises again (a new occurrence) when that one passes
    rules.on_clock(REPORT, at(900))
    second = [a for a in rules.touched.values() if a.id != alarm.id]
    assert [(a.occurrence, a.raised_at) for a in second] == [(2, at(900).isoformat())]


def test_a_report_resolved_in_time_never_raises() -> None:
    rules = book()
    rules.on_event(REPORT, "Report.Received", RECEIVED, at(0), at(0))
    rules.on_event(REPORT, "Report.Assigned", assigned(60), at(1), at(1))
    rules.on_event(REPORT, "Report.Resolved", {"result": "xong", "on_time": True}, at(59), at(59))
    rules.on_clock(REPORT, at(600))
    assert rules.touched == {}
