"""Per-key rate limits on ingested events (token buckets, in process)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets that refill at each key's rate, holding up to `burst_seconds` of it.

    A request is admitted while the bucket is not empty, even if its events take the
    bucket below zero: a batch larger than the burst is never refused forever, and the
    debt makes the next requests wait. `admit` returns 0 when admitted, otherwise the
    number of whole seconds to wait (for ``Retry-After``).
    """

    def __init__(
        self, *, burst_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst_seconds = burst_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str, rate: float | None, events: int) -> int:
        if rate is None or rate <= 0:
            return 0
        now = self._clock()
        capacity = max(rate * self.burst_seconds, 1.0)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens <= 0:
            return max(1, math.ceil(-bucket.tokens / rate + 1 / rate))
        bucket.tokens -= events
        return 0
