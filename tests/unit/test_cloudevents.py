"""The ingest edge, without I/O: CloudEvents envelopes and fingerprints, key scopes, rate
limits, and the settings that bound ingest (docs/CONTRACT.md §2 and §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_center.access.keys import Principal
from ops_center.access.ratelimit import RateLimiter
from ops_center.domain.errors import Rejection
from ops_center.ingest.cloudevents import (
    MAX_EXTENSIONS,
    CloudEvent,
    fingerprint,
    from_binary,
    identity,
    parse,
)
from ops_center.settings import ENV, Settings


def raw(**changes: Any) -> dict[str, Any]:
    """A valid structured event; keyword changes replace attributes (None removes one)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:cams:north",
        "type": "camera.status",
        "time": "2026-11-22T09:00:00+07:00",
        "subject": "CAM-1",
        "data": {"status": "online", "extra": {"b": 1, "a": [1, 2]}},
    }
    for name, value in changes.items():
        if value is None:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def headers_of(event: dict[str, Any]) -> dict[str, str]:
    return {f"ce-{k}": str(v) for k, v in event.items() if k != "data"}


def rejection(event: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse(event)
    assert info.value.code == "invalid_envelope"
    return info.value


# --- parse ----------------------------------------------------------------------------


def test_parse_returns_the_attributes_and_data() -> None:
    event = parse(raw(traceparent="00-abc-01"))
    assert isinstance(event, CloudEvent)
    assert (event.id, event.source, event.type, event.subject) == (
        "evt-1",
        "urn:cams:north",
        "camera.status",
        "CAM-1",
    )
    assert event.time == "2026-11-22T09:00:00+07:00"
    assert event.data == {"status": "online", "extra": {"b": 1, "a": [1, 2]}}
    assert dict(event.extensions) == {"traceparent": "00-abc-01"}
    assert len(event.digest) == 16


@pytest.mark.parametrize("name", ["id", "source", "type", "time", "subject", "data"])
def test_missing_required_attribute_points_at_it(name: str) -> None:
    error = rejection(raw(**{name: None}))
    assert error.pointer == f"/{name}"
    assert error.detail == "is required"


@pytest.mark.parametrize("value", [None, "0.3", "1", 1.0, 1])
def test_specversion_must_be_1_0(value: Any) -> None:
    assert rejection(raw(specversion=value)).pointer == "/specversion"


@pytest.mark.parametrize("name", ["id", "source", "type", "time", "subject"])
@pytest.mark.parametrize("value", ["", 7, ["x"], {"a": 1}, True])
def test_string_attributes_must_be_non_empty_strings(name: str, value: Any) -> None:
    assert rejection(raw(**{name: value})).pointer == f"/{name}"


@pytest.mark.parametrize(
    ("name", "limit"), [("id", 256), ("source", 512), ("type", 128), ("subject", 64)]
)
def test_attribute_length_limits(name: str, limit: int) -> None:
    assert parse(raw(**{name: "a" * limit}))
    assert rejection(raw(**{name: "a" * (limit + 1)})).pointer == f"/{name}"


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-22T09:00:00+07:00",
        "2026-11-22T02:00:00Z",
        "2026-11-22T02:00:00.5Z",
        "2026-11-22T02:00:00.123456789-03:30",
        "2026-11-22 09:00:00+07:00",
        "2026-11-22t02:00:00Z",
    ],
)
def test_rfc3339_times_with_an_offset_are_accepted(time: str) -> None:
    assert parse(raw(time=time)).time == time.upper()  # T and Z normalised to upper case


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-22T09:00:00",
        "2026-11-22",
        "2026-11-22T09:00+07:00",
        "2026-02-30T09:00:00+07:00",
        "2026-11-22T24:00:00+07:00",
        "22/11/2026 09:00",
        "2026-11-22T09:00:00+0700",
    ],
)
def test_times_without_offset_or_invalid_are_rejected(time: str) -> None:
    assert rejection(raw(time=time)).pointer == "/time"


def test_lower_case_z_offset_is_accepted() -> None:
    assert parse(raw(time="2026-11-22T02:00:00z")).time == "2026-11-22T02:00:00Z"


@pytest.mark.parametrize("subject", ["has space", "-leading-dash", "ô-unicode", "a" * 65])
def test_subject_must_be_a_code(subject: str) -> None:
    assert rejection(raw(subject=subject)).pointer == "/subject"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.ops+json",
        "text/json",
    ],
)
def test_json_datacontenttypes_are_accepted(content_type: str) -> None:
    assert parse(raw(datacontenttype=content_type)).data["status"] == "online"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", 5, ""])
