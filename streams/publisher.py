"""The publisher: after projections commit, what changed goes to the bus with its position.

It listens to the commits of the log's follower (`Commits`: the pipeline's follower, which
one node at a time runs, elected by an advisory lock) and acts only while that follower is
active here, so each change is published once across nodes. One task per topic, so that a slow topic
never delays another:

* a state topic (overview, services, kpis, feed, alarms) is read whole for every scope that
  screens watch (declared on the bus by the hubs), in one REPEATABLE READ transaction, and
  published when its content changed. It is also read every `refresh` seconds without
  commits, since "today" and "overdue" move with the clock;
* the devices topic publishes the devices touched by the events since the last position
  published (kept on the bus, so a runner that takes over on another node continues the
  chain; when the bus knows none, since the position the projection had when this
  publisher started; for a range too long to read, an empty change from the current
  position, which tells the hubs to reload).

Publications of one topic are at least `interval` seconds apart: under load, one
publication carries the changes of many commits. When the bus is unreachable the
publication is retried, with a backoff, with the then current data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from ops_center.province.calendar import now
from ops_center.runtime.backoff import Backoff
from ops_center.runtime.tasks import stop_tasks
from streams import topics
from streams.bus import Bus, BusUnavailable, Change, parse_interest
from streams.sources import Source

log = logging.getLogger(__name__)

# Limits
#: Fewest seconds between two publications of a topic.
DEFAULT_INTERVAL: Final = 0.02
#: Seconds between readings of the state topics without commits (the clock moves).
DEFAULT_REFRESH: Final = 30.0
#: Seconds between readings of the watched scopes on the bus (without commits).
INTEREST_POLL: Final = 1.0
#: Seconds a reading of the watched scopes is used by publications after commits.
INTEREST_MAX_AGE: Final = 0.1
#: Most positions one devices change may cover; beyond, hubs are told to reload.
MAX_SPAN: Final = 200_000
#: First and largest pause after a failed publication, in seconds.
MIN_RETRY: Final = 0.2
MAX_RETRY: Final = 5.0


class Commits(Protocol):
    """Where the publisher learns that projections committed (the pipeline's follower)."""

    #: Called with ``(projection name, position)`` after each commit that moved it.
    on_commit: list[Callable[[str, int], None]]

    def is_active(self, name: str) -> bool:
        """Whether this node follows the log for that projection now."""
        ...


class TopicPublisher:
    """Publishes one topic; woken by commits, new scopes, the refresh timer and retries."""

    def __init__(self, owner: Publisher, topic: topics.Topic) -> None:
        self.owner = owner
        self.topic = topic
        self.wake = asyncio.Event()
        self.published = 0
        self.failures = 0
        #: Content last published per scope (to skip unchanged states).
        self._last: dict[str | None, dict[str, Any]] = {}

    def forget(self) -> None:
        self._last.clear()

    async def run(self) -> None:
        owner = self.owner
        retry = Backoff(MIN_RETRY, MAX_RETRY)
        refresh_at = time.monotonic() + owner.refresh
        while True:
            timeout = max(0.0, refresh_at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.wake.wait()
            self.wake.clear()
            if time.monotonic() >= refresh_at:
                refresh_at = time.monotonic() + owner.refresh
            if not owner.active(self.topic):
                self.forget()  # another node publishes meanwhile
                continue
            started = time.monotonic()
            try:
                await self.cycle()
                retry.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if isinstance(exc, BusUnavailable):
                    log.warning("publisher %s: %s", self.topic.name, exc)
                else:
                    log.exception("publisher %s failed", self.topic.name)
                await retry.sleep()
                self.wake.set()
                continue
            pause = owner.interval - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(pause)

    async def cycle(self) -> None:
        if self.topic.kind == "state":
            await self._publish_states()
        else:
            await self._publish_items()

    async def _publish_states(self) -> None:
        owner = self.owner
        await owner.refresh_interests()
        scopes = owner.scopes(self.topic.name)
        if not scopes:
            return
        clock = now()
        changes: list[Change] = []
        async with owner.source.transaction() as conn:
            for scope in scopes:
                data = await owner.source.state(conn, self.topic.name, scope, clock)
                last = self._last.get(scope)
                if last is not None and topics.same_content(last, data):
                    continue
                changes.append(Change(self.topic.name, scope, data["position"], data))
        await owner.bus.publish(changes)
        for change in changes:
            self._last[change.scope] = change.data
        self.published += len(changes)

    async def _publish_items(self) -> None:
        owner = self.owner
        name = self.topic.name
        if name != "devices":
            return  # the only items topic
        base = await owner.bus.last_position(name)
        if base is None:
            base = owner.origins.get(name)
        async with owner.source.transaction() as conn:
            position = (await owner.source.positions(conn)).get(name, 0)
            if base is not None and position <= base:
                return
            items: list[dict[str, Any]] = []
            units: list[list[str]] = []
            if base is None or position - base > MAX_SPAN:
                base = position  # an empty change from here: hubs behind it reload
            else:
                items, units = await owner.source.device_changes(conn, base, position)
        change = Change(
            name,
            None,
            position,
            {"position": position, "items": items},
            base=base,
            extra={"units": units},
        )
        await owner.bus.publish([change])
        self.published += 1


class Publisher:
    """Publishes every topic's changes while this node's follower is active."""

    def __init__(
        self,
        bus: Bus,
        source: Source,
        commits: Commits,
        *,
        interval: float = DEFAULT_INTERVAL,
        refresh: float = DEFAULT_REFRESH,
        interest_poll: float = INTEREST_POLL,
    ) -> None:
        self.bus = bus
        self.source = source
        self.commits = commits
        self.interval = interval
        self.refresh = refresh
        self.interest_poll = interest_poll
        self.topics = {name: TopicPublisher(self, t) for name, t in topics.TOPICS.items()}
        self._interests: dict[str, set[str | None]] = {}
        self._interests_read = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        #: Positions of the items topics' projections when this publisher started: where
        #: its first change starts when the bus knows no earlier publication.
        self.origins: dict[str, int] = {}

    def active(self, topic: topics.Topic) -> bool:
        """Whether this node follows one of the topic's projections now."""
        return any(self.commits.is_active(name) for name in topic.projections)

    def scopes(self, topic: str) -> set[str | None]:
        return self._interests.get(topic, set())

    def _committed(self, name: str, position: int) -> None:
        if not self.commits.is_active(name):
            return
        for publisher in self.topics.values():
            if name in publisher.topic.projections:
                publisher.wake.set()

    async def start(self) -> None:
        self.commits.on_commit.append(self._committed)
        try:
            async with self.source.transaction() as conn:
                positions = await self.source.positions(conn)
        except Exception as exc:  # the first change will tell hubs to reload instead
            log.warning("publisher: cannot read the projections' positions: %s", exc)
        else:
            self.origins = {
                name: positions.get(name, 0)
                for name, topic in topics.TOPICS.items()
                if topic.kind == "items"
            }
        await self._read_interests()
        self._tasks = [
            asyncio.create_task(p.run(), name=f"publisher:{name}")
            for name, p in self.topics.items()
        ]
        self._tasks.append(asyncio.create_task(self._poll_interests(), name="publisher:scopes"))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.commits.on_commit.remove(self._committed)
        await stop_tasks(self._tasks)
        self._tasks = []

    async def refresh_interests(self) -> None:
        """Read the watched scopes again if the last reading is older than
        `INTEREST_MAX_AGE` (a new screen's scope is published with the next commit)."""
        if time.monotonic() - self._interests_read >= INTEREST_MAX_AGE:
            await self._read_interests()

    async def _read_interests(self) -> None:
        """Read the watched scopes; the topics with a new scope are published at once."""
        try:
            keys = await self.bus.interests()
        except BusUnavailable:
            return
        self._interests_read = time.monotonic()
        fresh: dict[str, set[str | None]] = {}
        for key in keys:
            topic, scope = parse_interest(key)
            if topic in self.topics:
                fresh.setdefault(topic, set()).add(scope)
        woken = [t for t, scopes in fresh.items() if scopes - self._interests.get(t, set())]
        self._interests = fresh
        for name in woken:
            self.topics[name].wake.set()

    async def _poll_interests(self) -> None:
        while True:
            await asyncio.sleep(self.interest_poll)
            await self._read_interests()

    def status(self) -> dict[str, Any]:
        return {
            name: {"published": p.published, "failures": p.failures, "active": self.active(p.topic)}
            for name, p in self.topics.items()
        }
