"""Whether an indicator (KPI) is on track: the rule leaders read on the wall. No I/O.

Status (`kpi_status`), evaluated on a date D (today in Asia/Ho_Chi_Minh, or the `as_of`
date):

* ``met``: the latest value meets the target (``increase``: value >= target;
  ``decrease``: value <= target). The latest value is that of the period that ends last
  (on a tie, the shorter period).
* ``off_track``: not met and D is after the deadline; or not met and the straight line
  through the first and the latest reported values (placed at their periods' last days),
  extended to the deadline, does not meet the target.
* ``on_track``: otherwise, including before the deadline with fewer than two reports
  ending on different days (nothing to extrapolate from).
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

from ops_center.province.calendar import period_bounds

Status = Literal["met", "on_track", "off_track"]
STATUSES: Final[tuple[Status, ...]] = ("met", "on_track", "off_track")


def meets(direction: str, value: float, target: float) -> bool:
    """Whether `value` meets `target` in the indicator's direction."""
    return value >= target if direction == "increase" else value <= target


def kpi_status(
    direction: str,
    target: float,
    deadline: date,
    first: tuple[str, float] | None,
    latest: tuple[str, float] | None,
    today: date,
) -> Status:
    """The status rule of the module docstring."""
    if latest is not None and meets(direction, latest[1], target):
        return "met"
    if today > deadline:
        return "off_track"
    if first is not None and latest is not None:
        first_day = period_bounds(first[0])[1]
        latest_day = period_bounds(latest[0])[1]
        if latest_day > first_day:
            slope = (latest[1] - first[1]) / (latest_day - first_day).days
            remaining = max((deadline - latest_day).days, 0)
            if not meets(direction, latest[1] + slope * remaining, target):
                return "off_track"
    return "on_track"
