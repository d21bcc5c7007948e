"""The province's clock and calendar: Vietnam time, office hours, working days, chance.

Pure functions over `datetime` and a caller's `random.Random`; nothing reads the wall
clock. Holidays are not modelled (every Monday to Friday is a working day).
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from itertools import accumulate
from typing import Final, Generic, TypeVar

from ops_center.province.calendar import TZ

#: Vietnam has no daylight saving time: a fixed offset is exact.
VN: Final = TZ

#: Opening hours of one-stop-shop counters and offices (morning and afternoon).
OFFICE_HOURS: Final = ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 0)))
#: When a dossier falls due on its last working day.
DUE_TIME: Final = time(17, 0)

RateAt = Callable[[datetime], float]
_T = TypeVar("_T")
(_MORNING_OPENS, _MORNING_CLOSES), (_AFTERNOON_OPENS, _AFTERNOON_CLOSES) = OFFICE_HOURS


def local(moment: datetime) -> datetime:
    """`moment` in Vietnam time."""
    return moment.astimezone(VN)


def stamp(moment: datetime) -> str:
    """RFC 3339 with milliseconds and the +07:00 offset, as integrations send it."""
    return local(moment).isoformat(timespec="milliseconds")


def is_working_day(day: date) -> bool:
    return day.weekday() < 5


def in_office_hours(moment: datetime) -> bool:
    """True during the opening hours of a working day (Vietnam time)."""
    moment = local(moment)
    if not is_working_day(moment.date()):
        return False
    now = moment.time()
    return _MORNING_OPENS <= now < _MORNING_CLOSES or _AFTERNOON_OPENS <= now < _AFTERNOON_CLOSES


def add_working_days(day: date, count: int) -> date:
    """The working day `count` working days after `day` (count >= 1)."""
    while count > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            count -= 1
    return day


def next_working_day(day: date) -> date:
    """`day` itself when it is a working day, else the next one."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def office_moment(rng: random.Random, day: date) -> datetime:
    """A moment drawn uniformly from the office hours of `day` (Vietnam time)."""
    spans = [
        (datetime.combine(day, opens, VN), datetime.combine(day, closes, VN))
        for opens, closes in OFFICE_HOURS
    ]
    total = sum((end - begin).total_seconds() for begin, end in spans)
    offset = rng.uniform(0, total)
    for begin, end in spans:
        length = (end - begin).total_seconds()
        if offset < length:
            return begin + timedelta(seconds=offset)
        offset -= length
    return spans[-1][1] - timedelta(seconds=1)  # pragma: no cover - float edge


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def exponential(rng: random.Random, mean: timedelta) -> timedelta:
    """A waiting time of a memoryless process with this mean."""
    return timedelta(seconds=rng.expovariate(1.0 / mean.total_seconds()))


def lognormal(rng: random.Random, median: timedelta, sigma: float) -> timedelta:
    """A repair-like duration: usually near `median`, sometimes much longer."""
    return timedelta(seconds=median.total_seconds() * math.exp(rng.gauss(0.0, sigma)))


def next_arrival(rng: random.Random, after: datetime, rate: RateAt, peak: float) -> datetime:
    """The next arrival of a Poisson process whose hourly rate varies with time.

    Thinning (Lewis and Shedler): candidates come at the `peak` rate and each is kept
    with probability ``rate(t) / peak``; `rate` must never exceed `peak`.
    """
    moment = after
    while True:
        moment += timedelta(hours=rng.expovariate(peak))
        if rng.random() * peak < rate(moment):
            return moment


def hourly(weights: tuple[float, ...]) -> Callable[[datetime], float]:
    """The weight of the local hour of a moment, from 24 hourly weights."""
    if len(weights) != 24:
        raise ValueError("24 hourly weights are needed")

    def weight(moment: datetime) -> float:
        return weights[local(moment).hour]

    return weight


class Weighted(Generic[_T]):
    """A choice among items with fixed weights: the very draw of
    ``rng.choices(items, weights)[0]`` (same use of the random source, same item), with
    the running sums made once instead of at every draw."""

    def __init__(self, items: Sequence[_T], weights: Sequence[float]) -> None:
        if len(items) != len(weights) or not items:
            raise ValueError("one weight per item, and at least one item")
        self.items = tuple(items)
        self._sums = list(accumulate(weights))
        self._total = self._sums[-1] + 0.0
        self._last = len(self.items) - 1

    def pick(self, rng: random.Random) -> _T:
        return self.items[bisect(self._sums, rng.random() * self._total, 0, self._last)]
