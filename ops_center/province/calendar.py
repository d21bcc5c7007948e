"""Times as leaders count them: days, months and buckets in Asia/Ho_Chi_Minh.

Vietnam has kept UTC+07:00 without daylight saving since 1975, but the zone is used
rather than a fixed offset so that the code states what it means.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final, Literal
from zoneinfo import ZoneInfo

#: The province's time zone: the one place it is named (profiles must say the same).
TZ_NAME: Final = "Asia/Ho_Chi_Minh"
TZ: Final = ZoneInfo(TZ_NAME)

Bucket = Literal["hour", "day", "month"]
BUCKETS: Final[tuple[Bucket, ...]] = ("hour", "day", "month")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?")
_OFFSET = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_PERIOD = re.compile(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4])|-H([12]))?")


def now() -> datetime:
    """The current time (aware, UTC)."""
    return datetime.now(UTC)


def parse_instant(text: str) -> datetime:
    """A time from a query parameter.

    Accepts RFC 3339 with an offset (``2026-11-16T09:00:00+07:00``, ``...Z``), a local
    time without offset (``2026-11-16T09:00``, read in Asia/Ho_Chi_Minh) or a date
    (``2026-11-16``: local midnight). Raises ValueError otherwise.
    """
    text = text.strip()
    try:
        if _OFFSET.fullmatch(text):
            # fromisoformat does not take more than 6 fractional digits
            head, _, frac = text.partition(".")
            if frac:
                digits = re.match(r"\d+", frac)
                assert digits is not None
                text = f"{head}.{digits.group()[:6]}{frac[len(digits.group()) :]}"
            return datetime.fromisoformat(text.replace("z", "Z"))
        if _LOCAL.fullmatch(text):
            return datetime.fromisoformat(text).replace(tzinfo=TZ)
        if _DATE.fullmatch(text):
            return datetime.combine(date.fromisoformat(text), time(), TZ)
    except ValueError:
        pass
    raise ValueError(
        f"{text!r} is not a time: use RFC 3339 with an offset "
        "(2026-11-16T09:00:00+07:00), a local time (2026-11-16T09:00) or a date (2026-11-16)"
    )


def local_day(moment: datetime) -> tuple[datetime, datetime]:
    """The local day containing `moment`, as ``[start, end)``."""
    day = moment.astimezone(TZ).date()
    start = datetime.combine(day, time(), TZ)
    return start, datetime.combine(day + timedelta(days=1), time(), TZ)


def local_date(moment: datetime) -> date:
    return moment.astimezone(TZ).date()


def bucket_start(moment: datetime, bucket: Bucket) -> datetime:
    """The start of the local bucket containing `moment`."""
    local = moment.astimezone(TZ)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return datetime.combine(local.date(), time(), TZ)
    return datetime.combine(local.date().replace(day=1), time(), TZ)


def next_bucket(start: datetime, bucket: Bucket) -> datetime:
    """The start of the bucket after the one starting at `start` (local calendar)."""
    if bucket == "hour":
        return (start.astimezone(UTC) + timedelta(hours=1)).astimezone(TZ)
    if bucket == "day":
        return datetime.combine(start.date() + timedelta(days=1), time(), TZ)
    first = start.date()
    year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
    return datetime.combine(date(year, month, 1), time(), TZ)


def buckets(start: datetime, end: datetime, bucket: Bucket) -> list[tuple[datetime, datetime]]:
    """Local calendar buckets covering ``[start, end)``, clipped to it."""
    out: list[tuple[datetime, datetime]] = []
    edge = bucket_start(start, bucket)
    while edge < end:
        following = next_bucket(edge, bucket)
        out.append((max(edge, start), min(following, end)))
        edge = following
    return out


def count_buckets(start: datetime, end: datetime, bucket: Bucket) -> int:
    """How many buckets `buckets` would return, without building them."""
    if end <= start:
        return 0
    if bucket == "hour":
        first = bucket_start(start, "hour")
        return int((end - first) / timedelta(hours=1) - 1e-9) + 1
    if bucket == "day":
        return (local_date(end - timedelta(microseconds=1)) - local_date(start)).days + 1
    a, b = local_date(start), local_date(end - timedelta(microseconds=1))
    return (b.year - a.year) * 12 + b.month - a.month + 1


@lru_cache(maxsize=4096)
def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a reporting period (``2026``, ``2026-10``, ``2026-Q3``,
    ``2026-H1``). Raises ValueError for anything else."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"not a period: {period!r}")
    year = int(match.group(1))
    month, quarter, half = match.group(2), match.group(3), match.group(4)
    if month is not None:
        first_month, months = int(month), 1
    elif quarter is not None:
        first_month, months = (int(quarter) - 1) * 3 + 1, 3
    elif half is not None:
        first_month, months = (int(half) - 1) * 6 + 1, 6
    else:
        first_month, months = 1, 12
    start = date(year, first_month, 1)
    last_month = first_month + months
    end_excl = date(year + 1, 1, 1) if last_month > 12 else date(year, last_month, 1)
    return start, end_excl - timedelta(days=1)


def period_key(period: str) -> tuple[date, date]:
    """Sort key of periods: by last day, then by first day (shorter periods last)."""
    start, end = period_bounds(period)
    return end, start


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in Vietnam time (``+07:00``), or None."""
    return None if moment is None else moment.astimezone(TZ).isoformat()
