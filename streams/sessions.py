"""What the hub keeps: one `Session` per WebSocket connection with its `Subscription`s,
and per topic the buffers deltas are computed and resumed from: `StateStream` (a state
topic's latest state and recent states, per scope) and `ItemsStream` (an items topic's
window of recent changes). No I/O here: the hub (`streams.hub`) drives them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.bus import Change
from streams.outbox import Frame, Outbox
from streams.topics import Topic

if TYPE_CHECKING:
    from streams.hub import Hub
    from streams.replay import Replay


class Subscription:
    """A session's subscription to one topic and scope.

    `position` is the position of the state the client holds (None before its snapshot);
    only an `active` subscription receives changes.
    """

    def __init__(
        self, session: Session, topic: Topic, scope: str | None, units: frozenset[str] | None
    ) -> None:
        self.session = session
        self.topic = topic
        self.scope = scope
        self.units = units
        self.position: int | None = None
        self.active = False
        self.task: asyncio.Task[None] | None = None

    def send(self, frame: Frame) -> None:
        self.session.outbox.put(frame)

    def __repr__(self) -> str:
        return f"Subscription({self.topic.name!r}, {self.scope!r}, position={self.position})"


class Session:
    """One connection: its subscriptions by topic name, its replay (at most one, apart
    from the subscriptions) and its outbox."""

    def __init__(self, hub: Hub, queue_limit: int) -> None:
        self.hub = hub
        self.outbox = Outbox(queue_limit)
        self.subscriptions: dict[str, Subscription] = {}
        self.replay: Replay | None = None

    def send(self, frame: Frame) -> None:
        self.outbox.put(frame)


@dataclass(eq=False)
class StateStream:
    """A state topic for one scope: its latest state, recent states, and subscribers."""

    topic: Topic
    scope: str | None
    history_limit: int
    members: set[Subscription] = field(default_factory=set)
    position: int | None = None
    state: dict[str, Any] | None = None
    history: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: When the last member left (the stream lingers for clients that come back).
    idle_since: float | None = None
    _snapshot: Frame | None = None

    def adopt(self, position: int, state: dict[str, Any]) -> None:
        """Take a newer state (callers check that it is newer)."""
        self.position = position
        self.state = state
        self._snapshot = None
        self.history[position] = state
        while len(self.history) > self.history_limit:
            del self.history[next(iter(self.history))]

    def refresh(self, state: dict[str, Any]) -> None:
        """The state at the same position changed (the clock moved): clients holding the
        position may hold either version, so no earlier state can be resumed from."""
        assert self.position is not None
        self.history.clear()
        self.state = state
        self._snapshot = None

    def reset(self) -> None:
        self.position = self.state = self._snapshot = None
        self.history.clear()

    def snapshot(self, epoch: str) -> Frame:
        """The current state as a snapshot frame (shared by every subscriber)."""
        if self._snapshot is None:
            assert self.state is not None
            self._snapshot = Frame(
                "snapshot", self.topic.name, self.position, self.state, epoch=epoch
            )
        return self._snapshot


@dataclass(eq=False)
class ItemsStream:
    """An items topic: the recent changes (contiguous) and the subscribers by scope."""

    topic: Topic
    limit: int
    item_limit: int
    window: deque[Change] = field(default_factory=deque)
    items: int = 0
    scopes: dict[str | None, set[Subscription]] = field(default_factory=dict)

    def add(self, change: Change) -> bool:
        """Keep a change; False when it does not continue the window (which restarts)."""
        assert change.base is not None
        contiguous = not self.window or change.base <= self.window[-1].position
        if not contiguous:
            self.clear()
        self.window.append(change)
        self.items += len(change.data.get("items", ()))
        while len(self.window) > 1 and (
            len(self.window) > self.limit or self.items > self.item_limit
        ):
            self.items -= len(self.window.popleft().data.get("items", ()))
        return contiguous

    def clear(self) -> None:
        self.window.clear()
        self.items = 0

    def covers(self, since: int) -> bool:
        """Whether every change after `since` is in the window."""
        return (
            bool(self.window) and self.window[0].base is not None and (self.window[0].base <= since)
        )

    def after(self, position: int) -> Iterator[Change]:
        return (c for c in self.window if c.position > position)

    def members(self) -> Iterator[Subscription]:
        for subs in self.scopes.values():
            yield from subs
