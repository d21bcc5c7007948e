"""The event catalogue: every CloudEvent type the center accepts and the shape of its data.

`validate_data` checks an event's `data` field by field against its type and against the
province profile (unit and agency codes), returning only the known fields, normalised.
Unknown fields are rejected so that a misspelt optional field is never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from ops_center.domain.dossier import RATINGS
from ops_center.domain.errors import (
    INVALID_DATA,
    UNKNOWN_AGENCY,
    UNKNOWN_UNIT,
    Rejection,
    invalid_data,
)
from ops_center.ingest import fields as f

Ref = Literal["unit", "agency", "owner"]
Subject = Literal["station", "camera", "dossier", "indicator", "report"]


class References(Protocol):
    """What validation needs from the province profile."""

    def has_unit(self, code: str) -> bool: ...

    def has_agency(self, code: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event's data."""

    check: f.Validator
    required: bool = True
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class EventType:
    """A CloudEvent type: its name, what its subject is, and its data fields."""

    name: str
    subject: Subject
    fields: Mapping[str, Field]


def _opt(check: f.Validator) -> Field:
    return Field(check, required=False)


_NAME = f.text(200)
_ID = f.text(128)

STATION_STATUSES: Final = ("online", "offline")
CAMERA_STATUSES: Final = ("online", "offline", "degraded")
BROADCAST_KINDS: Final = ("normal", "priority", "emergency")
CLUSTER_FAULTS: Final = ("power", "network", "speaker")
CAMERA_KINDS: Final = ("security", "traffic", "public")
ALERT_CATEGORIES: Final = (
    "intrusion",
    "fire",
    "crowd",
    "traffic_violation",
    "watchlist_plate",
    "tamper",
)
SEVERITIES: Final = ("info", "warning", "critical")
SERVICE_LEVELS: Final = ("full_online", "partial_online", "offline")
CHANNELS: Final = ("online", "counter", "postal")
RESULTS: Final = ("approved", "refused")
PILLARS: Final = ("digital_government", "digital_economy", "digital_society", "infrastructure")
DIRECTIONS: Final = ("increase", "decrease")
REPORT_CATEGORIES: Final = (
    "traffic",
    "environment",
    "urban_order",
    "security",
    "utilities",
    "public_health",
    "other",
)
REPORT_CHANNELS: Final = ("app", "hotline", "web", "social")
#: How a citizen rates a resolved field report.
REPORT_RATINGS: Final = ("satisfied", "dissatisfied")

