"""The hub of one node: one listener task reads the bus and fans changes out to sessions.

A `Session` is one WebSocket connection: its subscriptions (one per topic) and its
bounded `Outbox`. The hub never waits for a connection: it puts frames in outboxes, and
each connection's writer sends them at the client's pace.

State topics (`overview`, `services`, `kpis`, `feed`, `alarms`), per scope: the hub keeps the
latest state and a short history of states by position. A change carries a whole state:
the hub computes the delta from its previous state once, serialises it once, and sends it
to every subscriber at that previous position (any other subscriber gets the new state as
a snapshot). A new subscriber gets the state in memory as its snapshot (the first one of a
scope is read from the database). The same state at the same position with other content
(the clock moved: "today", overdue dossiers) is sent as a fresh snapshot.

Items topics (`devices`): a change carries the items that changed in positions
``(base, position]``, province-wide. The hub keeps the recent changes (the resume window),
filters each change once per unit scope, and checks for every subscriber that the change
starts at or before the position it has; otherwise it has missed something and gets a
fresh snapshot (read from the database once per scope for every subscriber that needs
it).

Resume: ``since`` replays from the window (items topics) or sends one delta from the
state at that position (state topics; a scope stays followed for `linger` seconds after
its last subscriber left, for screens that reconnect); when that is impossible, a fresh
snapshot.

When the bus is interrupted for longer than `grace` seconds every subscribed connection
gets an ``error`` frame (code ``stream_interrupted``); when it resumes, or whenever the bus
reports lost changes, every subscription gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from ops_center.runtime.backoff import Backoff
from ops_center.runtime.tasks import stop_tasks
from streams import replay, topics
from streams.bus import Bus, Change, Interrupted, Resumed, interest_key
from streams.outbox import Frame
from streams.sessions import ItemsStream, Session, StateStream, Subscription
from streams.topics import Topic

log = logging.getLogger(__name__)

#: Reads a topic's snapshot for a scope: ``(position, data)``.
Loader = Callable[[str, str | None], Coroutine[Any, Any, tuple[int, dict[str, Any]]]]

# Limits
#: Changes an items topic keeps for resuming clients.
DEFAULT_WINDOW: Final = 1_000
#: Items kept in an items topic's window, all changes together.
DEFAULT_WINDOW_ITEMS: Final = 100_000
#: States a state topic keeps per scope for resuming clients.
DEFAULT_HISTORY: Final = 64
#: Frames waiting per connection before they are coalesced.
DEFAULT_QUEUE: Final = 64
#: Seconds the bus may be unreachable before subscribers are told.
DEFAULT_GRACE: Final = 2.0
#: Seconds a declaration of interest lasts (renewed every third of it).
DEFAULT_INTEREST_TTL: Final = 30.0
#: Seconds a state topic's scope stays followed after its last subscriber left (for
#: screens that reconnect with ``since``).
DEFAULT_LINGER: Final = 60.0
#: First and largest pause between attempts to read a snapshot, in seconds.
MIN_RETRY: Final = 0.5
MAX_RETRY: Final = 5.0
#: Attempts to find a snapshot that the window continues (items topics).
SNAPSHOT_ATTEMPTS: Final = 5


_NOTHING: Final = Frame("delta")


class Hub:
    """Fans the bus's changes out to sessions; see the module docstring.

    `load` reads a snapshot from the database; `units_of` gives a unit's code and its
    descendants' codes (the scope of a unit subscription).
    """

    def __init__(
        self,
        bus: Bus,
        load: Loader,
        units_of: Callable[[str], frozenset[str]],
        *,
        queue_limit: int = DEFAULT_QUEUE,
        window: int = DEFAULT_WINDOW,
        window_items: int = DEFAULT_WINDOW_ITEMS,
        history: int = DEFAULT_HISTORY,
        grace: float = DEFAULT_GRACE,
        interest_ttl: float = DEFAULT_INTEREST_TTL,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        self.bus = bus
        self._load_snapshot = load
        self._units_of = units_of
        self.queue_limit = queue_limit
        self._history = history
        self._grace = grace
        self._interest_ttl = interest_ttl
        self._linger = linger
        self.sessions: set[Session] = set()
        self._state: dict[tuple[str, str | None], StateStream] = {}
        self._items: dict[str, ItemsStream] = {
            t.name: ItemsStream(t, window, window_items)
            for t in topics.TOPICS.values()
            if t.kind == "items"
        }
        self._loads: dict[tuple[str, str | None], asyncio.Task[tuple[int, dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        #: The bus is unreachable; `interrupted` once subscribers were told.
        self.down = False
        self.interrupted = False
        #: Changes received from the bus, and fresh snapshots sent because of gaps.
        self.received = 0
        self.resyncs = 0

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the bus listener and the renewal of declared interests."""
        self._listener = asyncio.create_task(self._listen(), name="stream-hub:listener")
        self._keeper = asyncio.create_task(self._keep_interests(), name="stream-hub:interests")

    async def close(self) -> None:
        """Stop listening; sessions stay (their connections are closed by the web layer)."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        tasks: list[asyncio.Future[Any]] = [
            t for t in (self._listener, self._keeper) if t is not None
        ]
        tasks += [*self._tasks, *self._loads.values()]
        tasks += [
            sub.task
            for session in self.sessions
            for sub in session.subscriptions.values()
            if sub.task is not None
        ]
        await stop_tasks(tasks)

    def open(self) -> Session:
        session = Session(self, self.queue_limit)
        self.sessions.add(session)
        return session

    def close_session(self, session: Session) -> None:
        replay.close(session.replay)
        session.replay = None
        for name in list(session.subscriptions):
            self.unsubscribe(session, name)
        self.sessions.discard(session)

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(
        self, session: Session, topic_name: str, scope: str | None, since: int | None
    ) -> None:
        """Subscribe (replacing any subscription of the session to the same topic); the
        snapshot or replay follows asynchronously. The caller validated the names."""
        self.unsubscribe(session, topic_name)
        topic = topics.TOPICS[topic_name]
        units = None if scope is None else self._units_of(scope)
        sub = Subscription(session, topic, scope, units)
        session.subscriptions[topic_name] = sub
        if topic.kind == "state":
            key = (topic_name, scope)
            stream = self._state.get(key)
            if stream is None:
                stream = self._state[key] = StateStream(topic, scope, self._history)
                self._spawn(self._declare([interest_key(topic_name, scope)]))
            stream.members.add(sub)
            stream.idle_since = None
        else:
            self._items[topic_name].scopes.setdefault(scope, set()).add(sub)
        self._begin(sub, since)

    def unsubscribe(self, session: Session, topic_name: str) -> bool:
        """End the session's subscription to a topic; False when there was none."""
        sub = session.subscriptions.pop(topic_name, None)
        if sub is None:
            return False
        sub.active = False
        if sub.task is not None:
            sub.task.cancel()
        session.outbox.discard(topic_name)
        if sub.topic.kind == "state":
            key = (topic_name, sub.scope)
            stream = self._state.get(key)
            if stream is not None:
                stream.members.discard(sub)
                if not stream.members:
                    stream.idle_since = time.monotonic()
        else:
            scopes = self._items[topic_name].scopes
            members = scopes.get(sub.scope)
            if members is not None:
                members.discard(sub)
                if not members:
                    del scopes[sub.scope]
        return True

    def _begin(self, sub: Subscription, since: int | None) -> None:
        sub.active = False
        if sub.task is not None:
            sub.task.cancel()
        starter = self._start_state if sub.topic.kind == "state" else self._start_items
        sub.task = asyncio.create_task(starter(sub, since), name=f"stream-hub:{sub!r}")

    async def _start_state(self, sub: Subscription, since: int | None) -> None:
        stream = self._state[(sub.topic.name, sub.scope)]
        if stream.state is None:
            position, data = await self._snapshot_for(sub)
            if stream.state is None:
                stream.adopt(position, data)
        assert stream.state is not None
        assert stream.position is not None
        if since is not None and since in stream.history:
            if since < stream.position:
                delta = topics.diff(sub.topic, stream.history[since], stream.state)
                sub.send(Frame("delta", sub.topic.name, stream.position, delta))
        else:
            sub.send(stream.snapshot(self.bus.epoch))
        sub.position = stream.position
        sub.active = True
        self._tell_if_interrupted(sub)

    async def _start_items(self, sub: Subscription, since: int | None) -> None:
        stream = self._items[sub.topic.name]
        if since is not None and stream.covers(since):
            sub.position = since
        else:
            for _ in range(SNAPSHOT_ATTEMPTS):
                position, data = await self._snapshot_for(sub)
                newer = next(stream.after(position), None)
                if newer is None or (newer.base is not None and newer.base <= position):
                    break
                # the window restarted after this snapshot was read: read a newer one
            sub.send(Frame("snapshot", sub.topic.name, position, data, epoch=self.bus.epoch))
            sub.position = position
        cache: dict[int, Frame] = {}
        for change in stream.after(sub.position):
            if not self._deliver(sub, change, cache):
                return
        sub.active = True
        self._tell_if_interrupted(sub)

    def _tell_if_interrupted(self, sub: Subscription) -> None:
        if self.interrupted:
            sub.send(self._interrupted_frame())

    async def _snapshot_for(self, sub: Subscription) -> tuple[int, dict[str, Any]]:
        """Read a snapshot, retrying with a backoff while the database is unavailable."""
        delay = Backoff(MIN_RETRY, MAX_RETRY)
        told = False
        while True:
            try:
                return await self._load(sub.topic.name, sub.scope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream hub: cannot read the %s snapshot: %s", sub.topic.name, exc)
                if not told:
                    told = True
                    sub.send(
                        Frame.error(
                            "snapshot_unavailable",
                            f"the {sub.topic.name} snapshot cannot be read now; retrying",
                            topic=sub.topic.name,
                        )
                    )
                await delay.sleep()

    async def _load(self, topic: str, scope: str | None) -> tuple[int, dict[str, Any]]:
        """One database read per (topic, scope) at a time, shared by every waiter."""
        key = (topic, scope)
        task = self._loads.get(key)
        if task is None:
            task = asyncio.create_task(self._load_snapshot(topic, scope))
            self._loads[key] = task

            def done(finished: asyncio.Task[tuple[int, dict[str, Any]]]) -> None:
                if self._loads.get(key) is finished:
                    del self._loads[key]
                if not finished.cancelled():
                    finished.exception()  # retrieved: waiters handle it

            task.add_done_callback(done)
        return await asyncio.shield(task)

    # -- the listener ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.bus.listen():
                    if isinstance(event, Change):
                        self.received += 1
                        self.on_change(event)
                    elif isinstance(event, Interrupted):
                        self._on_interrupted(event)
                    elif isinstance(event, Resumed):
                        self._on_resumed(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stream hub: the bus listener failed; restarting")
                self._on_resumed(Resumed(self.bus.epoch, lost=True))
                await asyncio.sleep(MIN_RETRY)

    def on_change(self, change: Change) -> None:
        """Route one change to its subscribers (public for tests and benchmarks)."""
        topic = topics.TOPICS.get(change.topic)
        if topic is None:
            log.warning("stream hub: change of unknown topic %r ignored", change.topic)
        elif topic.kind == "state":
            self._on_state(topic, change)
        elif change.base is not None:
            self._on_items(change)

    def _on_state(self, topic: Topic, change: Change) -> None:
        stream = self._state.get((change.topic, change.scope))
        if stream is None:
            return
        old, old_position = stream.state, stream.position
        if old is None or old_position is None:
            stream.adopt(change.position, change.data)
            return
        if change.position < old_position:
            return
        if change.position == old_position:
            if change.data == old:
                return
            stream.refresh(change.data)
            frame = stream.snapshot(self.bus.epoch)
            for sub in stream.members:
                if sub.active:
                    sub.send(frame)
            return
        stream.adopt(change.position, change.data)
        data = topics.diff(topic, old, change.data)
        # only the position moved (e.g. the first publication after a snapshot read from
        # the database): clients hold this content already; nothing to send
        delta = (
            Frame("delta", topic.name, change.position, data)
            if data.keys() - {"position"}
            else None
        )
        for sub in stream.members:
            if not sub.active or sub.position is None:
                continue
            if sub.position != old_position:
                sub.send(stream.snapshot(self.bus.epoch))
            elif delta is not None:
                sub.send(delta)
            sub.position = change.position

    def _on_items(self, change: Change) -> None:
        stream = self._items[change.topic]
        stream.add(change)
        for members in stream.scopes.values():
            cache: dict[int, Frame] = {}
            for sub in list(members):
                if sub.active:
                    self._deliver(sub, change, cache)

    def _deliver(self, sub: Subscription, change: Change, cache: dict[int, Frame]) -> bool:
        """Send an items change to a subscriber at the right position; when the change
        does not continue what it holds, start it again from a snapshot (False)."""
        assert sub.position is not None
        assert change.base is not None
        if change.position <= sub.position:
            return True
        if change.base > sub.position:
            self.resyncs += 1
            self._begin(sub, None)
            return False
        frame = cache.get(change.position)
        if frame is None:
            frame = cache[change.position] = self._items_frame(sub, change)
        if frame is not _NOTHING:
            sub.send(frame)
        sub.position = change.position
        return True

    def _items_frame(self, sub: Subscription, change: Change) -> Frame:
        if sub.units is None:
            if not change.data.get("items") and not change.data.get("removed"):
                return _NOTHING
            return Frame("delta", change.topic, change.position, change.data)
        past = (change.extra or {}).get("units")
        upserts, removed = topics.scoped_items(
            sub.topic, change.data.get("items", ()), sub.units, past
        )
        if not upserts and not removed:
            return _NOTHING
        data: dict[str, Any] = {"position": change.position, "items": upserts}
        if removed:
            data["removed"] = removed
        return Frame("delta", change.topic, change.position, data)

    def _on_interrupted(self, event: Interrupted) -> None:
        if self.down:
            return
        self.down = True
        log.warning("stream hub: %s", event.reason)
        if self._grace_timer is None:
            loop = asyncio.get_running_loop()
            self._grace_timer = loop.call_later(self._grace, self._announce)

    def _announce(self) -> None:
        self._grace_timer = None
        if not self.down or self.interrupted:
            return
        self.interrupted = True
        frame = self._interrupted_frame()
        for session in self.sessions:
            if session.subscriptions:
                session.send(frame)

    def _interrupted_frame(self) -> Frame:
        return Frame.error(
            "stream_interrupted",
            "live updates are interrupted (the stream bus is unavailable); the data shown "
            "may be stale; a fresh snapshot of every subscription follows when they resume",
        )

    def _on_resumed(self, event: Resumed) -> None:
        was_interrupted = self.interrupted
        self.down = self.interrupted = False
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        if event.lost or was_interrupted:
            self.resync_all()
        self._spawn(self._declare(self._interest_keys()))

    def resync_all(self) -> None:
        """Forget every state and window and send every subscriber a fresh snapshot."""
        for stream in self._state.values():
            stream.reset()
        for items in self._items.values():
            items.clear()
        for session in self.sessions:
            for sub in session.subscriptions.values():
                self.resyncs += 1
                self._begin(sub, None)

    # -- interests ------------------------------------------------------------------------------

    def _interest_keys(self) -> list[str]:
        return [interest_key(topic, scope) for topic, scope in self._state]

    async def _declare(self, keys: list[str]) -> None:
        try:
            await self.bus.declare_interest(keys, self._interest_ttl)
        except Exception as exc:
            log.debug("stream hub: cannot declare interests: %s", exc)

    async def _keep_interests(self) -> None:
        """Renew the declared interests; forget the streams idle for longer than `linger`."""
        while True:
            await asyncio.sleep(self._interest_ttl / 3)
            self.sweep()
            keys = self._interest_keys()
            if keys:
                await self._declare(keys)

    def sweep(self, now: float | None = None) -> None:
        """Forget the state streams without members for longer than `linger` seconds."""
        now = time.monotonic() if now is None else now
        for key, stream in list(self._state.items()):
            if stream.idle_since is not None and now - stream.idle_since >= self._linger:
                del self._state[key]

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        subscriptions = sum(len(s.subscriptions) for s in self.sessions)
        return {
            "sessions": len(self.sessions),
            "subscriptions": subscriptions,
            "received": self.received,
            "resyncs": self.resyncs,
            "down": self.down,
            "interrupted": self.interrupted,
            "epoch": self.bus.epoch,
        }
