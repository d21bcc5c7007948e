"""The rule book: from facts and the clock to alarm decisions. No I/O.

For each subject and cause the rules remember a `CauseRecord`: what was last observed
(present or not, pending start, end by itself), the detail shown, how many alarms the
cause has raised on the subject (`occurrence`) and the latest one's id. `decide` compares
a new observation with the record and the latest alarm:

* present, the alarm open: a repeat; it updates the alarm only when what it shows
  changed (a heartbeat repeating the same status changes nothing);
* present, no open alarm: a new alarm (the next occurrence), unless the cause was already
  present with the same detail when an operator resolved the alarm (resolving by hand
  says "handled"; the next change of the cause raises again);
* absent, the alarm open: the alarm resolves by itself (by ``rules``).

`RuleBook` applies events and the clock to the facts, records and alarms it was given
(the engine loads them and saves what changed). Each subject is evaluated at its own
clock, which never goes back: before an event is folded, a subject with a pending start
or end that has come by the event's time is evaluated at that time, so a grace period or a
due time that ran out before the event raises at its own moment, whether the event is
applied at once or late during a catch-up. After the events, the subjects touched and those
with a start or end due are evaluated at the clock (`on_clock`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from ops_center.alarms.rules.facts import Facts, fold, when
from ops_center.alarms.rules.observe import (
    CAMERA_ALERT,
    CAUSES_BY_KIND,
    CLUSTER_FAULT,
    DEVICE_OFFLINE,
    EMERGENCY_BROADCAST,
    Observation,
    UnitOf,
    observe,
)
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain.alarm import RULES, Alarm, alarm_id

#: The causes an event can change, by the event's name (its part after the aggregate's):
#: a device's status changes only its offline cause, an alert only the alert cause, and so
#: on. Events not named here (registrations, dossiers', indicators' and reports' events,
#: whose kinds have one cause each) evaluate every cause of the subject's kind. Causes an
#: event does not name can change only with the clock, and the clock's starts and ends are
#: evaluated before the event is folded (`RuleBook.on_event`).
AFFECTS: Final[dict[str, tuple[str, ...]]] = {
    "StatusReported": (DEVICE_OFFLINE,),
    "AlertRaised": (CAMERA_ALERT,),
    "ClusterFaulted": (CLUSTER_FAULT,),
    "ClusterRestored": (CLUSTER_FAULT,),
    "BroadcastStarted": (EMERGENCY_BROADCAST,),
    "BroadcastEnded": (EMERGENCY_BROADCAST,),
}


@dataclass(frozen=True, slots=True)
class CauseRecord:
    """What the rules remember of one cause on one subject."""

    subject_id: UUID
    cause: str
    subject_kind: str
    subject: str
    unit: str | None
    present: bool
    severity: str
    summary: str
    detail: dict[str, Any]
    since: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    occurrence: int
    alarm_id: UUID | None

    @property
    def key(self) -> tuple[UUID, str]:
        return (self.subject_id, self.cause)

    def shows(self) -> tuple[Any, ...]:
        return (self.unit, self.severity, self.summary, self.detail)


@dataclass(frozen=True, slots=True)
class Raise:
    occurrence: int
    observation: Observation


@dataclass(frozen=True, slots=True)
class Repeat:
    observation: Observation
    at: datetime


@dataclass(frozen=True, slots=True)
class Clear:
    at: datetime


Action = Raise | Repeat | Clear


def decide(
    prev: CauseRecord | None,
    obs: Observation,
    alarm_open: bool,
    clock: datetime,
    *,
    subject_id: UUID,
    cause: str,
    subject_kind: str,
    subject: str,
) -> tuple[CauseRecord, Action | None]:
    """The new record and what happens to the alarm (see the module docstring)."""
    occurrence = prev.occurrence if prev is not None else 0
    current = prev.alarm_id if prev is not None else None
    shows = (obs.unit, obs.severity, obs.summary, obs.detail)
    unchanged = prev is not None and prev.present and prev.shows() == shows
    action: Action | None = None
    if obs.present:
        if alarm_open:
            action = None if unchanged else Repeat(obs, clock)
        elif not unchanged:
            occurrence += 1
            current = alarm_id(cause, subject_kind, subject, occurrence)
            action = Raise(occurrence, obs)
    elif alarm_open:
        action = Clear(obs.cleared_at or clock)
    starts_at = None if obs.present else obs.starts_at
    ends_at = obs.ends_at if obs.present else None
    if (
        action is None
        and prev is not None
        and prev.occurrence == occurrence
        and prev.alarm_id == current
        and prev.present == obs.present
        and prev.since == obs.since
        and prev.starts_at == starts_at
        and prev.ends_at == ends_at
        and prev.subject == subject
        and prev.shows() == shows
    ):
        return prev, None  # the common case of a heartbeat: nothing to build or save
    record = CauseRecord(
        subject_id=subject_id,
        cause=cause,
        subject_kind=subject_kind,
        subject=subject,
        unit=obs.unit,
        present=obs.present,
        severity=obs.severity,
        summary=obs.summary,
        detail=obs.detail,
        since=obs.since,
        starts_at=starts_at,
        ends_at=ends_at,
        occurrence=occurrence,
        alarm_id=current,
    )
    return record, action


class RuleBook:
    """Applies events and the clock to loaded facts, records and alarms.

    The mappings it is given are changed in place (the engine keeps them between chunks
    and drops them all when a save fails). After use, `changed_facts`, `changed_records`
    and `touched` (alarms with new pending events) say what to save.
    """

    def __init__(
        self,
        thresholds: Thresholds,
        unit_of: UnitOf,
        facts: MutableMapping[UUID, Facts],
        records: MutableMapping[tuple[UUID, str], CauseRecord],
        alarms: MutableMapping[UUID, Alarm],
    ) -> None:
        self.thresholds = thresholds
        self.unit_of = unit_of
        self.facts = facts
        self.records = records
        self.alarms = alarms
        self.changed_facts: set[UUID] = set()
        self.changed_records: set[tuple[UUID, str]] = set()
        self.touched: dict[UUID, Alarm] = {}

    def on_event(
        self,
        subject_id: UUID,
        name: str,
        state: Mapping[str, Any],
        moment: datetime,
        clock: datetime,
    ) -> None:
        """Apply one stored event (CloudEvent time `moment`; `clock` is now)."""
        facts = self.facts.get(subject_id)
        at = min(moment, clock)
        if facts is not None:
            seen = when(facts.get("clock"))
            if seen is not None and seen > at:
                at = seen
            if self._pending(subject_id, facts["kind"], at):
                self._evaluate(subject_id, facts, at)
                facts = self.facts[subject_id]
        new = fold(facts, name, state, moment)
        if new is None or new is facts:
            return
        self.facts[subject_id] = new
        self.changed_facts.add(subject_id)
        # `new` is fold's own copy: its clock may be set in place
        self._evaluate(subject_id, new, at, AFFECTS.get(name.partition(".")[2]), owned=True)

    def on_clock(self, subject_id: UUID, clock: datetime) -> None:
        """Evaluate a subject at `clock` if a pending start or end has come."""
        facts = self.facts.get(subject_id)
        if facts is not None and self._pending(subject_id, facts["kind"], clock):
            self._evaluate(subject_id, facts, clock)

    def _pending(self, subject_id: UUID, kind: str, moment: datetime) -> bool:
        """Whether a cause of the subject starts or ends by itself at or before `moment`
        (only then can evaluating it at `moment` change anything)."""
        for cause in CAUSES_BY_KIND[kind]:
            record = self.records.get((subject_id, cause))
            if record is None:
                continue
            if record.starts_at is not None and record.starts_at <= moment:
                return True
            if record.ends_at is not None and record.ends_at <= moment:
                return True
        return False

    def _evaluate(
        self,
        subject_id: UUID,
        facts: Facts,
        moment: datetime,
        causes: tuple[str, ...] | None = None,
        *,
        owned: bool = False,
    ) -> datetime:
        """Observe the subject's causes (all of its kind, or those `causes` an event can
        change) at `moment`, and act on what changed. `owned`: `facts` is a copy made for
        this evaluation (it may be changed in place; others are copied first)."""
        seen = when(facts.get("clock"))
        clock = moment if seen is None else max(seen, moment)
        if seen != clock:
            if owned:
                facts["clock"] = clock.isoformat()
            else:
                facts = {**facts, "clock": clock.isoformat()}
                self.facts[subject_id] = facts
            self.changed_facts.add(subject_id)
        kind, code = facts["kind"], facts["code"]
        for cause in CAUSES_BY_KIND[kind] if causes is None else causes:
            obs = observe(cause, facts, clock, self.thresholds, self.unit_of)
            key = (subject_id, cause)
            prev = self.records.get(key)
            if prev is None and not obs.present and obs.starts_at is None:
                continue
            alarm = self.alarms.get(prev.alarm_id) if prev and prev.alarm_id else None
            record, action = decide(
                prev,
                obs,
                alarm is not None and alarm.is_open,
                clock,
                subject_id=subject_id,
                cause=cause,
                subject_kind=kind,
                subject=code,
            )
            if action is not None:
                self._act(record, action, alarm)
            if record is not prev and record != prev:
                self.records[key] = record
                self.changed_records.add(key)
        return clock

    def _act(self, record: CauseRecord, action: Action, alarm: Alarm | None) -> None:
        if isinstance(action, Raise):
            obs = action.observation
            assert obs.since is not None
            raised = Alarm(
                cause=record.cause,
                subject_kind=record.subject_kind,
                subject=record.subject,
                occurrence=action.occurrence,
                unit=obs.unit,
                severity=obs.severity,
                summary=obs.summary,
                detail=obs.detail,
                at=obs.since.isoformat(),
            )
            self.alarms[raised.id] = raised
            self.touched[raised.id] = raised
            return
        assert alarm is not None
        if isinstance(action, Repeat):
            obs = action.observation
            alarm.repeat(obs.unit, obs.severity, obs.summary, obs.detail, action.at.isoformat())
        else:
            alarm.resolve(RULES, None, action.at.isoformat(), automatic=True)
        self.touched[alarm.id] = alarm
