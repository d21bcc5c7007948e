"""The projections' pure rules: KPI status, reporting periods, local buckets, time parameters.

No I/O here (these sit beside the projection tests they explain).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ops_center.domain.kpi_status import kpi_status
from ops_center.province.calendar import (
    TZ,
    buckets,
    count_buckets,
    parse_instant,
    period_bounds,
    period_key,
)

TODAY = date(2026, 11, 22)
DEADLINE = date(2026, 12, 31)


@pytest.mark.parametrize(
    ("direction", "first", "latest", "today", "expected"),
    [
        ("increase", ("2026-09", 50.0), ("2026-10", 80.0), TODAY, "met"),
        ("increase", ("2026-09", 50.0), ("2026-10", 80.0), date(2027, 3, 1), "met"),
        ("decrease", ("2026-09", 30.0), ("2026-10", 20.0), TODAY, "met"),
        ("increase", ("2026-09", 50.0), ("2026-10", 79.0), date(2027, 1, 1), "off_track"),
        # 50 -> 60 in 31 days; 61 more days to the deadline: about 79.7 < 80
        ("increase", ("2026-09", 50.0), ("2026-10", 60.0), TODAY, "off_track"),
        # 50 -> 70 in 31 days: well on the way
        ("increase", ("2026-09", 50.0), ("2026-10", 70.0), TODAY, "on_track"),
        ("decrease", ("2026-09", 40.0), ("2026-10", 35.0), TODAY, "off_track"),
        ("decrease", ("2026-09", 40.0), ("2026-10", 25.0), TODAY, "on_track"),
        # one report: nothing to extrapolate from
        ("increase", ("2026-10", 10.0), ("2026-10", 10.0), TODAY, "on_track"),
        ("increase", None, None, TODAY, "on_track"),
        ("increase", None, None, date(2027, 1, 1), "off_track"),
    ],
)
def test_kpi_status_rule(
    direction: str,
    first: tuple[str, float] | None,
    latest: tuple[str, float] | None,
    today: date,
    expected: str,
) -> None:
    assert (
        kpi_status(
            direction, 80.0 if direction == "increase" else 20.0, DEADLINE, first, latest, today
        )
        == expected
    )


def test_kpi_status_on_the_deadline_day_is_not_yet_past() -> None:
    assert kpi_status("increase", 80.0, DEADLINE, None, None, DEADLINE) == "on_track"


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        ("2026-12", date(2026, 12, 1), date(2026, 12, 31)),
        ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026-H1", date(2026, 1, 1), date(2026, 6, 30)),
    ],
)
def test_period_bounds(period: str, start: date, end: date) -> None:
    assert period_bounds(period) == (start, end)


def test_periods_sort_by_last_day_then_shorter_last() -> None:
    periods = ["2026", "2026-Q4", "2026-12", "2026-H1", "2026-10", "2026-Q3"]
    assert sorted(periods, key=period_key) == [
        "2026-H1",
        "2026-Q3",
        "2026-10",
        "2026",
        "2026-Q4",
        "2026-12",
    ]


def test_period_bounds_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="not a period"):
        period_bounds("2026-W01")


def test_buckets_follow_the_local_calendar_and_are_clipped() -> None:
    start = datetime(2026, 10, 31, 20, 0, tzinfo=TZ)
    end = datetime(2026, 12, 2, 1, 0, tzinfo=TZ)
    months = buckets(start, end, "month")
    assert [(s.isoformat(), e.isoformat()) for s, e in months] == [
        ("2026-10-31T20:00:00+07:00", "2026-11-01T00:00:00+07:00"),
        ("2026-11-01T00:00:00+07:00", "2026-12-01T00:00:00+07:00"),
        ("2026-12-01T00:00:00+07:00", "2026-12-02T01:00:00+07:00"),
    ]
    days = buckets(start, end, "day")
    assert len(days) == 33
    assert days[1][0] == datetime(2026, 11, 1, tzinfo=TZ)
    # a UTC start is read in Vietnam time: 17:00Z is midnight in Hanoi
    utc_days = buckets(datetime(2026, 11, 1, 17, 0, tzinfo=UTC), end, "day")
    assert utc_days[0][0].astimezone(TZ) == datetime(2026, 11, 2, tzinfo=TZ)


@pytest.mark.parametrize("bucket", ["hour", "day", "month"])
@pytest.mark.parametrize("hours", [1, 5, 24, 100, 1_000, 10_000])
def test_count_buckets_matches_buckets(bucket: str, hours: int) -> None:
    start = datetime(2026, 1, 30, 22, 30, tzinfo=TZ)
    end = start + timedelta(hours=hours, minutes=7)
    assert count_buckets(start, end, bucket) == len(buckets(start, end, bucket))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-16T09:00:00+07:00", datetime(2026, 11, 16, 9, tzinfo=TZ)),
        ("2026-11-16T02:00:00Z", datetime(2026, 11, 16, 9, tzinfo=TZ)),
        ("2026-11-16T02:00:00.123456789z", datetime(2026, 11, 16, 2, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-16T09:00", datetime(2026, 11, 16, 9, tzinfo=TZ)),
        ("2026-11-16", datetime(2026, 11, 16, tzinfo=TZ)),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-11-16T25:00", "1731740400"])
def test_parse_instant_rejects_bad_times(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_instant(text)
