"""Alarms: what the ops room must notice, from raising to resolution. No I/O here.

An alarm is raised by a rule for one cause (``device_offline``, ``cluster_fault``, ...)
and one subject (a camera, a station, a dossier, an indicator). It moves ``active`` ->
``acknowledged`` -> ``resolved``; it may be resolved straight from ``active``. While it
is open (not resolved) a repeat of its cause updates it (`repeat`); once resolved it is
closed for good, and a new occurrence of the cause is a new alarm, with the next
`occurrence` number. The id is derived from cause, subject and occurrence, so the rules
that raise an alarm can never raise the same occurrence twice (the event store refuses a
second first version of an aggregate).

Every change is a domain event that keeps who did it (an operator's key name, or the
rules) and when, with the operator's note: the alarm's history.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ops_center.domain.provenance import record

ACTIVE: Final = "active"
ACKNOWLEDGED: Final = "acknowledged"
RESOLVED: Final = "resolved"
STATES: Final = (ACTIVE, ACKNOWLEDGED, RESOLVED)

SEVERITIES: Final = ("critical", "warning", "info")

#: Who resolves an alarm whose cause cleared.
RULES: Final = "rules"

_NAMESPACE = UUID("0b9e4f5c-2d7a-4c61-8f3e-5a1d9c7b2e40")


@lru_cache(maxsize=65_536)
def alarm_id(cause: str, subject_kind: str, subject: str, occurrence: int) -> UUID:
    """The id of the `occurrence`-th alarm (1-based) of a cause on a subject (remembered:
    the rules ask for it when they decide and the aggregate again when it is created)."""
    return uuid5(_NAMESPACE, f"alarm:{cause}:{subject_kind}:{subject}:{occurrence}")


class AlarmConflict(Exception):
    """An action the alarm's state does not allow (e.g. resolving a resolved alarm)."""

    def __init__(self, alarm: UUID, state: str, detail: str) -> None:
        super().__init__(detail)
        self.alarm = alarm
        self.state = state
        self.detail = detail


class Alarm(Aggregate):
    """One alarm: a cause on a subject, from its raising to its resolution.

    Times (`at`) are RFC 3339 strings: when the fact happened (for the rules, the moment
    the cause qualified or cleared; for operators, when they acted).
    """

    @staticmethod
    def create_id(cause: str, subject_kind: str, subject: str, occurrence: int, **_: Any) -> UUID:
        return alarm_id(cause, subject_kind, subject, occurrence)

    @event("Raised")
    def __init__(
        self,
        cause: str,
        subject_kind: str,
        subject: str,
        occurrence: int,
        unit: str | None,
        severity: str,
        summary: str,
        detail: dict[str, Any],
        at: str,
    ) -> None:
        self.cause = cause
        self.subject_kind = subject_kind
        self.subject = subject
        self.occurrence = occurrence
        self.unit = unit
        self.severity = severity
        self.summary = summary
        self.detail = detail
        self.raised_at = at
        self.state: str = ACTIVE
        self.repeats = 0
        self.acknowledged_by: str | None = None
        self.resolved_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state != RESOLVED

    def repeat(
        self,
        unit: str | None,
        severity: str,
        summary: str,
        detail: dict[str, Any],
        at: str,
    ) -> None:
        """Record that the cause is still there, possibly changed (open alarms only)."""
        self._check_open("repeated")
        record(
            self, "Repeated", unit=unit, severity=severity, summary=summary, detail=detail, at=at
        )

    @event("Repeated")
    def _repeated(
        self,
        unit: str | None,
        severity: str,
        summary: str,
        detail: dict[str, Any],
        at: str,
    ) -> None:
        self.unit, self.severity, self.summary, self.detail = unit, severity, summary, detail
        self.repeats += 1

    def acknowledge(self, by: str, note: str | None, at: str) -> None:
        """An operator takes the alarm in hand; only an ``active`` alarm can be."""
        if self.state == ACKNOWLEDGED:
            raise AlarmConflict(
                self.id,
                self.state,
                f"alarm {self.id} was already acknowledged by {self.acknowledged_by!r}",
            )
        self._check_open("acknowledged")
        record(self, "Acknowledged", by=by, note=note, at=at)

    @event("Acknowledged")
    def _acknowledged(self, by: str, note: str | None, at: str) -> None:
        self.state = ACKNOWLEDGED
        self.acknowledged_by = by

    def resolve(self, by: str, note: str | None, at: str, *, automatic: bool = False) -> None:
        """Close the alarm: by an operator (`by` is the key's name), or by the rules when
        the cause cleared (`automatic`)."""
        self._check_open("resolved")
        record(self, "Resolved", by=by, note=note, at=at, automatic=automatic)

    @event("Resolved")
    def _resolved(self, by: str, note: str | None, at: str, automatic: bool) -> None:
        self.state = RESOLVED
        self.resolved_by = by

    def _check_open(self, action: str) -> None:
        if self.state == RESOLVED:
            raise AlarmConflict(
                self.id,
                self.state,
                f"alarm {self.id} is already resolved (by {self.resolved_by!r}); "
                f"a resolved alarm cannot be {action}; a new occurrence of its cause raises "
                "a new alarm",
            )
