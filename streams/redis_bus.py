"""The Redis bus: changes travel through a Redis stream shared by every node.

Keys (under `namespace`, default ``ops-center``):

* ``{ns}:streams:changes``: a Redis stream (``XADD``, trimmed to about `maxlen` entries);
  each node's hub reads it with a blocking ``XREAD`` from the last entry it saw, so a
  short disconnection loses nothing;
* ``{ns}:streams:epoch``: a random id created by the first node that finds it missing.
  Redis runs without persistence: when it restarts, the key (and the stream) are gone, a
  new epoch is created, and listeners report ``Resumed(lost=True)``;
* ``{ns}:streams:last:{topic}``: the last position published for an items topic;
* ``{ns}:streams:interest``: a sorted set of watched (topic, scope) keys scored by expiry.

The clients never retry a command by themselves (redis-py's default would reconnect
silently and hide a restart from the listener); failures surface as `BusUnavailable` or
`Interrupted`, and the listener reconnects with a capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ops_center.runtime.backoff import Backoff
from streams.bus import Bus, BusEvent, BusUnavailable, Change, Interrupted, Resumed

log = logging.getLogger(__name__)

# Limits
#: Entries the Redis stream keeps (approximately); a listener away longer reloads.
DEFAULT_MAXLEN: Final = 10_000
#: How long one XREAD blocks, in milliseconds.
BLOCK_MS: Final = 1_000
#: Entries read at once.
READ_COUNT: Final = 1_000
#: Seconds a command may take before Redis counts as unreachable.
COMMAND_TIMEOUT: Final = 2.0
#: First and largest pause between reconnection attempts, in seconds.
MIN_BACKOFF: Final = 0.1
MAX_BACKOFF: Final = 2.0

#: TCP keepalive of the listener's connection: a silent server is noticed in about 10 s.
_KEEPALIVE: Final = {
    option: value
    for option, value in (
        (getattr(socket, "TCP_KEEPIDLE", None), 4),
        (getattr(socket, "TCP_KEEPINTVL", None), 2),
        (getattr(socket, "TCP_KEEPCNT", None), 3),
    )
    if option is not None
}

_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
_EMPTY_ID: Final = b"0-0"


def _entry_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


class RedisBus(Bus):
    """A `Bus` on a Redis server shared by the nodes; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "ops-center",
        maxlen: int = DEFAULT_MAXLEN,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.url = url
        #: Where the bus connects, for logs: the URL without its password.
        self.where = _without_password(url)
        self.epoch = ""
        self._maxlen = maxlen
        self._block_ms = block_ms
        prefix = f"{namespace}:streams"
        self._stream = f"{prefix}:changes"
        self._epoch_key = f"{prefix}:epoch"
        self._last_prefix = f"{prefix}:last:"
        self._interest_key = f"{prefix}:interest"
        no_retry = Retry(NoBackoff(), 0)
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            retry=no_retry,
        )
        # No read timeout on the listener's connection: on Python 3.11 the timeout around
        # every read can swallow the cancellation of a blocked XREAD. TCP keepalive detects
        # a vanished server instead.
        self._reader: Redis = Redis.from_url(
            url,
            socket_timeout=None,
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_keepalive=True,
            socket_keepalive_options=_KEEPALIVE,
            retry=no_retry,
            single_connection_client=True,
        )
        self._closed = asyncio.Event()

    async def start(self) -> None:
        pass  # connections are made on first use; the listener reports an unreachable Redis

    async def close(self) -> None:
        self._closed.set()
        await self._reader.aclose()
        await self._client.aclose()

    async def _call(self, command: Any) -> Any:
        try:
            return await command
        except _ERRORS as exc:
            raise BusUnavailable(f"Redis at {self.where} is unavailable: {exc}") from exc

    async def publish(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        pipe = self._client.pipeline(transaction=True)
        for change in changes:
            pipe.xadd(self._stream, {"c": change.encode()}, maxlen=self._maxlen, approximate=True)
            if change.base is not None:
                pipe.set(self._last_prefix + change.topic, change.position)
        await self._call(pipe.execute())

    async def last_position(self, topic: str) -> int | None:
        raw = await self._call(self._client.get(self._last_prefix + topic))
        return None if raw is None else int(raw)

    async def declare_interest(self, keys: Iterable[str], ttl: float) -> None:
        until = time.time() + ttl
        mapping = dict.fromkeys(keys, until)
        if mapping:
            await self._call(self._client.zadd(self._interest_key, mapping))

    async def interests(self) -> set[str]:
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(self._interest_key, "-inf", now)
        pipe.zrangebyscore(self._interest_key, now, "+inf")
        _, members = await self._call(pipe.execute())
        return {m.decode() for m in members}

    # -- the listener -------------------------------------------------------------------------

    async def _current_epoch(self) -> str:
        """The epoch, creating it when missing (first start, or Redis lost its data)."""
        await self._reader.set(self._epoch_key, uuid.uuid4().hex, nx=True)
        raw: Any = await self._reader.get(self._epoch_key)
        return "" if raw is None else bytes(raw).decode()

    async def _tail(self) -> bytes:
        newest: Any = await self._reader.xrevrange(self._stream, "+", "-", count=1)
        return bytes(newest[0][0]) if newest else _EMPTY_ID

    async def _trimmed_since(self, last_id: bytes) -> bool:
        """Whether entries after `last_id` may have been trimmed away."""
        if last_id == _EMPTY_ID:
            return False
        oldest: Any = await self._reader.xrange(self._stream, "-", "+", count=1)
        if not oldest:
            return True  # the stream disappeared though the epoch survived
        if _entry_id(bytes(oldest[0][0])) <= _entry_id(last_id):
            return False
        length: int = await self._reader.xlen(self._stream)
        return length >= self._maxlen

    async def listen(self) -> AsyncIterator[BusEvent]:
        last_id: bytes | None = None
        down = False
        backoff = Backoff(MIN_BACKOFF, MAX_BACKOFF)
        while not self._closed.is_set():
            try:
                if last_id is None or down:
                    epoch = await self._current_epoch()
                    if last_id is None:
                        last_id = await self._tail()
                        lost = down  # never connected: whatever happened meanwhile is unknown
                    else:
                        lost = epoch != self.epoch or await self._trimmed_since(last_id)
                        if lost:
                            last_id = await self._tail()
                    first = not self.epoch
                    self.epoch = epoch
                    if down or not first:
                        log.info("stream bus: Redis reachable again (lost: %s)", lost)
                        yield Resumed(epoch, lost=lost)
                    down = False
                    backoff.reset()
                reply: Any = await self._reader.xread(
                    {self._stream: last_id}, count=READ_COUNT, block=self._block_ms
                )
                for _name, entries in reply or ():
                    for entry_id, fields in entries:
                        last_id = bytes(entry_id)
                        try:
                            change = Change.decode(fields[b"c"])
                        except (KeyError, ValueError, TypeError):
                            log.warning("stream bus: skipping a malformed entry %r", entry_id)
                            continue
                        yield change
            except (*_ERRORS, RedisError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # redis-py may turn a cancellation during a read into an error
                    raise asyncio.CancelledError from exc
                if self._closed.is_set():
                    return
                if not down:
                    down = True
                    log.warning("stream bus: Redis at %s is unavailable: %s", self.where, exc)
                    yield Interrupted(f"Redis is unavailable: {exc}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff.next()):
                        await self._closed.wait()


def _without_password(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
