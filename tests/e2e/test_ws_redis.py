"""Live streams through Redis: delivery, Redis stopped and restarted (history lost)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from test_ws import camera_online, connect, devices_answer, settled

from ops_center.embedded.redis import EmbeddedRedis


@pytest.fixture
def namespace() -> str:
    """A private key prefix on the shared Redis."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def test_changes_travel_through_redis(make_api, viewer_key, ce, redis_url, namespace):
    api = await make_api(redis_url=redis_url, redis_namespace=namespace)
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    await client.subscribe("devices", unit=ce.UNIT)
    await client.until(lambda s: len(s.states) == 2)
    positions = await api.ingest(*camera_online(ce))
    await client.at("devices", positions[-1])
    state = await client.at("overview", positions[-1])
    assert state == (await api.get("/api/v1/overview", key=viewer_key)).body
    assert client.screen.states["devices"] == await devices_answer(api, viewer_key, ce.UNIT)


@pytest.fixture
async def redis_server(embedded_redis: EmbeddedRedis) -> Any:
    """The session's embedded Redis, running again after the test whatever it did."""
    yield embedded_redis
    await asyncio.to_thread(embedded_redis.start)


async def test_with_redis_down_screens_are_told_then_resynced_and_ingest_goes_on(
    make_api, viewer_key, ce, redis_server, namespace
):
    api = await make_api(
        redis_url=redis_server.url, redis_namespace=namespace, stream_grace_seconds=0.2
    )
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    await client.subscribe("devices", unit=ce.UNIT)
    await client.until(lambda s: len(s.states) == 2)
    epoch = client.screen.frames[0]["epoch"]
    positions = await api.ingest(*camera_online(ce))
    await client.at("overview", positions[-1])

    await asyncio.to_thread(redis_server.stop)
    await client.until(lambda s: any(e["code"] == "stream_interrupted" for e in s.errors))
    during = await api.ingest(*camera_online(ce, "offline"))  # ingest goes on
    await settled(api, during[-1])
    assert client.screen.positions["overview"] < during[-1]  # and the screen knows it is stale

    await asyncio.to_thread(redis_server.start)
    await client.until(lambda s: s.snapshots == {"overview": 2, "devices": 2})
    resynced = [f for f in client.screen.frames if f["op"] == "snapshot"][-2:]
    assert {f["epoch"] for f in resynced} != {epoch}
    assert (
        client.screen.states["overview"] == (await api.get("/api/v1/overview", key=viewer_key)).body
    )
    assert client.screen.states["devices"] == await devices_answer(api, viewer_key, ce.UNIT)

    after = await api.ingest(*camera_online(ce))  # and live updates flow again
    await client.at("devices", after[-1])
    state = await client.at("overview", after[-1])
    assert state == (await api.get("/api/v1/overview", key=viewer_key)).body


async def test_a_redis_restart_sends_fresh_snapshots_with_a_new_epoch(
    make_api, viewer_key, ce, redis_server, namespace
):
    api = await make_api(redis_url=redis_server.url, redis_namespace=namespace)
    client = await connect(api, viewer_key)
    await client.subscribe("feed")
    first = await client.frame()
    await asyncio.to_thread(redis_server.restart)
    await client.until(lambda s: s.snapshots["feed"] == 2)
    second = next(f for f in reversed(client.screen.frames) if f["op"] == "snapshot")
    assert second["epoch"] != first["epoch"]
    positions = await api.ingest(*camera_online(ce))
    state = await client.at("feed", positions[-1])
    assert state == (await api.get("/api/v1/feed", key=viewer_key)).body


async def test_the_server_starts_and_ingests_while_redis_is_down(
    make_api, viewer_key, ce, redis_server, namespace
):
    await asyncio.to_thread(redis_server.stop)
    api = await make_api(
        redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
        redis_namespace=namespace,
        stream_grace_seconds=0.2,
    )
    positions = await api.ingest(*camera_online(ce))
    await settled(api, positions[-1])
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    await client.until(lambda s: "overview" in s.states and s.errors)
    assert client.screen.errors[0]["code"] == "stream_interrupted"
    await asyncio.to_thread(redis_server.start)
    await client.until(lambda s: s.snapshots["overview"] == 2)
    later = await api.ingest(*camera_online(ce))
    state = await client.at("overview", later[-1])
    assert state == (await api.get("/api/v1/overview", key=viewer_key)).body
