"""Citizens' field reports (phản ánh hiện trường): a pothole, a broken street light, rubbish,
a blocked drain, a disturbance, reported through the province's app, hotline, web portal
or social media. No I/O here.

A report is received, assigned to the agency (or the commune) responsible with a due
time, possibly reassigned, then resolved (with its result) or rejected (out of scope, a
duplicate); a resolved report may be rated once by the citizen. The rules:

* nothing happens to a report before it is received: an event about a report never
  received is `unknown_subject` (decided in `ops_center.ingest.decisions`), and an event
  whose time is before the reception is `invalid_transition`;
* after the report is resolved or rejected, only a rating is accepted (a resolved report,
  once): anything else is `invalid_transition`;
* ``report.assigned`` is accepted once; later changes are ``report.reassigned``. Of the
  assignments, the one with the latest CloudEvent time is in effect (ties: the later
  one): an older assignment that arrives late is kept as history and changes nothing;
* a resolution is on time when its time is at or before the due time in effect (a report
  resolved without ever being assigned had no due time and counts as on time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ops_center.domain.errors import INVALID_TRANSITION, Rejection, invalid_data
from ops_center.domain.provenance import Meta, is_current, occurred, record, subject_id

NEW: Final = "new"
ASSIGNED: Final = "assigned"
RESOLVED: Final = "resolved"
REJECTED: Final = "rejected"
#: The states a report is kept in (``overdue`` is an assigned report past its due time,
#: judged by the clock, never stored).
STATES: Final = (NEW, ASSIGNED, RESOLVED, REJECTED)


class Report(Aggregate):
    """A citizen's field report, from reception to resolution or rejection (and rating)."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return subject_id("report", code)

    @event("Received")
    def __init__(
        self,
        code: str,
        category: str,
        title: str,
        description: str | None,
        unit: str,
        channel: str,
        lat: float | None,
        lon: float | None,
        photo_url: str | None,
        meta: Meta,
    ) -> None:
        self.code = code
        self.unit = unit
        self.received_time: datetime = occurred(meta)
        self.state: str = NEW
        self.agency: str | None = None
        self.due_at: datetime | None = None
        #: CloudEvent time of the assignment in effect.
        self.assigned_time: datetime | None = None
        #: Whether ``report.assigned`` was accepted (it is accepted once).
        self.assigned_once = False
        self.closed_time: datetime | None = None
        self.rating: str | None = None

    def assign(self, agency: str, due_at: str, meta: Meta) -> None:
        """The first assignment to the agency (or commune) responsible, with a due time."""
        self._check_open(meta)
        if self.assigned_once:
            raise Rejection(
                INVALID_TRANSITION,
                "/type",
                f"report {self.code!r} was already assigned: send report.reassigned",
            )
        record(self, "Assigned", agency=agency, due_at=due_at, meta=meta)

    @event("Assigned")
    def _assigned(self, agency: str, due_at: str, meta: Meta) -> None:
        self.assigned_once = True
        self._take(agency, due_at, meta)

    def reassign(self, agency: str, due_at: str, reason: str | None, meta: Meta) -> None:
        """A new assignment (another agency, or a new due time)."""
        self._check_open(meta)
        record(self, "Reassigned", agency=agency, due_at=due_at, reason=reason, meta=meta)

    @event("Reassigned")
    def _reassigned(self, agency: str, due_at: str, reason: str | None, meta: Meta) -> None:
        self._take(agency, due_at, meta)

    def _take(self, agency: str, due_at: str, meta: Meta) -> None:
        if self.state == NEW:
            self.state = ASSIGNED
        if is_current(meta, self.assigned_time):
            self.agency = agency
            self.due_at = datetime.fromisoformat(due_at)
            self.assigned_time = occurred(meta)

    def resolve(self, result: str, meta: Meta) -> None:
        """Close the report with its result; on time when at or before the due time."""
        self._check_open(meta)
        on_time = self.due_at is None or occurred(meta) <= self.due_at
        record(self, "Resolved", result=result, on_time=on_time, meta=meta)

    @event("Resolved")
    def _resolved(self, result: str, on_time: bool, meta: Meta) -> None:
        self.state = RESOLVED
        self.closed_time = occurred(meta)

    def reject(self, reason: str, duplicate_of: str | None, meta: Meta) -> None:
        """Close the report without handling it (out of scope, a duplicate of another)."""
        if duplicate_of == self.code:
            raise invalid_data("duplicate_of", "a report cannot be a duplicate of itself")
        self._check_open(meta)
        record(self, "Rejected", reason=reason, duplicate_of=duplicate_of, meta=meta)

    @event("Rejected")
    def _rejected(self, reason: str, duplicate_of: str | None, meta: Meta) -> None:
        self.state = REJECTED
        self.closed_time = occurred(meta)

    def rate(self, rating: str, meta: Meta) -> None:
        """The citizen's rating of a resolved report: once, not before the resolution."""
        if self.state != RESOLVED:
            why = "was rejected" if self.state == REJECTED else "is not resolved yet"
            raise Rejection(INVALID_TRANSITION, "/type", f"report {self.code!r} {why}")
        if self.rating is not None:
            raise Rejection(INVALID_TRANSITION, "/type", f"report {self.code!r} was already rated")
        if self.closed_time is not None and occurred(meta) < self.closed_time:
            raise Rejection(
                INVALID_TRANSITION,
                "/time",
                f"report {self.code!r} was resolved at {self.closed_time.isoformat()}, "
                "after this rating",
            )
        record(self, "Rated", rating=rating, meta=meta)

    @event("Rated")
    def _rated(self, rating: str, meta: Meta) -> None:
        self.rating = rating

    def _check_open(self, meta: Meta) -> None:
        if self.state in (RESOLVED, REJECTED):
            raise Rejection(
                INVALID_TRANSITION, "/type", f"report {self.code!r} is already {self.state}"
            )
        if occurred(meta) < self.received_time:
            raise Rejection(
                INVALID_TRANSITION,
                "/time",
                f"report {self.code!r} was received at {self.received_time.isoformat()}, "
                "after this event",
            )
