"""The alarm rules against a real PostgreSQL: each rule raises and clears, repeats never
duplicate, the clock alone raises, and a runner restarted mid-way raises nothing twice.

One database for the module; every test empties the log and the rules' tables first.
Events are recorded with `OpsCenter.ingest` and the rules are driven by
`RulesEngine.step(clock)` with a clock the test moves (or by a real `Follower` task).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from ops_center.alarms.engine import AlarmDesk, RulesEngine, RulesMoved, UnknownAlarm
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain import subject_id
from ops_center.domain.alarm import AlarmConflict
from ops_center.pipeline.follower import Follower
from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.tools.testing import Events, submissions
from projections.alarms import AlarmsProjection
from projections.projection import ensure_schema, step

PROFILE = load_profile()
UNIT = "MS-D01-C01"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)
THRESHOLDS = Thresholds(
    offline_grace=timedelta(minutes=5),
    alert_hold=timedelta(minutes=30),
    dossier_grace=timedelta(0),
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def module_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture(scope="module")
def stores(module_url: str) -> Iterator[tuple[OpsCenter, AlarmDesk]]:
    store = OpsCenter(module_url)
    desk = AlarmDesk(module_url)
    try:
        yield store, desk
    finally:
        desk.close()
        store.close()


@pytest.fixture
def world(module_url: str, stores: tuple[OpsCenter, AlarmDesk]) -> Iterator[World]:
    store, desk = stores
    with psycopg.connect(module_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE ops_events, ingest_receipts, alarm_rule_subjects, alarm_rule_causes "
            "RESTART IDENTITY"
        )
        conn.execute("UPDATE alarm_rules_position SET position = 0, revision = 0")
    store.forget()
    return World(module_url, store, desk)


class World:
    """The stores, the rules and helpers to ingest and look at alarms."""

    def __init__(self, url: str, store: OpsCenter, desk: AlarmDesk) -> None:
        self.url = url
        self.store = store
        self.desk = desk
        self.ev = Events(prefix=f"e{secrets.token_hex(3)}")
        self.engine = RulesEngine(desk, THRESHOLDS, PROFILE.unit_of)

    def ingest(self, *raws: dict[str, Any]) -> int:
        outcomes = self.store.ingest(submissions(raws, PROFILE))
        assert all(o.status == "accepted" for o in outcomes), outcomes
        return max(o.position or 0 for o in outcomes)

    def run(self, clock: datetime, engine: RulesEngine | None = None) -> int:
        """Step the rules until caught up; the alarm events written."""
        engine = engine or self.engine
        written = 0
        while True:
            result = engine.step(clock)
            written += result.alarm_events
            if result.caught_up:
                return written

    def alarm_events(self) -> list[tuple[Any, str, dict[str, Any]]]:
        """Every stored alarm event: (alarm id, event name, state), in log order."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT originator_id, topic, convert_from(state, 'UTF8')::jsonb "
                "FROM ops_events WHERE topic LIKE 'ops_center.domain.alarm:%' "
                "ORDER BY notification_id"
            ).fetchall()
        return [(r[0], r[1].rpartition(".")[2], r[2]) for r in rows]

    def alarms(self, cause: str | None = None) -> list[Any]:
        """The alarms (aggregates), in the order they were raised."""
        ids = [a for a, name, state in self.alarm_events() if name == "Raised"]
        loaded = self.desk.load_alarms(ids)
        found = [loaded[i] for i in ids]
        return [a for a in found if cause is None or a.cause == cause]


def test_device_offline_raises_after_the_grace_period_by_the_clock_and_clears(
    world: World,
) -> None:
    world.ingest(
        world.ev.camera("CAM-1", UNIT, at(0)), world.ev.camera_status("CAM-1", "offline", at(1))
    )
    assert world.run(at(3)) == 0  # within the grace period
    assert world.run(at(7)) == 1  # no new event: the clock raises it
    (alarm,) = world.alarms("device_offline")
    assert (alarm.state, alarm.subject, alarm.unit, alarm.severity) == (
        "active",
        "CAM-1",
        UNIT,
        "warning",
    )
    assert alarm.raised_at == at(6).isoformat()  # offline since 1 + 5 minutes of grace
    world.ingest(world.ev.camera_status("CAM-1", "online", at(9)))
    world.run(at(10))
    (alarm,) = world.alarms("device_offline")
    assert alarm.state == "resolved"
    assert alarm.resolved_by == "rules"


