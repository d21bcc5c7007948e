"""The what-if's pure parts: thresholds by their settings names, the comparison."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.alarms.whatif import (
    THRESHOLD_NAMES,
    BadThreshold,
    Outcome,
    WhatIf,
    answer,
    in_force,
    overridden,
    summary,
    thresholds_of,
)
from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.settings import Settings

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)


def test_the_thresholds_in_force_are_the_settings_by_their_names() -> None:
    values = in_force(Settings(alarm_offline_grace_seconds=42.0))
    assert values == {
        "offline_grace_seconds": 42.0,
        "alert_hold_seconds": 1800.0,
        "dossier_grace_seconds": 0.0,
    }
    assert thresholds_of(values) == Thresholds(offline_grace=timedelta(seconds=42))


def test_overrides_keep_the_others_and_refuse_bad_names_and_values() -> None:
    base = dict.fromkeys(THRESHOLD_NAMES, 1.0)
    assert overridden(base, {"alert_hold_seconds": 60}) == {**base, "alert_hold_seconds": 60.0}
    with pytest.raises(BadThreshold) as unknown:
        overridden(base, {"zz": 1, "offline_grace_seconds": 2, "aa": 3})
    assert unknown.value.names == ["aa", "zz"]
    for bad in (-1, float("nan"), float("inf"), "10", True, None, 10**9):
        with pytest.raises(BadThreshold) as refused:
            overridden(base, {"dossier_grace_seconds": bad})
        assert refused.value.names == ["dossier_grace_seconds"]


def test_summary_compares_on_cause_subject_unit_and_times() -> None:
    a = Outcome("device_offline", "CAM-1", "U", T0, None)
    b = Outcome("cluster_fault", "ST-1", "U", T0, T0 + timedelta(minutes=5))
    b_later = Outcome("cluster_fault", "ST-1", "U", T0, T0 + timedelta(minutes=6))
    assert summary([a, b], [a, b]) == {
        "would_raise": 2,
        "raised": 2,
        "only_what_if": 0,
        "only_raised": 0,
    }
    assert summary([a, b_later], [b]) == {
        "would_raise": 2,
        "raised": 1,
        "only_what_if": 2,
        "only_raised": 1,
    }
    body = answer(T0, T0 + timedelta(hours=1), {"offline_grace_seconds": 1.0}, [b], [])
    assert body["would_raise"] == [
        {
            "cause": "cluster_fault",
            "subject": "ST-1",
            "unit": "U",
            "raised_at": "2026-11-20T08:00:00+07:00",
            "resolved_at": "2026-11-20T08:05:00+07:00",
        }
    ]
    assert body["summary"]["only_what_if"] == 1


def test_a_period_ending_in_the_future_is_judged_now() -> None:
    unit_of = load_profile().unit_of
    end = T0 + timedelta(days=1)
    assert WhatIf(Thresholds(), unit_of, T0, end, T0 + timedelta(hours=1)).until == (
        T0 + timedelta(hours=1)
    )
    assert WhatIf(Thresholds(), unit_of, T0, end, end + timedelta(days=1)).until == end
    assert WhatIf(Thresholds(), unit_of, T0, end).finish() == []
