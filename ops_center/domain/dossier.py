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


class Dossier(Aggregate):
    """A dossier from reception to completion or withdrawal; each closes once."""

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
    ) -> None:
        self.code = code
        self.agency = agency
        self.unit = unit
        self.due_at: datetime = datetime.fromisoformat(due_at)
        self.state: str = OPEN
        self.closed_time: datetime | None = None
        self.supplements = 0

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

    def complete(self, result: str, meta: Meta) -> None:
        """Close the dossier with a result; on time when the event's time <= due_at."""
        self._check_open()
        on_time = occurred(meta) <= self.due_at
        record(self, "Completed", result=result, on_time=on_time, meta=meta)

    @event("Completed")
    def _completed(self, result: str, on_time: bool, meta: Meta) -> None:
        self.state = COMPLETED
        self.closed_time = occurred(meta)

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
