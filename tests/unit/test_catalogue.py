"""The event catalogue (docs/CONTRACT.md §3) and `catalogue.validate_data`, field by field. No I/O:
references are checked against an in-memory stand-in for the province profile."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops_center.domain.errors import Rejection
from ops_center.ingest import fields as f
from ops_center.ingest.catalogue import CATALOGUE, EventType, validate_data


class Refs:
    """Units and agencies known to validation (what the profile provides)."""

    units = frozenset({"MS", "MS-D01", "MS-D01-C01"})
    agencies = frozenset({"SNV", "STTTT"})

    def has_unit(self, code: str) -> bool:
        return code in self.units

    def has_agency(self, code: str) -> bool:
        return code in self.agencies


REFS = Refs()

#: docs/CONTRACT.md §3: type -> (subject kind, required fields, optional fields).
CONTRACT: dict[str, tuple[str, set[str], set[str]]] = {
    "radio.station.registered": ("station", {"name", "unit", "clusters"}, {"lat", "lon"}),
    "radio.station.status": ("station", {"status"}, set()),
    "radio.broadcast.started": ("station", {"broadcast_id", "program", "kind"}, set()),
    "radio.broadcast.ended": ("station", {"broadcast_id"}, set()),
    "radio.cluster.fault": ("station", {"cluster", "fault"}, set()),
    "radio.cluster.restored": ("station", {"cluster"}, set()),
    "camera.registered": ("camera", {"name", "unit", "kind"}, {"lat", "lon"}),
    "camera.status": ("camera", {"status"}, set()),
    "camera.alert": ("camera", {"alert_id", "category", "severity"}, {"plate", "snapshot_url"}),
    "dossier.received": (
        "dossier",
        {"procedure_code", "level", "channel", "agency", "unit", "due_at"},
        {"procedure_name", "digitised", "fee"},
    ),
    "dossier.supplement_requested": ("dossier", set(), {"reason"}),
    "dossier.completed": ("dossier", {"result"}, {"e_result", "paid_online"}),
    "dossier.withdrawn": ("dossier", set(), {"reason"}),
    "dossier.rated": ("dossier", {"rating"}, set()),
    "kpi.defined": (
        "indicator",
        {"name", "measure", "owner", "pillar", "direction", "target", "deadline"},
        {"reference"},
    ),
    "kpi.reported": ("indicator", {"period", "value"}, set()),
    "kpi.target_revised": ("indicator", {"target", "deadline"}, set()),
    "report.received": (
        "report",
        {"category", "title", "unit", "channel"},
        {"description", "lat", "lon", "photo_url"},
    ),
    "report.assigned": ("report", {"agency", "due_at"}, set()),
    "report.reassigned": ("report", {"agency", "due_at"}, {"reason"}),
    "report.resolved": ("report", {"result"}, set()),
    "report.rejected": ("report", {"reason"}, {"duplicate_of"}),
    "report.rated": ("report", {"rating"}, set()),
}

#: docs/CONTRACT.md §3: every enumerated field and its exact values.
ENUMS: list[tuple[str, str, tuple[str, ...]]] = [
    ("radio.station.status", "status", ("online", "offline")),
    ("radio.broadcast.started", "kind", ("normal", "priority", "emergency")),
    ("radio.cluster.fault", "fault", ("power", "network", "speaker")),
    ("camera.registered", "kind", ("security", "traffic", "public")),
    ("camera.status", "status", ("online", "offline", "degraded")),
    (
        "camera.alert",
        "category",
        ("intrusion", "fire", "crowd", "traffic_violation", "watchlist_plate", "tamper"),
    ),
    ("camera.alert", "severity", ("info", "warning", "critical")),
    ("dossier.received", "level", ("full_online", "partial_online", "offline")),
    ("dossier.received", "channel", ("online", "counter", "postal")),
    ("dossier.completed", "result", ("approved", "refused")),
    ("dossier.rated", "rating", ("very_satisfied", "satisfied", "dissatisfied")),
    (
        "kpi.defined",
        "pillar",
        ("digital_government", "digital_economy", "digital_society", "infrastructure"),
    ),
    ("kpi.defined", "direction", ("increase", "decrease")),
    (
        "report.received",
        "category",
        (
            "traffic",
            "environment",
            "urban_order",
            "security",
            "utilities",
            "public_health",
            "other",
        ),
    ),
    ("report.received", "channel", ("app", "hotline", "web", "social")),
    ("report.rated", "rating", ("satisfied", "dissatisfied")),
]

#: Valid data with every field, for every type.
VALID: dict[str, dict[str, Any]] = {
    "radio.station.registered": {
        "name": "Đài xã",
        "unit": "MS-D01-C01",
        "clusters": 4,
        "lat": 21.2,
        "lon": 106.1,
    },
    "radio.station.status": {"status": "online"},
    "radio.broadcast.started": {"broadcast_id": "B1", "program": "Tin sáng", "kind": "normal"},
    "radio.broadcast.ended": {"broadcast_id": "B1"},
    "radio.cluster.fault": {"cluster": 2, "fault": "power"},
    "radio.cluster.restored": {"cluster": 2},
    "camera.registered": {
        "name": "Cam 1",
        "unit": "MS-D01",
        "kind": "traffic",
        "lat": -12.5,
        "lon": -170.0,
    },
    "camera.status": {"status": "degraded"},
    "camera.alert": {
        "alert_id": "A1",
        "category": "watchlist_plate",
        "severity": "critical",
        "plate": "98A-123.45",
        "snapshot_url": "http://cams.local/1.jpg",
    },
    "dossier.received": {
        "procedure_code": "1.001234",
        "procedure_name": "Cấp phép",
        "level": "partial_online",
        "channel": "postal",
        "agency": "SNV",
        "unit": "MS-D01-C01",
        "due_at": "2026-11-27T17:00:00+07:00",
        "digitised": True,
        "fee": False,
    },
    "dossier.supplement_requested": {"reason": "thiếu giấy tờ"},
    "dossier.completed": {"result": "refused", "e_result": False, "paid_online": True},
    "dossier.withdrawn": {"reason": "rút"},
    "dossier.rated": {"rating": "very_satisfied"},
    "kpi.defined": {
        "name": "Tỷ lệ",
        "measure": "%",
        "owner": "STTTT",
        "pillar": "infrastructure",
        "direction": "decrease",
        "target": 12.5,
        "deadline": "2026-12-31",
        "reference": "NQ 57",
    },
    "kpi.reported": {"period": "2026-Q3", "value": -3},
    "kpi.target_revised": {"target": 90, "deadline": "2027-06-30"},
    "report.received": {
        "category": "environment",
        "title": "Cống thoát nước bị tắc",
        "description": "Nước ngập sau mưa, mùi hôi",
        "unit": "MS-D01-C01",
        "channel": "app",
        "lat": 21.24,
        "lon": 106.25,
        "photo_url": "https://app.example.vn/p/1.jpg",
    },
    "report.assigned": {"agency": "STTTT", "due_at": "2026-11-24T17:00:00+07:00"},
    "report.reassigned": {
        "agency": "MS-D01-C01",
        "due_at": "2026-11-25T17:00:00+07:00",
        "reason": "thuộc thẩm quyền xã",
    },
    "report.resolved": {"result": "Đã nạo vét cống"},
    "report.rejected": {"reason": "trùng phản ánh khác", "duplicate_of": "PA-0001"},
    "report.rated": {"rating": "satisfied"},
}


def kind(name: str) -> EventType:
    return CATALOGUE[name]


def invalid(event_type: str, **changes: Any) -> Rejection:
    """The rejection of VALID data of `event_type` with `changes` applied."""
    data = {**VALID[event_type], **changes}
    with pytest.raises(Rejection) as info:
        validate_data(kind(event_type), data, REFS)
    return info.value


# --- the catalogue itself -----------------------------------------------------------


def test_catalogue_has_exactly_the_contract_types() -> None:
    assert set(CATALOGUE) == set(CONTRACT)


@pytest.mark.parametrize("event_type", list(CONTRACT))
def test_type_subject_and_fields_match_the_contract(event_type: str) -> None:
    subject, required, optional = CONTRACT[event_type]
    spec = kind(event_type)
    assert spec.name == event_type
    assert spec.subject == subject
    assert {n for n, fld in spec.fields.items() if fld.required} == required
    assert {n for n, fld in spec.fields.items() if not fld.required} == optional


@pytest.mark.parametrize(("event_type", "field", "values"), ENUMS)
def test_enumerations_accept_exactly_the_contract_values(
    event_type: str, field: str, values: tuple[str, ...]
) -> None:
    for value in values:
        data = {**VALID[event_type], field: value}
        assert validate_data(kind(event_type), data, REFS)[field] == value
    error = invalid(event_type, **{field: "unlisted"})
    assert (error.code, error.pointer) == ("invalid_data", f"/data/{field}")
    assert error.detail == f"must be one of {', '.join(values)}"
    for wrong in (values[0].upper(), f" {values[0]}", 1, [values[0]]):
        assert invalid(event_type, **{field: wrong}).pointer == f"/data/{field}"


# --- validate_data ---------------------------------------------------------------------


@pytest.mark.parametrize("event_type", list(VALID))
def test_valid_data_of_every_type_is_returned(event_type: str) -> None:
    assert validate_data(kind(event_type), VALID[event_type], REFS) == VALID[event_type]


@pytest.mark.parametrize("data", [None, [], "status", 3, True])
def test_data_must_be_an_object(data: Any) -> None:
    with pytest.raises(Rejection) as info:
        validate_data(kind("camera.status"), data, REFS)
    assert (info.value.code, info.value.pointer) == ("invalid_data", "/data")


def test_unknown_field_is_rejected_naming_the_fields() -> None:
    error = invalid("camera.status", colour="red")
    assert (error.code, error.pointer) == ("invalid_data", "/data/colour")
    assert "status" in error.detail


def test_misspelt_optional_field_is_not_silently_dropped() -> None:
    assert invalid("camera.alert", snapshot="http://x/1.jpg").pointer == "/data/snapshot"


@pytest.mark.parametrize(
    ("event_type", "field"),
    [(t, name) for t, (_, required, _) in CONTRACT.items() for name in sorted(required)],
)
def test_each_required_field_is_required(event_type: str, field: str) -> None:
    data = {k: v for k, v in VALID[event_type].items() if k != field}
    with pytest.raises(Rejection) as info:
        validate_data(kind(event_type), data, REFS)
    assert (info.value.code, info.value.pointer) == ("invalid_data", f"/data/{field}")
    assert info.value.detail == "is required"
    assert invalid(event_type, **{field: None}).detail == "is required"


@pytest.mark.parametrize(
    ("event_type", "field"),
    [(t, name) for t, (_, _, optional) in CONTRACT.items() for name in sorted(optional)],
)
def test_optional_fields_may_be_absent_or_null(event_type: str, field: str) -> None:
    data = {k: v for k, v in VALID[event_type].items() if k != field}
    assert validate_data(kind(event_type), data, REFS) == data
    assert validate_data(kind(event_type), {**data, field: None}, REFS) == data


def test_unknown_field_is_reported_before_missing_required() -> None:
    with pytest.raises(Rejection) as info:
        validate_data(kind("camera.registered"), {"colour": "red"}, REFS)
    assert info.value.pointer == "/data/colour"


def test_field_errors_are_reported_before_reference_errors() -> None:
    error = invalid("camera.registered", unit="NOPE", kind="drone")
    assert (error.code, error.pointer) == ("invalid_data", "/data/kind")


def test_text_fields_are_stripped() -> None:
    data = {**VALID["camera.registered"], "name": "  Cam 1\n"}
    assert validate_data(kind("camera.registered"), data, REFS)["name"] == "Cam 1"


@pytest.mark.parametrize(
    ("event_type", "field", "value", "detail"),
    [
        ("camera.registered", "name", "", "must not be empty"),
        ("camera.registered", "name", "   ", "must not be empty"),
        ("camera.registered", "name", "x" * 201, "must be at most 200 characters"),
        ("camera.registered", "name", 5, "must be a string"),
        ("camera.alert", "plate", "X" * 21, "must be at most 20 characters"),
        ("kpi.defined", "measure", "m" * 41, "must be at most 40 characters"),
        ("dossier.withdrawn", "reason", "r" * 1001, "must be at most 1000 characters"),
        ("radio.broadcast.ended", "broadcast_id", "b" * 129, "must be at most 128 characters"),
        ("report.received", "title", "t" * 201, "must be at most 200 characters"),
        ("report.received", "description", "d" * 4001, "must be at most 4000 characters"),
        ("report.resolved", "result", " ", "must not be empty"),
        ("report.rejected", "reason", "r" * 1001, "must be at most 1000 characters"),
        ("report.reassigned", "reason", "r" * 1001, "must be at most 1000 characters"),
    ],
)
def test_text_limits(event_type: str, field: str, value: Any, detail: str) -> None:
    error = invalid(event_type, **{field: value})
    assert (error.pointer, error.detail) == (f"/data/{field}", detail)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (0, "must be >= 1"),
        (10_001, "must be <= 10000"),
        (2.5, "must be an integer"),
        ("3", "must be an integer"),
        (True, "must be an integer"),
    ],
)
def test_integer_bounds_and_type(value: Any, detail: str) -> None:
    error = invalid("radio.station.registered", clusters=value)
    assert (error.code, error.pointer, error.detail) == ("invalid_data", "/data/clusters", detail)


def test_whole_float_is_accepted_as_integer() -> None:
    data = {**VALID["radio.cluster.fault"], "cluster": 3.0}
    clean = validate_data(kind("radio.cluster.fault"), data, REFS)
    assert clean["cluster"] == 3
    assert isinstance(clean["cluster"], int)


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("dossier.received", "digitised"),
        ("dossier.received", "fee"),
        ("dossier.completed", "e_result"),
        ("dossier.completed", "paid_online"),
    ],
)
@pytest.mark.parametrize("value", [0, 1, "true", "yes", [True]])
def test_flags_must_be_json_booleans(event_type: str, field: str, value: Any) -> None:
    error = invalid(event_type, **{field: value})
    assert (error.code, error.pointer, error.detail) == (
        "invalid_data",
        f"/data/{field}",
        "must be true or false",
    )


@pytest.mark.parametrize("value", ["80", True, [80], {"v": 80}])
def test_numbers_must_be_json_numbers(value: Any) -> None:
    assert invalid("kpi.reported", value=value).detail == "must be a number"


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [("lat", (-90, 90, 0.0, 21.03), (-90.01, 90.5, 1000)), ("lon", (-180, 180), (180.1, -181))],
)
def test_coordinate_ranges(field: str, ok: tuple[float, ...], bad: tuple[float, ...]) -> None:
    for event_type in ("camera.registered", "report.received"):
        for value in ok:
            data = {**VALID[event_type], field: value}
            assert validate_data(kind(event_type), data, REFS)[field] == value
        for value in bad:
            error = invalid(event_type, **{field: value})
            assert (error.code, error.pointer) == ("invalid_data", f"/data/{field}")


@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "31/12/2026", "20261231", 2026])
def test_deadline_must_be_a_date(value: Any) -> None:
    for event_type in ("kpi.defined", "kpi.target_revised"):
        error = invalid(event_type, deadline=value)
        assert (error.pointer, error.detail) == ("/data/deadline", "must be a date YYYY-MM-DD")


@pytest.mark.parametrize("value", ["2026", "2026-01", "2026-12", "2026-Q1", "2026-Q4", "2026-H2"])
def test_valid_periods(value: str) -> None:
    data = {**VALID["kpi.reported"], "period": value}
    assert validate_data(kind("kpi.reported"), data, REFS)["period"] == value


@pytest.mark.parametrize(
    "value",
    ["2026-13", "2026-00", "2026-Q5", "2026-Q0", "2026-H3", "26", "2026-1", "2026 Q1", 2026],
)
def test_invalid_periods(value: Any) -> None:
    error = invalid("kpi.reported", period=value)
    assert (error.code, error.pointer) == ("invalid_data", "/data/period")


@pytest.mark.parametrize("value", ["ftp://cams/1.jpg", "cams/1.jpg", "javascript:alert(1)", ""])
def test_snapshot_url_must_be_http(value: str) -> None:
    error = invalid("camera.alert", snapshot_url=value)
    assert (error.code, error.pointer) == ("invalid_data", "/data/snapshot_url")
    error = invalid("report.received", photo_url=value)
    assert (error.code, error.pointer) == ("invalid_data", "/data/photo_url")


@pytest.mark.parametrize(
    "value", ["2026-11-27T17:00:00", "2026-11-27", "tomorrow", "2026-11-31T17:00:00+07:00", 1]
)
def test_due_at_must_be_a_time_with_offset(value: Any) -> None:
    for event_type in ("dossier.received", "report.assigned", "report.reassigned"):
        error = invalid(event_type, due_at=value)
        assert (error.code, error.pointer) == ("invalid_data", "/data/due_at")


@pytest.mark.parametrize("value", ["has space", "", "-x", "ô", "x" * 65])
def test_code_fields_must_be_codes(value: str) -> None:
    error = invalid("dossier.received", procedure_code=value)
    assert (error.code, error.pointer) == ("invalid_data", "/data/procedure_code")
    error = invalid("report.rejected", duplicate_of=value)
    assert (error.code, error.pointer) == ("invalid_data", "/data/duplicate_of")


# --- references ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type",
    ["radio.station.registered", "camera.registered", "dossier.received", "report.received"],
)
def test_unknown_unit(event_type: str) -> None:
    error = invalid(event_type, unit="XX-99")
    assert (error.code, error.pointer) == ("unknown_unit", "/data/unit")
    assert "XX-99" in error.detail


def test_unknown_dossier_agency() -> None:
    error = invalid("dossier.received", agency="SXX")
    assert (error.code, error.pointer) == ("unknown_agency", "/data/agency")


def test_a_unit_code_is_not_an_agency() -> None:
    assert invalid("dossier.received", agency="MS-D01").code == "unknown_agency"


@pytest.mark.parametrize("owner", ["SNV", "MS", "MS-D01-C01"])
def test_kpi_owner_may_be_an_agency_or_a_unit(owner: str) -> None:
    data = {**VALID["kpi.defined"], "owner": owner}
    assert validate_data(kind("kpi.defined"), data, REFS)["owner"] == owner


def test_unknown_kpi_owner_is_unknown_agency() -> None:
    error = invalid("kpi.defined", owner="NOBODY")
    assert (error.code, error.pointer) == ("unknown_agency", "/data/owner")


@pytest.mark.parametrize("event_type", ["report.assigned", "report.reassigned"])
@pytest.mark.parametrize("agency", ["SNV", "MS-D01-C01"])
def test_a_report_is_assigned_to_an_agency_or_a_commune(event_type: str, agency: str) -> None:
    data = {**VALID[event_type], "agency": agency}
    assert validate_data(kind(event_type), data, REFS)["agency"] == agency


@pytest.mark.parametrize("event_type", ["report.assigned", "report.reassigned"])
def test_a_report_assigned_to_nobody_known_is_unknown_agency(event_type: str) -> None:
    error = invalid(event_type, agency="NOBODY")
    assert (error.code, error.pointer) == ("unknown_agency", "/data/agency")
    assert "NOBODY" in error.detail


# --- the field validators ------------------------------------------------------------------


def test_calendar_date_refuses_iso_week_dates() -> None:
    with pytest.raises(f.FieldError):
        f.calendar_date("2026-W01-1")


def test_parse_time_returns_an_aware_datetime() -> None:
    parsed = f.parse_time("2026-11-22T09:00:00+07:00")
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 7 * 3600
    assert f.timestamp("2026-11-22T02:00:00Z") == "2026-11-22T02:00:00Z"


@given(st.dates())
def test_every_calendar_date_is_accepted(day: Any) -> None:
    assert f.calendar_date(day.isoformat()) == day.isoformat()


@given(st.integers(1000, 9999), st.integers(1, 12), st.integers(1, 4), st.integers(1, 2))
def test_every_period_form_is_accepted(year: int, month: int, quarter: int, half: int) -> None:
    for value in (f"{year}", f"{year}-{month:02d}", f"{year}-Q{quarter}", f"{year}-H{half}"):
        assert f.period(value) == value


@given(st.integers(-(10**6), 10**6))
def test_integer_bounds_hold_for_any_integer(value: int) -> None:
    check = f.integer(1, 10_000)
    if 1 <= value <= 10_000:
        assert check(value) == value
    else:
        with pytest.raises(f.FieldError):
            check(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_latitude_accepts_exactly_minus_90_to_90(value: float) -> None:
    if -90 <= value <= 90:
        assert f.latitude(value) == value
    else:
        with pytest.raises(f.FieldError):
            f.latitude(value)


def test_numbers_refuse_non_finite_floats() -> None:
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(f.FieldError, match="must be finite"):
            f.number()(value)
