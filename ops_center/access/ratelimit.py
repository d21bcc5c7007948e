"""Per-key rate limits on ingested events: token buckets, in one process (`RateLimiter`)
or shared by every process and node through Redis (`SharedRateLimiter`)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)


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

    async def check(self, key: str, rate: float | None, events: int) -> int:
        """`admit`, with the signature of `SharedRateLimiter.admit` (awaitable)."""
        return self.admit(key, rate, events)

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


#: The token bucket of `RateLimiter`, kept in Redis and run there atomically (the clock is
#: Redis's, so every process and node shares one bucket per key).
_BUCKET_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local events = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  updated = now
end
tokens = math.min(capacity, tokens + (now - updated) * rate)
local wait = 0
if tokens <= 0 then
  wait = math.max(1, math.ceil(-tokens / rate + 1 / rate))
else
  tokens = tokens - events
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 60000)
return wait
"""


class Limits(Protocol):
    """What ingest asks: may this key send `events` more now (0), or in how many seconds."""

    async def check(self, key: str, rate: float | None, events: int) -> int: ...


class SharedRateLimiter:
    """`RateLimiter`'s buckets in Redis: one limit per key for every HTTP process and node
    that shares the Redis (``Settings.redis_url``), not one per process.

    One round trip to Redis per request of a rate-limited key (keys without a rate cost
    nothing). While Redis does not answer, each process falls back to its own buckets
    (each then admits up to the key's full rate: a brief over-admission, never a refusal
    caused by the outage), and logs it once per outage.
    """

    def __init__(self, client: Any, *, namespace: str, burst_seconds: float = 2.0) -> None:
        self._client = client
        self._prefix = f"{namespace}:rate:"
        self.burst_seconds = burst_seconds
        self._script = client.register_script(_BUCKET_SCRIPT)
        self._local = RateLimiter(burst_seconds=burst_seconds)
        self._failing = False

    async def check(self, key: str, rate: float | None, events: int) -> int:
        """0 when admitted, else the whole seconds to wait (see `RateLimiter.admit`)."""
        if rate is None or rate <= 0:
            return 0
        capacity = max(rate * self.burst_seconds, 1.0)
        try:
            wait = await self._script(keys=[self._prefix + key], args=[rate, capacity, events])
        except Exception as exc:  # redis errors, OSError, timeouts
            if not self._failing:
                self._failing = True
                log.warning("rate limits: Redis does not answer (%s); limiting per process", exc)
            return self._local.admit(key, rate, events)
        if self._failing:
            self._failing = False
            log.info("rate limits: shared through Redis again")
        return int(wait)

    async def close(self) -> None:
        await self._client.aclose()
