"""Stored events by name, declared once: the aggregates' own event classes.

A stored event's short name (``"Camera.StatusReported"``) is its class's qualified name
(`name_of`); readers of the log (projections, the alarm rules, the feed) say which events
they follow with `names_of`, which checks each name against the aggregate's own event
classes, so a renamed or removed event fails at import, not silently. `AGGREGATES` maps
an aggregate's name to its class (for stored topics), and `PRODUCED_BY` the CloudEvent
type each stored event comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from eventsourcing.domain import Aggregate

from ops_center.domain.alarm import Alarm
from ops_center.domain.camera import Camera
from ops_center.domain.dossier import Dossier
from ops_center.domain.indicator import Indicator
from ops_center.domain.radio import RadioStation
from ops_center.domain.report import Report

AGGREGATES: Final[Mapping[str, type[Aggregate]]] = {
    cls.__name__: cls for cls in (Camera, RadioStation, Dossier, Indicator, Report, Alarm)
}


def name_of(aggregate: type[Aggregate], event: str) -> str:
    """The short name of the aggregate's event class `event`, e.g. ``"Camera.StatusReported"``;
    raises LookupError when the aggregate declares no such event."""
    found = getattr(aggregate, event, None)
    if not (isinstance(found, type) and issubclass(found, Aggregate.Event)):
        raise LookupError(f"{aggregate.__name__} declares no event {event!r}")
    return found.__qualname__


def names_of(aggregate: type[Aggregate], *events: str) -> frozenset[str]:
    """The short names of these events of the aggregate (checked as `name_of` does)."""
    return frozenset(name_of(aggregate, e) for e in events)


#: Short event name -> the CloudEvent type that produces it (the feed shows the type).
PRODUCED_BY: Final[Mapping[str, str]] = {
    name_of(RadioStation, "Registered"): "radio.station.registered",
    name_of(RadioStation, "Reregistered"): "radio.station.registered",
    name_of(RadioStation, "StatusReported"): "radio.station.status",
    name_of(RadioStation, "BroadcastStarted"): "radio.broadcast.started",
    name_of(RadioStation, "BroadcastEnded"): "radio.broadcast.ended",
    name_of(RadioStation, "ClusterFaulted"): "radio.cluster.fault",
    name_of(RadioStation, "ClusterRestored"): "radio.cluster.restored",
    name_of(Camera, "Registered"): "camera.registered",
    name_of(Camera, "Reregistered"): "camera.registered",
    name_of(Camera, "StatusReported"): "camera.status",
    name_of(Camera, "AlertRaised"): "camera.alert",
    name_of(Dossier, "Received"): "dossier.received",
    name_of(Dossier, "SupplementRequested"): "dossier.supplement_requested",
    name_of(Dossier, "Completed"): "dossier.completed",
    name_of(Dossier, "Withdrawn"): "dossier.withdrawn",
    name_of(Dossier, "Rated"): "dossier.rated",
    name_of(Indicator, "Defined"): "kpi.defined",
    name_of(Indicator, "Redefined"): "kpi.defined",
    name_of(Indicator, "Reported"): "kpi.reported",
    name_of(Indicator, "TargetRevised"): "kpi.target_revised",
    name_of(Report, "Received"): "report.received",
    name_of(Report, "Assigned"): "report.assigned",
    name_of(Report, "Reassigned"): "report.reassigned",
    name_of(Report, "Resolved"): "report.resolved",
    name_of(Report, "Rejected"): "report.rejected",
    name_of(Report, "Rated"): "report.rated",
}
