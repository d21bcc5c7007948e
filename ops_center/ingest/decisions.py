"""From a validated CloudEvent to a decision of the subject's aggregate. No I/O.

`decide` takes the subject's current aggregate (or None when it was never registered)
and applies the event to it, producing exactly one new pending domain event, or raising
`Rejection`. Registration events create the aggregate or record a repeated
registration; every other event needs an existing subject.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from eventsourcing.domain import Aggregate

from ops_center.domain import (
    Camera,
    Dossier,
    Indicator,
    Meta,
    RadioStation,
    Report,
    subject_id,
)
from ops_center.domain.errors import INVALID_TRANSITION, UNKNOWN_SUBJECT, Rejection
from ops_center.ingest.catalogue import EventType

AGGREGATE_TYPES: Final[dict[str, type[Aggregate]]] = {
    "station": RadioStation,
    "camera": Camera,
    "dossier": Dossier,
    "indicator": Indicator,
    "report": Report,
}

_SUBJECT_NAMES: Final = {
    "station": "radio station",
    "camera": "camera",
    "dossier": "dossier",
    "indicator": "indicator",
    "report": "report",
}


def aggregate_id(kind: EventType, subject: str) -> UUID:
    """The id of the aggregate an event of this type and subject is about."""
    return subject_id(kind.subject, subject)


def decide(
    kind: EventType, current: Aggregate | None, subject: str, data: dict[str, Any], meta: Meta
) -> Aggregate:
    """Apply one event to its subject's aggregate and return the aggregate.

    The aggregate is changed only when no `Rejection` is raised.
    """
    name = kind.name
    if current is None:
        return _create(kind, subject, data, meta)
    match current:
        case RadioStation():
            _decide_station(name, current, data, meta)
        case Camera():
            _decide_camera(name, current, data, meta)
        case Dossier():
            _decide_dossier(name, current, data, meta)
        case Indicator():
            _decide_indicator(name, current, data, meta)
        case Report():
            _decide_report(name, current, data, meta)
        case _:  # pragma: no cover - AGGREGATE_TYPES lists every kind
            raise TypeError(f"no decisions for {type(current).__name__}")
    return current


def _create(kind: EventType, subject: str, data: dict[str, Any], meta: Meta) -> Aggregate:
    g = data.get
    match kind.name:
        case "radio.station.registered":
            return RadioStation(
                code=subject,
                name=data["name"],
                unit=data["unit"],
                clusters=data["clusters"],
                lat=g("lat"),
                lon=g("lon"),
                meta=meta,
            )
        case "camera.registered":
            return Camera(
                code=subject,
                name=data["name"],
                unit=data["unit"],
                kind=data["kind"],
                lat=g("lat"),
                lon=g("lon"),
                meta=meta,
            )
        case "dossier.received":
            return Dossier(
                code=subject,
                procedure_code=data["procedure_code"],
                procedure_name=g("procedure_name"),
                level=data["level"],
                channel=data["channel"],
                agency=data["agency"],
                unit=data["unit"],
                due_at=data["due_at"],
                meta=meta,
                digitised=g("digitised"),
                fee=g("fee"),
            )
        case "kpi.defined":
            return Indicator(
                code=subject,
                name=data["name"],
                measure=data["measure"],
                owner=data["owner"],
                pillar=data["pillar"],
                direction=data["direction"],
                target=data["target"],
                deadline=data["deadline"],
                reference=g("reference"),
                meta=meta,
            )
        case "report.received":
            return Report(
                code=subject,
                category=data["category"],
                title=data["title"],
                description=g("description"),
                unit=data["unit"],
                channel=data["channel"],
                lat=g("lat"),
                lon=g("lon"),
                photo_url=g("photo_url"),
                meta=meta,
            )
    what = _SUBJECT_NAMES[kind.subject]
    raise Rejection(UNKNOWN_SUBJECT, "/subject", f"no {what} {subject!r} has been registered")


def _decide_station(name: str, station: RadioStation, data: dict[str, Any], meta: Meta) -> None:
    g = data.get
    match name:
        case "radio.station.registered":
            station.register_again(
                data["name"], data["unit"], data["clusters"], g("lat"), g("lon"), meta
            )
        case "radio.station.status":
            station.report_status(data["status"], meta)
        case "radio.broadcast.started":
            station.start_broadcast(data["broadcast_id"], data["program"], data["kind"], meta)
        case "radio.broadcast.ended":
            station.end_broadcast(data["broadcast_id"], meta)
        case "radio.cluster.fault":
            station.report_fault(data["cluster"], data["fault"], meta)
        case "radio.cluster.restored":
            station.restore_cluster(data["cluster"], meta)
        case _:  # pragma: no cover - the catalogue routes only station types here
            raise TypeError(name)


def _decide_camera(name: str, camera: Camera, data: dict[str, Any], meta: Meta) -> None:
    g = data.get
    match name:
        case "camera.registered":
            camera.register_again(
                data["name"], data["unit"], data["kind"], g("lat"), g("lon"), meta
            )
        case "camera.status":
            camera.report_status(data["status"], meta)
        case "camera.alert":
            camera.raise_alert(
                data["alert_id"],
                data["category"],
                data["severity"],
                g("plate"),
                g("snapshot_url"),
                meta,
            )
        case _:  # pragma: no cover
            raise TypeError(name)


def _decide_dossier(name: str, dossier: Dossier, data: dict[str, Any], meta: Meta) -> None:
    match name:
        case "dossier.received":
            raise Rejection(
                INVALID_TRANSITION, "/type", f"dossier {dossier.code!r} was already received"
            )
        case "dossier.supplement_requested":
            dossier.request_supplement(data.get("reason"), meta)
        case "dossier.completed":
            dossier.complete(data["result"], meta, data.get("e_result"), data.get("paid_online"))
        case "dossier.withdrawn":
            dossier.withdraw(data.get("reason"), meta)
        case "dossier.rated":
            dossier.rate(data["rating"], meta)
        case _:  # pragma: no cover
            raise TypeError(name)


def _decide_indicator(name: str, indicator: Indicator, data: dict[str, Any], meta: Meta) -> None:
    g = data.get
    match name:
        case "kpi.defined":
            indicator.define_again(
                data["name"],
                data["measure"],
                data["owner"],
                data["pillar"],
                data["direction"],
                data["target"],
                data["deadline"],
                g("reference"),
                meta,
            )
        case "kpi.reported":
            indicator.report(data["period"], data["value"], meta)
        case "kpi.target_revised":
            indicator.revise_target(data["target"], data["deadline"], meta)
        case _:  # pragma: no cover
            raise TypeError(name)


def _decide_report(name: str, report: Report, data: dict[str, Any], meta: Meta) -> None:
    g = data.get
    match name:
        case "report.received":
            raise Rejection(
                INVALID_TRANSITION, "/type", f"report {report.code!r} was already received"
            )
        case "report.assigned":
            report.assign(data["agency"], data["due_at"], meta)
        case "report.reassigned":
            report.reassign(data["agency"], data["due_at"], g("reason"), meta)
        case "report.resolved":
            report.resolve(data["result"], meta)
        case "report.rejected":
            report.reject(data["reason"], g("duplicate_of"), meta)
        case "report.rated":
            report.rate(data["rating"], meta)
        case _:  # pragma: no cover
            raise TypeError(name)
