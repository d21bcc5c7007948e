"""Dossiers of the one-stop-shop (online public services) system."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ops_center.domain.errors import INVALID_TRANSITION, Rejection
from ops_center.domain.provenance import Meta, occurred, record, subject_id

OPEN: Final = "open"
COMPLETED: Final = "completed"
WITHDRAWN: Final = "withdrawn"
#: What an applicant may answer when asked how the service went (Decision 766's
#: satisfaction indicator counts the first two).
RATINGS: Final = ("very_satisfied", "satisfied", "dissatisfied")


class Dossier(Aggregate):
    """A dossier from reception to completion or withdrawal; each closes once, and a
    completed dossier may be rated once by its applicant.

    The optional facts of Decision 766/QĐ-TTg's service index travel with the events:
    `digitised` (the input documents were digitised at intake) and `fee` (the procedure
    charges a fee) with the reception, `e_result` (the result was issued electronically)
    and `paid_online` with the completion. None means "not said" (events stored before
    these fields existed have none).
    """

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return subject_id("dossier", code)

    @event("Received")
    def __init__(
        self,
        code: str,
        procedure_code: str,
        procedure_name: str | None,
        level: str,
        channel: str,
        agency: str,
        unit: str,
        due_at: str,
        meta: Meta,
        digitised: bool | None = None,
        fee: bool | None = None,
    ) -> None:
        self.code = code
        self.agency = agency
        self.unit = unit
        self.due_at: datetime = datetime.fromisoformat(due_at)
        self.state: str = OPEN
        self.closed_time: datetime | None = None
        self.supplements = 0
        self.rating: str | None = None

    def request_supplement(self, reason: str | None, meta: Meta) -> None:
        """Record a request for more documents.

        After the dossier closed, only a request that happened before the closing (a late
        event) is accepted, as history.
        """
        if self.closed_time is not None and occurred(meta) >= self.closed_time:
            raise Rejection(
                INVALID_TRANSITION, "/type", f"dossier {self.code!r} is already {self.state}"
            )
        record(self, "SupplementRequested", reason=reason, meta=meta)

    @event("SupplementRequested")
    def _supplement_requested(self, reason: str | None, meta: Meta) -> None:
        self.supplements += 1

    def complete(
        self,
        result: str,
        meta: Meta,
        e_result: bool | None = None,
        paid_online: bool | None = None,
    ) -> None:
        """Close the dossier with a result; on time when the event's time <= due_at."""
        self._check_open()
        on_time = occurred(meta) <= self.due_at
        record(
            self,
            "Completed",
            result=result,
            on_time=on_time,
            meta=meta,
            e_result=e_result,
            paid_online=paid_online,
        )

    @event("Completed")
    def _completed(
        self,
        result: str,
        on_time: bool,
        meta: Meta,
        e_result: bool | None = None,
        paid_online: bool | None = None,
    ) -> None:
        self.state = COMPLETED
        self.closed_time = occurred(meta)

    def rate(self, rating: str, meta: Meta) -> None:
        """Record the applicant's rating: only once the dossier is completed, and once."""
        if self.state != COMPLETED:
            raise Rejection(
                INVALID_TRANSITION,
                "/type",
                f"dossier {self.code!r} is {self.state}: only a completed dossier is rated",
            )
        if self.rating is not None:
            raise Rejection(INVALID_TRANSITION, "/type", f"dossier {self.code!r} was already rated")
        self._rated(rating=rating, meta=meta)

    @event("Rated")
    def _rated(self, rating: str, meta: Meta) -> None:
        self.rating = rating

    def withdraw(self, reason: str | None, meta: Meta) -> None:
        """Close the dossier because the applicant withdrew it."""
        self._check_open()
        record(self, "Withdrawn", reason=reason, meta=meta)

    @event("Withdrawn")
    def _withdrawn(self, reason: str | None, meta: Meta) -> None:
        self.state = WITHDRAWN
        self.closed_time = occurred(meta)

    def _check_open(self) -> None:
        if self.state != OPEN:
            raise Rejection(
                INVALID_TRANSITION, "/type", f"dossier {self.code!r} is already {self.state}"
            )