def test_other_datacontenttypes_are_rejected(content_type: Any) -> None:
    assert rejection(raw(datacontenttype=content_type)).pointer == "/datacontenttype"


def test_data_base64_is_rejected_even_beside_data() -> None:
    assert rejection(raw(data_base64="e30=")).pointer == "/data_base64"
    assert rejection(raw(data=None, data_base64="e30=")).pointer == "/data_base64"


def test_null_data_is_left_to_data_validation() -> None:
    assert parse({**raw(), "data": None}).data is None


@pytest.mark.parametrize("value", [[1, 2], "text", 3, {"nested": True}])
def test_data_may_be_any_json_value_at_envelope_level(value: Any) -> None:
    assert parse(raw(data=value)).data == value


@pytest.mark.parametrize("event", [[], "event", 42, None])
def test_an_event_must_be_a_json_object(event: Any) -> None:
    assert rejection(event).pointer == ""


@pytest.mark.parametrize("name", ["Trace", "trace-id", "trace_id", "a" * 21])
def test_extension_names_are_lower_case_alphanumerics(name: str) -> None:
    assert rejection(raw(**{name: "x"})).pointer == f"/{name}"


@pytest.mark.parametrize("value", [1.5, None, [1], {"a": 1}])
def test_extension_values_must_be_scalars(value: Any) -> None:
    event = raw()
    event["myext"] = value
    assert rejection(event).pointer == "/myext"


def test_extension_values_may_be_string_integer_or_boolean() -> None:
    event = parse(raw(a1="x", b2=3, c3=True))
    assert dict(event.extensions) == {"a1": "x", "b2": 3, "c3": True}


def test_at_most_sixteen_extensions() -> None:
    many = {f"ext{n}": "v" for n in range(MAX_EXTENSIONS)}
    assert len(parse(raw(**many)).extensions) == MAX_EXTENSIONS
    error = rejection(raw(**many, extra1="v"))
    assert error.pointer == ""


def test_identity_reports_string_id_and_source_only() -> None:
    assert identity(raw()) == ("evt-1", "urn:cams:north")
    assert identity(raw(id=5, source=None)) == (None, None)
    assert identity(["not", "an", "event"]) == (None, None)


# --- binary mode ----------------------------------------------------------------------


def test_from_binary_reads_ce_headers_case_insensitively() -> None:
    event = raw()
    headers = {k.upper(): v for k, v in headers_of(event).items()}
    headers["Content-Type"] = "application/json"
    headers["X-Other"] = "ignored"
    parsed = from_binary(headers, event["data"])
    assert (parsed.id, parsed.source, parsed.type, parsed.subject) == (
        "evt-1",
        "urn:cams:north",
        "camera.status",
        "CAM-1",
    )
    assert dict(parsed.extensions) == {}


def test_from_binary_checks_the_envelope_like_structured_mode() -> None:
    headers = headers_of(raw(time="2026-11-22T09:00:00"))
    with pytest.raises(Rejection) as info:
        from_binary(headers, {"status": "online"})
    assert (info.value.code, info.value.pointer) == ("invalid_envelope", "/time")


def test_from_binary_without_specversion_is_rejected() -> None:
    headers = headers_of(raw(specversion=None))
    with pytest.raises(Rejection) as info:
        from_binary(headers, {})
    assert info.value.pointer == "/specversion"


# --- fingerprints ---------------------------------------------------------------------


def test_fingerprint_ignores_key_order() -> None:
    event = raw(traceparent="t1")
    shuffled = {k: event[k] for k in reversed(list(event))}
    shuffled["data"] = {"extra": {"a": [1, 2], "b": 1}, "status": "online"}
    assert parse(shuffled).digest == parse(event).digest


def test_fingerprint_is_the_same_in_binary_and_structured_mode() -> None:
    event = raw(traceparent="t1", datacontenttype="application/json")
    binary = headers_of({k: v for k, v in event.items() if k != "datacontenttype"})
    assert from_binary(binary, event["data"]).digest == parse(event).digest


def test_fingerprint_of_integer_extension_is_the_same_in_both_modes() -> None:
    event = raw(priority=5, urgent=True)
    binary = headers_of(event) | {"ce-priority": "5", "ce-urgent": "true"}
    assert from_binary(binary, event["data"]).digest == parse(event).digest


@pytest.mark.parametrize(
    "change",
    [
        {"id": "evt-2"},
        {"source": "urn:cams:south"},
        {"type": "camera.alert"},
        {"time": "2026-11-22T09:00:01+07:00"},
        {"subject": "CAM-2"},
        {"data": {"status": "offline", "extra": {"b": 1, "a": [1, 2]}}},
        {"data": {"status": "online", "extra": {"b": 1, "a": [2, 1]}}},
        {"traceparent": "t2"},
    ],
)
def test_fingerprint_changes_with_any_content(change: dict[str, Any]) -> None:
    assert parse(raw(**change)).digest != parse(raw()).digest


