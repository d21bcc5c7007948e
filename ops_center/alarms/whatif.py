"""What-if for the alarm rules: replay the stored history with other thresholds. No I/O.

`WhatIf` folds decoded log events (`ops_center.store.log.Event`, in log order) through the
same pure `RuleBook` as the live engine, into facts, records and alarms kept in memory only
(nothing is saved), and reports the alarms it raises in ``[start, end)``.

Why it reproduces the live engine with today's thresholds:

* events are folded in log order, from the start of the log (state before `start` matters:
  a camera offline since yesterday raises today);
* the clock given with each event is the latest recording time seen so far: the engine
  applies an event after it is recorded, so its clock was at least that; `RuleBook`
  evaluates a pending start or end at its own moment before the next event of the
  subject, and alarms take their time from the observation (``since``), not from the
  clock, so when the engine's ticks came does not matter;
* events that happened (CloudEvent time) at or after `end` are not folded, wherever they
  are in the log; after the last event, every subject with a start or end due by `end`
  is evaluated at `end`;
* the operators' resolutions recorded in the log (``Alarm.Resolved`` not by the rules)
  are applied to the simulated alarm with the same id (cause, subject and occurrence),
  when it is open: resolving by hand changes what the rules decide next ("resolved by
  hand, same detail: no new alarm"), so leaving them out would not reproduce the alarms
  that were raised. With other thresholds an occurrence may not line up with the real one;
  the resolution then applies to whatever alarm has that id, or to none.

Where it cannot reproduce: the live engine's clock is the wall clock of each step, which
the log does not keep. While the rules keep up with the log (the normal case) that is the
recording time, as here. After a catch-up (the rules stopped for a while, or a history
loaded in bulk), the engine evaluated the subjects it touched at the catch-up's wall clock:
their facts' clock jumped ahead, and alarms of that stretch carry catch-up times (a dossier
judged overdue "now", a clear at "now"); the what-if evaluates them at their own moments
instead, which is what the rules would have done live. The indicators' cause
(``kpi_off_track``) judges on the clock's local date and may differ around midnight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from ops_center.alarms.rules.book import CauseRecord, RuleBook
from ops_center.alarms.rules.facts import EVENTS, Facts
from ops_center.alarms.rules.observe import UnitOf
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain.alarm import Alarm
from ops_center.province.calendar import iso
from ops_center.settings import Settings
from ops_center.store.log import Event

#: The operators' action the what-if applies (acknowledging changes no decision).
RESOLVED: Final = "Alarm.Resolved"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One alarm the rules raise: what the answer shows of it."""

    cause: str
    subject: str
    unit: str | None
    raised_at: datetime
    resolved_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "subject": self.subject,
            "unit": self.unit,
            "raised_at": iso(self.raised_at),
            "resolved_at": None if self.resolved_at is None else iso(self.resolved_at),
        }

    def key(self) -> tuple[str, str, str | None, datetime, datetime | None]:
        """What two alarms must share to be "the same" in the comparison."""
        return (self.cause, self.subject, self.unit, self.raised_at, self.resolved_at)


