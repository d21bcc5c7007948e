"""The shortcuts of the projections' folds give what the plain functions give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ops_center.province.calendar import TZ
from projections.service_index import _Changes
from projections.services import local_month

ZONES = st.sampled_from(
    [timezone(timedelta(hours=7)), UTC, TZ, timezone(timedelta(hours=-5)), timezone.min]
)
MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES
)


@given(st.lists(MOMENTS, min_size=1, max_size=30))
def test_the_index_month_lookup_is_the_local_month(moments: list[datetime]) -> None:
    changes = _Changes()
    for moment in [*moments, *moments]:  # the second time from the lookup
        assert changes.month(moment) == local_month(moment)


def test_the_index_month_lookup_at_the_edges_of_local_months() -> None:
    changes = _Changes()
    plus7 = timezone(timedelta(hours=7))
    for moment in (
        datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=plus7),
        datetime(2026, 12, 1, tzinfo=plus7),
        datetime(2026, 11, 30, 16, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 30, 17, tzinfo=UTC),
        datetime(1975, 6, 13, 0, 30, tzinfo=plus7),
        datetime(1976, 1, 1, tzinfo=plus7),
    ):
        assert changes.month(moment) == local_month(moment)