def test_fingerprint_changes_with_dataschema() -> None:
    first = parse(raw(dataschema="https://schemas.example.vn/camera/v1"))
    second = parse(raw(dataschema="https://schemas.example.vn/camera/v2"))
    assert first.digest != second.digest


def test_fingerprint_function_is_deterministic() -> None:
    args = ("i", "s", "t", "2026-11-22T09:00:00Z", "S", {"b": 2, "a": 1}, {"x": 1})
    assert fingerprint(*args) == fingerprint(*args)
    assert fingerprint(*args) == fingerprint(*args[:5], {"a": 1, "b": 2}, {"x": 1})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(data=st.dictionaries(st.text(max_size=6), json_values, max_size=6), seed=st.randoms())
def test_fingerprint_is_independent_of_data_key_order(data: dict[str, Any], seed: Any) -> None:
    items = list(data.items())
    seed.shuffle(items)
    assert parse(raw(data=dict(items))).digest == parse(raw(data=data)).digest


# --- key scopes (docs/CONTRACT.md §7) -----------------------------------------------------------


def integration(*scopes: str, sources: tuple[str, ...] = ()) -> Principal:
    return Principal("int", "integration", scopes=scopes, sources=sources)


@pytest.mark.parametrize(
    ("scopes", "event_type", "allowed"),
    [
        (("camera.*",), "camera.status", True),
        (("camera.*",), "camera.alert", True),
        (("camera.*",), "radio.station.status", False),
        (("camera.*",), "cameras.status", False),
        (("camera.status",), "camera.status", True),
        (("camera.status",), "camera.alert", False),
        (("radio.*", "kpi.reported"), "kpi.reported", True),
        (("radio.*", "kpi.reported"), "kpi.defined", False),
        (("*",), "dossier.completed", True),
        (("Camera.*",), "camera.status", False),
        ((), "camera.status", False),
    ],
)
def test_integration_key_type_patterns(
    scopes: tuple[str, ...], event_type: str, allowed: bool
) -> None:
    assert integration(*scopes).may_send(event_type, "urn:any") is allowed


@pytest.mark.parametrize(
    ("sources", "source", "allowed"),
    [
        ((), "urn:anything", True),
        (("urn:cams:*",), "urn:cams:north", True),
        (("urn:cams:*",), "urn:other:north", False),
        (("urn:cams:north",), "urn:cams:northwest", False),
        (("urn:a", "urn:b:*"), "urn:b:1", True),
        (("URN:CAMS:*",), "urn:cams:1", False),
    ],
)
def test_integration_key_source_patterns(
    sources: tuple[str, ...], source: str, allowed: bool
) -> None:
    key = integration("camera.*", sources=sources)
    assert key.may_send("camera.status", source) is allowed
    assert key.may_send("radio.station.status", source) is False


def test_admin_may_send_anything_viewer_and_operator_nothing() -> None:
    assert Principal("a", "admin").may_send("anything.at.all", "urn:x")
    assert not Principal("v", "viewer", scopes=("*",)).may_send("camera.status", "urn:x")
    assert not Principal("o", "operator", scopes=("*",)).may_send("camera.status", "urn:x")


@pytest.mark.parametrize(
    ("role", "ingest", "read", "act"),
    [
        ("integration", True, False, False),
        ("viewer", False, True, False),
        ("operator", False, True, True),
        ("admin", True, True, True),
    ],
)
def test_role_permissions(role: Any, ingest: bool, read: bool, act: bool) -> None:
    principal = Principal("k", role)
    assert (principal.can("ingest"), principal.can("read"), principal.can("act")) == (
        ingest,
        read,
        act,
    )


# --- rate limits --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_without_rate_are_never_limited() -> None:
    limiter = RateLimiter(clock=FakeClock())
    assert all(limiter.admit("k", None, 10_000) == 0 for _ in range(100))
    assert limiter.admit("k", 0, 10_000) == 0


def test_burst_is_admitted_then_refused_with_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst_seconds=2, clock=clock)
    assert limiter.admit("k", 10, 20) == 0  # the whole burst (10/s * 2 s)
    wait = limiter.admit("k", 10, 1)
    assert wait >= 1
    clock.now += wait
    assert limiter.admit("k", 10, 1) == 0


def test_a_batch_larger_than_the_burst_is_admitted_once_and_leaves_a_debt() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst_seconds=2, clock=clock)
    assert limiter.admit("k", 1, 5) == 0  # capacity 2, now 3 in debt
    assert limiter.admit("k", 1, 1) == 4  # 3 s to repay the debt, then one more token
    clock.now += 3
    assert limiter.admit("k", 1, 1) > 0  # exactly zero tokens: still refused
    clock.now += 0.5
    assert limiter.admit("k", 1, 1) == 0


