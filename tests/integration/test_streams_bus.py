"""The stream bus adapters: in-memory and Redis (a real server: embedded or TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from ops_center.embedded.redis import EmbeddedRedis
from ops_center.runtime.tasks import stop_tasks
from streams.bus import Bus, BusEvent, BusUnavailable, Change, Interrupted, Resumed
from streams.memory import InMemoryBus
from streams.redis_bus import RedisBus

WAIT = 10.0


class Listener:
    """Collects what a bus's listener yields, in a background task."""

    def __init__(self, bus: Bus) -> None:
        self.events: asyncio.Queue[BusEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(bus))

    async def _run(self, bus: Bus) -> None:
        async for event in bus.listen():
            self.events.put_nowait(event)

    async def next(self, kind: type = object) -> Any:
        """The next event of `kind` (others are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                event = await self.events.get()
                if isinstance(event, kind):
                    return event

    async def stop(self) -> None:
        await stop_tasks([self.task])


def change(position: int, topic: str = "overview", **fields: Any) -> Change:
    return Change(topic, fields.pop("scope", None), position, {"position": position}, **fields)


def redis_bus(url: str) -> RedisBus:
    return RedisBus(url, namespace=f"test-{uuid.uuid4().hex[:12]}", block_ms=200)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    adapter: Bus
    if request.param == "memory":
        adapter = InMemoryBus()
    else:
        adapter = redis_bus(request.getfixturevalue("redis_url"))
    await adapter.start()
    yield adapter
    await adapter.close()


async def started(bus: Bus) -> Listener:
    """A listener that is reading (changes published from now on reach it)."""
    listener = Listener(bus)
    async with asyncio.timeout(WAIT):
        while isinstance(bus, RedisBus) and not bus.epoch:
            assert not listener.task.done(), listener.task
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
    return listener


def test_a_change_survives_encoding():
    original = Change("devices", None, 42, {"items": [{"code": "c"}]}, 40, {"units": [["U"]]})
    assert Change.decode(original.encode()) == original


async def test_changes_reach_the_listener_in_order(bus: Bus):
    listener = await started(bus)
    await bus.publish([change(1), change(2, scope="U1")])
    await bus.publish([change(3, "feed")])
    got = [await listener.next(Change) for _ in range(3)]
    assert [(c.topic, c.scope, c.position) for c in got] == [
        ("overview", None, 1),
        ("overview", "U1", 2),
        ("feed", None, 3),
    ]
    await listener.stop()


async def test_the_last_position_of_an_items_topic_is_kept(bus: Bus):
    assert await bus.last_position("devices") is None
    await bus.publish([change(7, "devices", base=5), change(9, "overview")])
    assert await bus.last_position("devices") == 7
    assert await bus.last_position("overview") is None


async def test_interests_are_shared_until_they_expire(bus: Bus):
    await bus.declare_interest(["overview|U1", "feed|"], ttl=0.3)
    await bus.declare_interest(["kpis|"], ttl=30)
    assert await bus.interests() >= {"overview|U1", "feed|", "kpis|"}
    await asyncio.sleep(0.5)
    interests = await bus.interests()
    assert "kpis|" in interests
    assert "overview|U1" not in interests


async def test_a_lagging_in_memory_listener_is_told_it_lost_changes():
    bus = InMemoryBus(backlog=3)
    listener = await started(bus)
    await bus.publish([change(p) for p in range(1, 11)])
    positions = [(await listener.next(Change)).position for _ in range(3)]
    assert positions == [1, 2, 3]
    assert (await listener.next()).lost is True
    await bus.publish([change(11)])
    assert (await listener.next(Change)).position == 11
    await listener.stop()


# -- Redis faults -------------------------------------------------------------------------------


@pytest.fixture
async def redis_server(embedded_redis: EmbeddedRedis) -> AsyncIterator[EmbeddedRedis]:
    yield embedded_redis
    await asyncio.to_thread(embedded_redis.start)


async def test_redis_stopped_then_started_interrupts_and_resumes_with_a_new_epoch(redis_server):
    bus = redis_bus(redis_server.url)
    listener = await started(bus)
    epoch = bus.epoch
    await asyncio.to_thread(redis_server.stop)
    assert isinstance(await listener.next(Interrupted), Interrupted)
    with pytest.raises(BusUnavailable):
        await bus.publish([change(1)])
    await asyncio.to_thread(redis_server.start)
    resumed = await listener.next(Resumed)
    assert resumed.lost is True
    assert resumed.epoch != epoch
    await bus.publish([change(2)])
    assert (await listener.next(Change)).position == 2
    await listener.stop()
    await bus.close()


async def test_a_dropped_connection_resumes_without_losing_changes(redis_url):
    bus = redis_bus(redis_url)
    listener = await started(bus)
    admin = Redis.from_url(redis_url)
    try:
        await admin.client_kill_filter(_type="normal", skipme=True)
        for _ in range(20):  # the publisher's own connection was dropped too
            try:
                await bus.publish([change(5)])
                break
            except BusUnavailable:
                await asyncio.sleep(0.05)
        resumed = await listener.next(Resumed)
        assert resumed.lost is False
        assert (await listener.next(Change)).position == 5
    finally:
        await admin.aclose()
        await listener.stop()
        await bus.close()


async def test_a_listener_away_longer_than_the_stream_keeps_is_told(redis_server):
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    bus = RedisBus(redis_server.url, namespace=namespace, maxlen=5)
    listener = await started(bus)
    await bus.publish([change(1)])
    assert (await listener.next(Change)).position == 1
    admin = Redis.from_url(redis_server.url)
    other = RedisBus(redis_server.url, namespace=namespace, maxlen=5)  # another node
    try:
        await admin.client_kill_filter(_type="normal", skipme=True)
        # Redis trims whole nodes of 100 entries: 300 more leave none of the unread ones
        await other.publish([change(position) for position in range(2, 302)])
        resumed = await listener.next(Resumed)
        assert resumed.lost is True
    finally:
        await admin.aclose()
        await other.close()
        await listener.stop()
        await bus.close()