def test_a_short_outage_raises_nothing(world: World) -> None:
    world.ingest(
        world.ev.station("ST-1", UNIT, at(0)),
        world.ev.station_status("ST-1", "offline", at(1)),
        world.ev.station_status("ST-1", "online", at(3)),
    )
    assert world.run(at(30)) == 0
    assert world.alarms() == []


def test_station_offline_cluster_fault_and_emergency_broadcast_raise_and_clear(
    world: World,
) -> None:
    ev = world.ev
    world.ingest(
        ev.station("ST-2", UNIT, at(0)),
        ev.station_status("ST-2", "offline", at(1)),
        ev.fault("ST-2", 2, at(2), "speaker"),
        ev.broadcast("ST-2", "B-normal", at(3)),
        ev.broadcast("ST-2", "B-sos", at(4), kind="emergency"),
    )
    world.run(at(10))
    causes = {a.cause: a for a in world.alarms()}
    assert set(causes) == {"device_offline", "cluster_fault", "emergency_broadcast"}
    assert causes["emergency_broadcast"].severity == "critical"
    assert causes["emergency_broadcast"].detail == {
        "broadcasts": [{"broadcast_id": "B-sos", "program": "Program B-sos"}]
    }
    assert causes["cluster_fault"].detail == {"clusters": [{"cluster": 2, "fault": "speaker"}]}
    world.ingest(
        ev.station_status("ST-2", "online", at(11)),
        ev.restored("ST-2", 2, at(12)),
        ev.broadcast_end("ST-2", "B-sos", at(13)),
    )
    world.run(at(14))
    assert {a.cause: a.state for a in world.alarms()} == dict.fromkeys(causes, "resolved")


def test_critical_camera_alert_raises_repeats_and_clears_after_its_hold(world: World) -> None:
    ev = world.ev
    world.ingest(
        ev.camera("CAM-2", UNIT, at(0)),
        ev.camera_alert("CAM-2", "a-1", at(1), severity="warning"),
        ev.camera_alert("CAM-2", "a-2", at(2), severity="critical"),
        ev.camera_alert("CAM-2", "a-3", at(3), severity="critical"),
    )
    world.run(at(4))
    (alarm,) = world.alarms("camera_alert")
    assert (alarm.state, alarm.repeats, alarm.detail["alert_id"]) == ("active", 1, "a-3")
    world.run(at(20))
    assert world.alarms("camera_alert")[0].state == "active"
    world.run(at(34))  # 30 minutes after the latest critical alert
    (alarm,) = world.alarms("camera_alert")
    assert alarm.state == "resolved"
    names = [name for a, name, _ in world.alarm_events() if a == alarm.id]
    assert names == ["Raised", "Repeated", "Resolved"]
    assert world.alarm_events()[-1][2]["at"] == at(33).isoformat()


def test_dossier_overdue_is_raised_by_the_clock_alone_and_clears_when_completed(
    world: World,
) -> None:
    world.ingest(world.ev.dossier("D-1", at(0), at(60), unit=UNIT))
    assert world.run(at(59)) == 0
    head = world.engine.position()[0]
    assert world.run(at(61)) == 1  # no event since
    assert world.engine.position()[0] == head
    (alarm,) = world.alarms("dossier_overdue")
    assert (alarm.state, alarm.raised_at) == ("active", at(60).isoformat())
    world.ingest(world.ev.completed("D-1", at(90)))
    world.run(at(91))
    assert world.alarms("dossier_overdue")[0].state == "resolved"


def test_a_dossier_completed_late_during_a_catch_up_still_had_its_alarm(world: World) -> None:
    """Evaluated at each event's time: the due time passed before the completion."""
    world.ingest(
        world.ev.dossier("D-2", at(0), at(60), unit=UNIT), world.ev.completed("D-2", at(90))
    )
    world.run(at(200))
    (alarm,) = world.alarms("dossier_overdue")
    assert alarm.state == "resolved"
    assert alarm.raised_at == at(60).isoformat()