def test_refused_requests_do_not_consume_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst_seconds=1, clock=clock)
    limiter.admit("k", 2, 4)  # tokens 2 -> -2
    for _ in range(10):
        assert limiter.admit("k", 2, 100) > 0
    clock.now += 1.01
    assert limiter.admit("k", 2, 1) == 0


def test_buckets_are_per_key() -> None:
    limiter = RateLimiter(burst_seconds=1, clock=FakeClock())
    assert limiter.admit("a", 1, 5) == 0
    assert limiter.admit("a", 1, 1) > 0
    assert limiter.admit("b", 1, 1) == 0


def test_bucket_refills_up_to_capacity_only() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst_seconds=2, clock=clock)
    assert limiter.admit("k", 1, 1) == 0
    clock.now += 3600  # an hour idle refills at most 2 tokens
    assert limiter.admit("k", 1, 2) == 0
    assert limiter.admit("k", 1, 1) > 0


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.01, 1000),
    burst=st.floats(0.1, 10),
    first=st.integers(1, 5000),
    second=st.integers(1, 5000),
)
def test_waiting_retry_after_seconds_is_always_enough(
    rate: float, burst: float, first: int, second: int
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst_seconds=burst, clock=clock)
    assert limiter.admit("k", rate, first) == 0  # a full bucket admits any request
    wait = limiter.admit("k", rate, second)
    if wait:
        assert isinstance(wait, int)
        assert wait >= 1
        clock.now += wait
        assert limiter.admit("k", rate, second) == 0


# --- settings -----------------------------------------------------------------------------


def test_settings_from_empty_environment_are_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().database_url is None
    assert Settings().max_body_bytes == 8 * 1024 * 1024


def test_settings_from_env_convert_each_type() -> None:
    settings_ = Settings.from_env(
        {
            "OPS_CENTER_HOST": "0.0.0.0",
            "OPS_CENTER_PORT": "9090",
            "OPS_CENTER_DATA_DIR": "/var/lib/ops",
            "DATABASE_URL": "postgresql://u@db:5432/ops",
            "REDIS_URL": "redis://cache:6379/0",
            "OPS_CENTER_PROFILE": "/etc/ops/profile.json",
            "OPS_CENTER_MAX_BODY_BYTES": "1024",
            "OPS_CENTER_MAX_REQUEST_EVENTS": "10",
            "OPS_CENTER_COMMIT_MAX_EVENTS": "50",
            "OPS_CENTER_COMMIT_MAX_WAIT_MS": "0.5",
            "OPS_CENTER_COMMIT_MAX_QUEUE": "7",
            "OPS_CENTER_AGGREGATE_CACHE_SIZE": "99",
            "OPS_CENTER_KEY_CACHE_SECONDS": "0",
            "OPS_CENTER_UNAVAILABLE_RETRY_AFTER": "3",
            "OPS_CENTER_RATE_BURST_SECONDS": "1.5",
        }
    )
    assert settings_ == Settings(
        host="0.0.0.0",
        port=9090,
        data_dir=Path("/var/lib/ops"),
        database_url="postgresql://u@db:5432/ops",
        redis_url="redis://cache:6379/0",
        profile=Path("/etc/ops/profile.json"),
        max_body_bytes=1024,
        max_request_events=10,
        commit_max_events=50,
        commit_max_wait_ms=0.5,
        commit_max_queue=7,
        aggregate_cache_size=99,
        key_cache_seconds=0.0,
        unavailable_retry_after=3,
        rate_burst_seconds=1.5,
    )
    assert isinstance(settings_.port, int)
    assert isinstance(settings_.key_cache_seconds, float)
    assert isinstance(settings_.data_dir, Path)


def test_settings_from_env_ignore_empty_and_unknown_variables() -> None:
    settings_ = Settings.from_env({"OPS_CENTER_PORT": "", "OPS_CENTER_NOPE": "1", "PATH": "/x"})
    assert settings_ == Settings()


def test_settings_from_env_refuse_a_non_number() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        Settings.from_env({"OPS_CENTER_MAX_BODY_BYTES": "8MB"})


def test_every_setting_has_an_environment_variable() -> None:
    assert set(ENV) == set(Settings.__dataclass_fields__)
    assert len(set(ENV.values())) == len(ENV)


def test_settings_replace_ignores_none() -> None:
    base = Settings(port=1234)
    assert base.replace(port=None, max_body_bytes=5) == Settings(port=1234, max_body_bytes=5)
