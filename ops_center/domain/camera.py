"""Security, traffic and public cameras."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ops_center.domain.provenance import Meta, is_current, occurred, record, subject_id


class Camera(Aggregate):
    """A camera: where it is and its latest status by event time."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return subject_id("camera", code)

    @event("Registered")
    def __init__(
        self,
        code: str,
        name: str,
        unit: str,
        kind: str,
        lat: float | None,
        lon: float | None,
        meta: Meta,
    ) -> None:
        self.code = code
        self.name = name
        self.unit = unit
        self.kind = kind
        self.lat = lat
        self.lon = lon
        self.registered_time: datetime = occurred(meta)
        self.status: str | None = None
        self.status_time: datetime | None = None

    def register_again(
        self,
        name: str,
        unit: str,
        kind: str,
        lat: float | None,
        lon: float | None,
        meta: Meta,
    ) -> None:
        """Record a repeated registration; only a newer one changes name, unit or kind."""
        record(self, "Reregistered", name=name, unit=unit, kind=kind, lat=lat, lon=lon, meta=meta)

    @event("Reregistered")
    def _reregistered(
        self,
        name: str,
        unit: str,
        kind: str,
        lat: float | None,
        lon: float | None,
        meta: Meta,
    ) -> None:
        if is_current(meta, self.registered_time):
            self.name, self.unit, self.kind, self.lat, self.lon = name, unit, kind, lat, lon
            self.registered_time = occurred(meta)

    def report_status(self, status: str, meta: Meta) -> None:
        """Record a status report; an older report is kept as history only."""
        record(self, "StatusReported", status=status, meta=meta)

    @event("StatusReported")
    def _status_reported(self, status: str, meta: Meta) -> None:
        if is_current(meta, self.status_time):
            self.status = status
            self.status_time = occurred(meta)

    def raise_alert(
        self,
        alert_id: str,
        category: str,
        severity: str,
        plate: str | None,
        snapshot_url: str | None,
        meta: Meta,
    ) -> None:
        """Record an alert the camera's analytics raised."""
        record(
            self,
            "AlertRaised",
            alert_id=alert_id,
            category=category,
            severity=severity,
            plate=plate,
            snapshot_url=snapshot_url,
            meta=meta,
        )

    @event("AlertRaised")
    def _alert_raised(
        self,
        alert_id: str,
        category: str,
        severity: str,
        plate: str | None,
        snapshot_url: str | None,
        meta: Meta,
    ) -> None:
        pass