_TYPES = (
    EventType(
        "radio.station.registered",
        "station",
        {
            "name": Field(_NAME),
            "unit": Field(f.code, ref="unit"),
            "clusters": Field(f.integer(1, 10_000)),
            "lat": _opt(f.latitude),
            "lon": _opt(f.longitude),
        },
    ),
    EventType("radio.station.status", "station", {"status": Field(f.one_of(*STATION_STATUSES))}),
    EventType(
        "radio.broadcast.started",
        "station",
        {
            "broadcast_id": Field(_ID),
            "program": Field(_NAME),
            "kind": Field(f.one_of(*BROADCAST_KINDS)),
        },
    ),
    EventType("radio.broadcast.ended", "station", {"broadcast_id": Field(_ID)}),
    EventType(
        "radio.cluster.fault",
        "station",
        {"cluster": Field(f.integer(1, 10_000)), "fault": Field(f.one_of(*CLUSTER_FAULTS))},
    ),
    EventType("radio.cluster.restored", "station", {"cluster": Field(f.integer(1, 10_000))}),
    EventType(
        "camera.registered",
        "camera",
        {
            "name": Field(_NAME),
            "unit": Field(f.code, ref="unit"),
            "kind": Field(f.one_of(*CAMERA_KINDS)),
            "lat": _opt(f.latitude),
            "lon": _opt(f.longitude),
        },
    ),
    EventType("camera.status", "camera", {"status": Field(f.one_of(*CAMERA_STATUSES))}),
    EventType(
        "camera.alert",
        "camera",
        {
            "alert_id": Field(_ID),
            "category": Field(f.one_of(*ALERT_CATEGORIES)),
            "severity": Field(f.one_of(*SEVERITIES)),
            "plate": _opt(f.text(20)),
            "snapshot_url": _opt(f.url),
        },
    ),
    EventType(
        "dossier.received",
        "dossier",
        {
            "procedure_code": Field(f.code),
            "procedure_name": _opt(f.text(500)),
            "level": Field(f.one_of(*SERVICE_LEVELS)),
            "channel": Field(f.one_of(*CHANNELS)),
            "agency": Field(f.code, ref="agency"),
            "unit": Field(f.code, ref="unit"),
            "due_at": Field(f.timestamp),
            "digitised": _opt(f.boolean),
            "fee": _opt(f.boolean),
        },
    ),
    EventType("dossier.supplement_requested", "dossier", {"reason": _opt(f.text(1000))}),
    EventType(
        "dossier.completed",
        "dossier",
        {
            "result": Field(f.one_of(*RESULTS)),
            "e_result": _opt(f.boolean),
            "paid_online": _opt(f.boolean),
        },
    ),
    EventType("dossier.withdrawn", "dossier", {"reason": _opt(f.text(1000))}),
    EventType("dossier.rated", "dossier", {"rating": Field(f.one_of(*RATINGS))}),
    EventType(
        "kpi.defined",
        "indicator",
        {
            "name": Field(f.text(300)),
            "measure": Field(f.text(40)),
            "owner": Field(f.code, ref="owner"),
            "pillar": Field(f.one_of(*PILLARS)),
            "direction": Field(f.one_of(*DIRECTIONS)),
            "target": Field(f.number()),
            "deadline": Field(f.calendar_date),
            "reference": _opt(f.text(200)),
        },
    ),
    EventType("kpi.reported", "indicator", {"period": Field(f.period), "value": Field(f.number())}),
    EventType(
        "kpi.target_revised",
        "indicator",
        {"target": Field(f.number()), "deadline": Field(f.calendar_date)},
    ),
    EventType(
        "report.received",
        "report",
        {
            "category": Field(f.one_of(*REPORT_CATEGORIES)),
            "title": Field(_NAME),
            "description": _opt(f.text(4000)),
            "unit": Field(f.code, ref="unit"),
            "channel": Field(f.one_of(*REPORT_CHANNELS)),
            "lat": _opt(f.latitude),
            "lon": _opt(f.longitude),
            "photo_url": _opt(f.url),
        },
    ),
    EventType(
        "report.assigned",
        "report",
        {"agency": Field(f.code, ref="owner"), "due_at": Field(f.timestamp)},
    ),
    EventType(
        "report.reassigned",
        "report",
        {
            "agency": Field(f.code, ref="owner"),
            "due_at": Field(f.timestamp),
            "reason": _opt(f.text(1000)),
        },
    ),
    EventType("report.resolved", "report", {"result": Field(f.text(4000))}),
    EventType(
        "report.rejected",
        "report",
        {"reason": Field(f.text(1000)), "duplicate_of": _opt(f.code)},
    ),
    EventType("report.rated", "report", {"rating": Field(f.one_of(*REPORT_RATINGS))}),
)

CATALOGUE: Final[Mapping[str, EventType]] = {t.name: t for t in _TYPES}


def validate_data(kind: EventType, data: Any, refs: References) -> dict[str, Any]:
    """Check `data` against `kind`; return the normalised fields or raise `Rejection`.

    Checks run in a fixed order (shape, unknown fields, each field in catalogue order,
    then references), so the same bad event always gets the same first error.
    """
    if not isinstance(data, dict):
        raise Rejection(INVALID_DATA, "/data", "must be a JSON object")
    for name in data:
        if name not in kind.fields:
            allowed = ", ".join(kind.fields)
            raise invalid_data(name, f"unknown field for {kind.name} (fields: {allowed})")
    clean: dict[str, Any] = {}
    for name, spec in kind.fields.items():
        value = data.get(name)
        if value is None:
            if spec.required:
                raise invalid_data(name, "is required")
            continue
        try:
            clean[name] = spec.check(value)
        except f.FieldError as exc:
            raise invalid_data(name, str(exc)) from None
    for name, spec in kind.fields.items():
        if spec.ref is None or name not in clean:
            continue
        _check_reference(name, spec.ref, clean[name], refs)
    return clean


def _check_reference(name: str, ref: Ref, value: str, refs: References) -> None:
    if ref == "unit" and not refs.has_unit(value):
        raise Rejection(
            UNKNOWN_UNIT, f"/data/{name}", f"no unit with code {value!r} in the profile"
        )
    if ref == "agency" and not refs.has_agency(value):
        raise Rejection(
            UNKNOWN_AGENCY, f"/data/{name}", f"no agency with code {value!r} in the profile"
        )
    if ref == "owner" and not (refs.has_agency(value) or refs.has_unit(value)):
        raise Rejection(
            UNKNOWN_AGENCY,
            f"/data/{name}",
            f"no agency or unit with code {value!r} in the profile",
        )
