"""The stream bus port: how changes travel from the publishing node to every node's hub.

Two adapters implement `Bus`: `streams.memory.InMemoryBus` (one node) and
`streams.redis_bus.RedisBus` (several nodes sharing a Redis). A bus carries `Change`
messages; its single listener (the node's hub) also learns when delivery was interrupted
(`Interrupted`) and when it resumed (`Resumed`, with ``lost`` true when changes may have
been missed, e.g. Redis restarted: its `epoch` changed).

The bus also keeps two small pieces of shared state: the last position published per
items topic (so that a runner taking over on another node continues the chain) and which
(topic, scope) pairs screens are watching (so that the publisher computes only those).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


class BusUnavailable(Exception):
    """The bus cannot be reached (nothing was published)."""


@dataclass(frozen=True, slots=True)
class Change:
    """A change of a topic at a log position.

    For a state topic, `data` is the whole state of the topic for `scope` (a unit code;
    None is the province) and `base` is None. For an items topic, `data` holds the items
    that changed in the positions ``(base, position]`` (province-wide, scope None) with
    their state at `position`, and `extra` what a hub needs to filter them by unit
    (``units``: for each item, the units it was in during those positions).
    """

    topic: str
    scope: str | None
    position: int
    data: dict[str, Any]
    base: int | None = None
    extra: dict[str, Any] | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "t": self.topic,
                "s": self.scope,
                "p": self.position,
                "b": self.base,
                "d": self.data,
                "x": self.extra,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Change:
        body = orjson.loads(raw)
        return cls(body["t"], body["s"], body["p"], body["d"], body.get("b"), body.get("x"))


@dataclass(frozen=True, slots=True)
class Interrupted:
    """Delivery stopped (the bus is unreachable); `reason` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Resumed:
    """Delivery works again; `lost` when changes may have been missed meanwhile."""

    epoch: str
    lost: bool


BusEvent = Change | Interrupted | Resumed


def interest_key(topic: str, scope: str | None) -> str:
    """How a watched (topic, scope) pair is named on the bus."""
    return f"{topic}|{scope or ''}"


def parse_interest(key: str) -> tuple[str, str | None]:
    topic, _, scope = key.partition("|")
    return topic, scope or None


class Bus(ABC):
    """Publish changes; one listener receives them, in publication order per publisher."""

    #: Identifies the bus's history: it changes when that history is lost.
    epoch: str

    @abstractmethod
    async def start(self) -> None:
        """Get ready; never fails because the bus is unreachable (the listener reports)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the listener's iteration ends."""

    @abstractmethod
    async def publish(self, changes: Sequence[Change]) -> None:
        """Publish changes in order (all or none); BusUnavailable when unreachable."""

    @abstractmethod
    def listen(self) -> AsyncIterator[BusEvent]:
        """Changes published from now on, and interruptions; runs until `close`."""

    @abstractmethod
    async def last_position(self, topic: str) -> int | None:
        """The position of the last change published for an items topic, if known."""

    @abstractmethod
    async def declare_interest(self, keys: Iterable[str], ttl: float) -> None:
        """Screens watch these `interest_key`s; the declaration lasts `ttl` seconds."""

    @abstractmethod
    async def interests(self) -> set[str]:
        """The keys declared by any node and not expired."""