class WhatIf:
    """The rules over a history, in memory. `feed` chunks of events in log order, then
    `finish` once; `events` counts those folded."""

    def __init__(
        self,
        thresholds: Thresholds,
        unit_of: UnitOf,
        start: datetime,
        end: datetime,
        now: datetime | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.start = start
        self.end = end
        #: The last moment evaluated: `end`, or `now` when `end` is later (a grace period
        #: that has not run out yet raises nothing, as with the live rules).
        self.until = end if now is None else min(end, now)
        self.facts: dict[UUID, Facts] = {}
        self.records: dict[tuple[UUID, str], CauseRecord] = {}
        self.alarms: dict[UUID, Alarm] = {}
        self.book = RuleBook(thresholds, unit_of, self.facts, self.records, self.alarms)
        self.clock: datetime | None = None
        self.events = 0
        self._raised: dict[UUID, datetime] = {}
        self._resolved: dict[UUID, datetime] = {}

    def feed(self, events: Iterable[Event]) -> None:
        """Fold events (log order); those that happened at or after `end` are skipped."""
        book = self.book
        for event in events:
            recorded = event.recorded
            if self.clock is None or recorded > self.clock:
                self.clock = recorded
            if event.name in EVENTS:
                moment = event.time
                if moment >= self.end:
                    continue
                book.on_event(event.originator_id, event.name, event.state, moment, self.clock)
                self.events += 1
            elif event.name == RESOLVED and not event.state.get("automatic"):
                self._by_hand(event)
            if book.touched:
                self._harvest()

    def _by_hand(self, event: Event) -> None:
        alarm = self.alarms.get(event.originator_id)
        at = str(event.state["at"])
        if alarm is None or not alarm.is_open or datetime.fromisoformat(at) >= self.end:
            return
        alarm.resolve(str(event.state.get("by")), event.state.get("note"), at)
        self.book.touched[alarm.id] = alarm

    def _harvest(self) -> None:
        """Note when the touched alarms were raised and resolved, and drop their pending
        events (nothing is ever saved)."""
        for alarm in self.book.touched.values():
            for domain_event in alarm.collect_events():
                name = type(domain_event).__name__
                at = getattr(domain_event, "at", None)
                if at is None:
                    continue
                if name == "Raised":
                    self._raised[alarm.id] = datetime.fromisoformat(at)
                elif name == "Resolved":
                    self._resolved[alarm.id] = datetime.fromisoformat(at)
        self.book.touched.clear()

    def finish(self) -> list[Outcome]:
        """Evaluate what is due by `until`, and the alarms raised in ``[start, end)``, in
        the order of their raising."""
        for subject in list(self.facts):
            self.book.on_clock(subject, self.until)
        self._harvest()
        found = []
        for alarm_id, raised_at in self._raised.items():
            if not self.start <= raised_at < self.end:
                continue
            alarm = self.alarms[alarm_id]
            resolved = self._resolved.get(alarm_id)
            found.append(
                Outcome(
                    alarm.cause,
                    alarm.subject,
                    alarm.unit,
                    raised_at,
                    resolved if resolved is not None and resolved < self.end else None,
                )
            )
        found.sort(key=lambda o: (o.raised_at, o.cause, o.subject))
        return found


def summary(would_raise: list[Outcome], raised: list[Outcome]) -> dict[str, int]:
    """The counts of the answer: both lists, and those only in one of them."""
    mine = {o.key() for o in would_raise}
    real = {o.key() for o in raised}
    return {
        "would_raise": len(would_raise),
        "raised": len(raised),
        "only_what_if": sum(1 for o in would_raise if o.key() not in real),
        "only_raised": sum(1 for o in raised if o.key() not in mine),
    }


# -- thresholds by their settings names -----------------------------------------------------

#: The thresholds a what-if may set: the settings ``alarm_*_seconds`` without ``alarm_``
#: (environment ``OPS_CENTER_ALARM_<NAME>``), to the `Thresholds` field each one sets.
THRESHOLD_NAMES: Final = {
    "offline_grace_seconds": "offline_grace",
    "alert_hold_seconds": "alert_hold",
    "dossier_grace_seconds": "dossier_grace",
}
#: The largest threshold accepted, in seconds (a year: beyond it nothing could raise).
MAX_THRESHOLD: Final = 366 * 86_400.0


class BadThreshold(ValueError):
    """A threshold that cannot be used: `names` (sorted) and why."""

    def __init__(self, names: list[str], reason: str) -> None:
        super().__init__(f"{', '.join(names)}: {reason}")
        self.names = names
        self.reason = reason


def in_force(settings: Settings) -> dict[str, float]:
    """The thresholds of the settings, by their names."""
    return {name: float(getattr(settings, f"alarm_{name}")) for name in THRESHOLD_NAMES}


def overridden(base: Mapping[str, float], changes: Mapping[str, object]) -> dict[str, float]:
    """`base` with `changes`; `BadThreshold` for unknown names (all of them named), values
    that are not numbers, negative or beyond `MAX_THRESHOLD`."""
    unknown = sorted(set(changes) - set(THRESHOLD_NAMES))
    if unknown:
        known = ", ".join(THRESHOLD_NAMES)
        raise BadThreshold(unknown, f"not a threshold of the alarm rules (known: {known})")
    values = dict(base)
    for name, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadThreshold([name], "must be a number of seconds")
        if not math.isfinite(value) or value < 0:
            raise BadThreshold([name], "must be a number of seconds >= 0")
        if value > MAX_THRESHOLD:
            raise BadThreshold([name], f"must be at most {MAX_THRESHOLD:.0f} seconds")
        values[name] = float(value)
    return values


def thresholds_of(values: Mapping[str, float]) -> Thresholds:
    """`Thresholds` from values by their names."""
    return Thresholds(
        **{field: timedelta(seconds=values[name]) for name, field in THRESHOLD_NAMES.items()}
    )


def answer(
    start: datetime,
    end: datetime,
    values: Mapping[str, float],
    would_raise: list[Outcome],
    raised: list[Outcome],
) -> dict[str, Any]:
    """The answer of a what-if (the HTTP body and the CLI's ``--json``)."""
    return {
        "from": iso(start),
        "to": iso(end),
        "thresholds": dict(values),
        "would_raise": [o.as_json() for o in would_raise],
        "raised": [o.as_json() for o in raised],
        "summary": summary(would_raise, raised),
    }
