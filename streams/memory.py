"""The in-process bus: one node, no Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Final

from streams.bus import Bus, BusEvent, Change, Resumed

# Limits
#: Changes waiting for a listener that lags; beyond, the listener is told they were lost.
DEFAULT_BACKLOG: Final = 10_000

_CLOSE: Final = object()


class InMemoryBus(Bus):
    """Delivers changes to its listeners within the process.

    Each listener has a bounded backlog: a listener that falls `backlog` changes behind
    loses them and receives ``Resumed(lost=True)`` instead (it then reloads), so a stuck
    listener never makes memory grow.
    """

    def __init__(self, *, backlog: int = DEFAULT_BACKLOG) -> None:
        self.epoch = uuid.uuid4().hex
        self._backlog = backlog
        self._listeners: list[asyncio.Queue[BusEvent | object]] = []
        self._overflowed: set[int] = set()
        self._last: dict[str, int] = {}
        self._interests: dict[str, float] = {}

    async def start(self) -> None:
        pass

    async def publish(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if change.base is not None:
                self._last[change.topic] = change.position
            for queue in self._listeners:
                if id(queue) in self._overflowed:
                    continue
                if queue.qsize() >= self._backlog:
                    self._overflowed.add(id(queue))
                    continue
                queue.put_nowait(change)

    async def listen(self) -> AsyncIterator[BusEvent]:
        queue: asyncio.Queue[BusEvent | object] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while True:
                if id(queue) in self._overflowed and queue.empty():
                    self._overflowed.discard(id(queue))
                    yield Resumed(self.epoch, lost=True)
                    continue
                event = await queue.get()
                if event is _CLOSE:
                    return
                assert isinstance(event, Change)
                yield event
        finally:
            self._listeners.remove(queue)
            self._overflowed.discard(id(queue))

    async def close(self) -> None:
        for queue in self._listeners:
            queue.put_nowait(_CLOSE)

    async def last_position(self, topic: str) -> int | None:
        return self._last.get(topic)

    async def declare_interest(self, keys: Iterable[str], ttl: float) -> None:
        until = time.monotonic() + ttl
        for key in keys:
            self._interests[key] = until

    async def interests(self) -> set[str]:
        now = time.monotonic()
        for key in [k for k, until in self._interests.items() if until <= now]:
            del self._interests[key]
        return set(self._interests)