def test_kpi_off_track_raises_and_clears_when_back_on_track(world: World) -> None:
    ev = world.ev
    world.ingest(
        ev.kpi("KPI-1", at(0), target=80, deadline="2027-12-31"),
        ev.report("KPI-1", "2026-01", 50, at(1)),
        ev.report("KPI-1", "2026-06", 51, at(2)),  # far too slow to reach 80 in time
    )
    world.run(at(3))
    (alarm,) = world.alarms("kpi_off_track")
    assert (alarm.state, alarm.severity, alarm.unit) == ("active", "info", "MS")
    world.ingest(ev.report("KPI-1", "2026-10", 81, at(4)))
    world.run(at(5))
    assert world.alarms("kpi_off_track")[0].state == "resolved"


def test_repeated_causes_never_duplicate_and_a_new_occurrence_is_a_new_alarm(
    world: World,
) -> None:
    ev = world.ev
    world.ingest(ev.camera("CAM-3", UNIT, at(0)), ev.camera_status("CAM-3", "offline", at(1)))
    world.run(at(10))
    world.ingest(*(ev.camera_status("CAM-3", "offline", at(10 + i)) for i in range(5)))
    world.run(at(20))
    (first,) = world.alarms()
    assert first.repeats == 0  # heartbeats repeating the same status change nothing
    world.ingest(ev.camera_status("CAM-3", "degraded", at(21)))
    world.run(at(22))
    (first,) = world.alarms()
    assert (first.repeats, first.severity) == (1, "info")
    world.desk.act(first.id, "resolve", "op-1", "checked on site", at(23))
    world.ingest(ev.camera_status("CAM-3", "degraded", at(24)))
    world.run(at(25))
    assert len(world.alarms()) == 1  # resolved by hand, nothing new about the cause
    world.ingest(ev.camera_status("CAM-3", "online", at(26)))
    world.ingest(ev.camera_status("CAM-3", "offline", at(27)))
    world.run(at(40))
    first, second = world.alarms()
    assert (first.occurrence, second.occurrence) == (1, 2)
    assert second.id != first.id
    assert second.state == "active"


def test_operator_actions_follow_the_states(world: World) -> None:
    world.ingest(world.ev.station("ST-3", UNIT, at(0)), world.ev.fault("ST-3", 1, at(1)))
    world.run(at(2))
    (alarm,) = world.alarms()
    acked, _ = world.desk.act(alarm.id, "ack", "op-1", "on it", at(3))
    assert acked.state == "acknowledged"
    with pytest.raises(AlarmConflict, match="already acknowledged"):
        world.desk.act(alarm.id, "ack", "op-2", None, at(4))
    world.desk.act(alarm.id, "resolve", "admin-1", None, at(5))
    with pytest.raises(AlarmConflict, match="already resolved") as raised:
        world.desk.act(alarm.id, "resolve", "op-1", None, at(6))
    assert raised.value.state == "resolved"
    for not_an_alarm in (uuid4(), subject_id("station", "ST-3")):
        with pytest.raises(UnknownAlarm):
            world.desk.act(not_an_alarm, "ack", "op-1", None, at(7))
    world.ingest(world.ev.restored("ST-3", 1, at(8)))
    world.run(at(9))  # the cause cleared after a manual resolution: nothing to do
    assert [n for _, n, _ in world.alarm_events()] == ["Raised", "Acknowledged", "Resolved"]


def test_a_step_on_a_stale_state_is_refused_and_writes_nothing(world: World) -> None:
    """Two runners that overlap: the second commit fails on the revision."""
    world.ingest(world.ev.station("ST-4", UNIT, at(0)), world.ev.fault("ST-4", 1, at(1)))
    stale = world.engine.position()
    world.run(at(2))
    late = RulesEngine(world.desk, THRESHOLDS, PROFILE.unit_of)
    late.position = lambda: stale  # type: ignore[method-assign]
    with pytest.raises(RulesMoved):
        late.step(at(2))
    assert len(world.alarms()) == 1


