"""Latency figures: percentiles, a compact histogram and acknowledgement times.

`AckTimes` holds, for every event position an ingest client saw acknowledged, the
``monotonic_ns`` of the acknowledgement (and, per request, its highest position). The
screens' results use it for the two ack-to-frame figures of docs/LOADCLIENTS.md: per
frame (arrival minus the acknowledgement of the highest acknowledged position the frame
carries) and per request (from a request's acknowledgement to the first frame reaching
its last position on each screen).

`Histogram` counts microsecond values in log-linear buckets: exact below 512 µs, then
256 buckets per power of two (every value within 0.4 % of its bucket's middle), about
8,500 buckets in all, so millions of samples cost 68 kB and histograms of several
processes add up.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

#: Values below this many µs have a bucket each.
_EXACT: Final = 512
#: Buckets per power of two above `_EXACT`.
_SUB: Final = 256
#: Values at or above 2**40 µs (12 days) share the last bucket.
_TOP_BITS: Final = 40
_SIZE: Final = _EXACT + (_TOP_BITS - 9) * _SUB


def percentile(ordered: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) of sorted values, interpolating linearly between
    the closest ranks; NaN when there are none."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _bucket(value: int) -> int:
    if value < _EXACT:
        return max(value, 0)
    shift = value.bit_length() - 9
    index = _EXACT + (shift - 1) * _SUB + ((value >> shift) - _SUB)
    return min(index, _SIZE - 1)


def _middle(index: int) -> float:
    """The value a bucket stands for (its middle)."""
    if index < _EXACT:
        return float(index)
    shift = (index - _EXACT) // _SUB + 1
    low = ((index - _EXACT) % _SUB + _SUB) << shift
    return low + ((1 << shift) - 1) / 2


class Histogram:
    """Counts of microsecond values (negative values count as 0)."""

    __slots__ = ("count", "counts", "max_us", "total_us")

    def __init__(self) -> None:
        self.counts = array("Q", bytes(8 * _SIZE))
        self.count = 0
        self.total_us = 0
        self.max_us = 0

    def add(self, value_us: int, times: int = 1) -> None:
        value_us = max(value_us, 0)
        self.counts[_bucket(value_us)] += times
        self.count += times
        self.total_us += value_us * times
        self.max_us = max(self.max_us, value_us)

    def add_offsets(self, base_us: int, offsets_us: Iterable[int]) -> None:
        """Add ``base_us + offset`` for each offset (a frame's arrivals after the first)."""
        counts = self.counts
        n = 0
        total = 0
        top = self.max_us
        for offset in offsets_us:
            value = base_us + offset
            if value < 0:
                value = 0
            counts[value if value < _EXACT else _bucket(value)] += 1
            total += value
            n += 1
            if value > top:
                top = value
        self.count += n
        self.total_us += total
        self.max_us = top

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.count += other.count
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile_us(self, q: float) -> float:
        """The value at rank ``ceil(q% of count)`` (nearest rank); NaN when empty."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(self.count * q / 100))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(_middle(i), float(self.max_us))
        return float(self.max_us)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """A latency distribution in milliseconds; `missed`: samples that should exist but
    never arrived (a position never reached), `unattributed`: frames that carried no
    acknowledged position, `early`: samples below zero counted as zero (a frame that
    arrived before its acknowledgement)."""

    count: int
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    missed: int = 0
    unattributed: int = 0
    early: int = 0

    @classmethod
    def from_values(cls, values_ms: Iterable[float], **counts: int) -> LatencyStats:
        ordered = sorted(values_ms)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 50),
            p75_ms=percentile(ordered, 75),
            p90_ms=percentile(ordered, 90),
            p99_ms=percentile(ordered, 99),
            max_ms=ordered[-1] if ordered else math.nan,
            mean_ms=sum(ordered) / len(ordered) if ordered else math.nan,
            **counts,
        )

    @classmethod
    def from_histogram(cls, histogram: Histogram, **counts: int) -> LatencyStats:
        h = histogram
        return cls(
            count=h.count,
            p50_ms=h.percentile_us(50) / 1000,
            p75_ms=h.percentile_us(75) / 1000,
            p90_ms=h.percentile_us(90) / 1000,
            p99_ms=h.percentile_us(99) / 1000,
            max_ms=h.max_us / 1000 if h.count else math.nan,
            mean_ms=h.total_us / h.count / 1000 if h.count else math.nan,
            **counts,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class AckTimes:
    """When each acknowledged event position was acknowledged (``monotonic_ns``).

    Built from ``(positions, ack_ns)`` per answered request; a position acknowledged
    twice (a duplicate sent again) keeps its first acknowledgement.
    """

    def __init__(self, requests: Iterable[tuple[Iterable[int], int]]) -> None:
        first: dict[int, int] = {}
        last: list[tuple[int, int]] = []
        for positions, ack_ns in requests:
            top = -1
            for p in positions:
                if p not in first or ack_ns < first[p]:
                    first[p] = ack_ns
                top = max(top, p)
            if top >= 0:
                last.append((top, ack_ns))
        ordered = sorted(first.items())
        self.positions = array("q", (p for p, _ in ordered))
        self.ack_ns = array("q", (t for _, t in ordered))
        last.sort()
        #: Per request: its highest position and its acknowledgement, by position.
        self.request_positions = array("q", (p for p, _ in last))
        self.request_ack_ns = array("q", (t for _, t in last))

    def __len__(self) -> int:
        return len(self.positions)

    def carried(self, position: int, after: int) -> int | None:
        """The acknowledgement of the highest acknowledged position in
        ``(after, position]`` (what a frame at `position` carries when the one before
        was at `after`), or None."""
        i = bisect.bisect_right(self.positions, position) - 1
        if i < 0 or self.positions[i] <= after:
            return None
        return self.ack_ns[i]