async def test_rules_restarted_mid_way_raise_nothing_twice(world: World) -> None:
    ev = world.ev
    raws: list[dict[str, Any]] = []
    for n in range(40):
        raws += [ev.station(f"ST-R{n}", UNIT, at(0)), ev.fault(f"ST-R{n}", 1, at(1))]
    await asyncio.to_thread(world.ingest, *raws)
    small = RulesEngine(world.desk, THRESHOLDS, PROFILE.unit_of, batch=7)
    runner = Follower(world.url, [], rules=small, batch=7, tick=0.05, clock=lambda: at(2))
    runner.start()
    async with asyncio.timeout(10):
        await runner.wait_for(20)
    await runner.stop()  # cancelled mid-way
    assert 0 < len(world.alarms()) < 40
    again = Follower(world.url, [], rules=small, batch=7, tick=0.05, clock=lambda: at(2))
    again.start()
    try:
        async with asyncio.timeout(10):
            await again.wait_for(max(world.engine.position()[0], 80))
    finally:
        await again.stop()
    raised = [a for a, name, _ in world.alarm_events() if name == "Raised"]
    assert len(raised) == len(set(raised)) == 40
    assert {a.subject for a in world.alarms()} == {f"ST-R{n}" for n in range(40)}


async def test_the_alarms_projection_keeps_state_and_history(world: World) -> None:
    import asyncpg

    world.ingest(world.ev.station("ST-5", UNIT, at(0)), world.ev.fault("ST-5", 3, at(1)))
    world.run(at(2))
    (alarm,) = world.alarms()
    world.desk.act(alarm.id, "ack", "op-1", "dispatched", at(3))
    conn = await asyncpg.connect(world.url)
    try:
        projection = AlarmsProjection()
        await ensure_schema(conn, [projection])
        await conn.execute("TRUNCATE rm_alarms, rm_alarm_history")
        await conn.execute("UPDATE projection_positions SET position = 0 WHERE name = 'alarms'")
        while not (await step(conn, projection)).caught_up:
            pass
        row = await conn.fetchrow("SELECT * FROM rm_alarms WHERE id = $1", alarm.id)
        history = await conn.fetch(
            "SELECT event, by, note, state FROM rm_alarm_history WHERE id = $1 ORDER BY position",
            alarm.id,
        )
    finally:
        await conn.close()
    assert (row["state"], row["cause"], row["unit"], row["acknowledged_by"]) == (
        "acknowledged",
        "cluster_fault",
        UNIT,
        "op-1",
    )
    assert [tuple(h) for h in history] == [
        ("raised", None, None, "active"),
        ("acknowledged", "op-1", "dispatched", "acknowledged"),
    ]


def test_an_operator_acting_while_the_rules_step_makes_the_step_retry(world: World) -> None:
    """The rules loaded the alarm, an operator resolves it, the rules' save is refused;
    the next step decides again on the resolved alarm."""
    ev = world.ev
    world.ingest(ev.station("ST-6", UNIT, at(0)), ev.fault("ST-6", 1, at(1)))
    world.run(at(2))
    (alarm,) = world.alarms()
    world.ingest(ev.fault("ST-6", 2, at(3)))  # a repeat for the rules to record
    load = world.desk.load_alarms

    def load_then_operator_acts(ids: Any) -> Any:
        loaded = load(ids)
        world.desk.act(alarm.id, "resolve", "op-1", "fixed both", at(3))
        return loaded

    world.desk.load_alarms = load_then_operator_acts  # type: ignore[method-assign]
    try:
        with pytest.raises(IntegrityError):
            world.engine.step(at(4))
    finally:
        del world.desk.load_alarms
    assert [n for _, n, _ in world.alarm_events()] == ["Raised", "Resolved"]
    world.run(at(4))
    first, second = world.alarms()
    assert (first.state, first.resolved_by) == ("resolved", "op-1")
    assert (second.occurrence, second.state) == (2, "active")  # the cause changed after
