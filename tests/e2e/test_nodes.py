"""Several nodes sharing PostgreSQL and Redis: cross-node delivery and runner takeover.

The in-process tests run two apps on two ports in this process (two nodes with their own
pools, runners, hubs and Redis connections); the last test runs two real ``ops-center
serve`` processes, as docker-compose does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from test_ws import TIMEOUT, Client, camera_online, connect, devices_answer

from ops_center.embedded.postgres import free_port
from web.appkeys import PROJECTIONS


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def active(api: Any, *, within: float = TIMEOUT) -> None:
    """Wait until the app's node follows the log (its follower holds the lock)."""
    follower = api.app[PROJECTIONS]
    deadline = time.monotonic() + within
    while follower.state != "active":
        assert time.monotonic() < deadline, follower.status()
        await asyncio.sleep(0.05)


async def test_an_event_ingested_on_one_node_reaches_a_screen_on_the_other(
    make_api, viewer_key, ce, redis_url, namespace
):
    node_a = await make_api(redis_url=redis_url, redis_namespace=namespace)
    await active(node_a)
    node_b = await make_api(redis_url=redis_url, redis_namespace=namespace)
    assert node_b.app[PROJECTIONS].state in ("starting", "standby")
    screen = await connect(node_b, viewer_key)
    for topic in ("overview", "feed", "devices"):
        await screen.subscribe(topic, unit=ce.UNIT)
    await screen.until(lambda s: len(s.states) == 3)
    positions = await node_a.ingest(*camera_online(ce))
    for topic in ("overview", "feed", "devices"):
        await screen.at(topic, positions[-1])
    for topic in ("overview", "feed"):
        answer = await node_b.get(f"/api/v1/{topic}?unit={ce.UNIT}", key=viewer_key)
        assert screen.screen.states[topic] == answer.body
    assert screen.screen.states["devices"] == await devices_answer(node_b, viewer_key, ce.UNIT)


async def test_a_standby_node_takes_over_the_runners_when_the_active_node_stops(
    make_api, viewer_key, ce, redis_url, namespace
):
    node_a = await make_api(redis_url=redis_url, redis_namespace=namespace)
    await active(node_a)
    node_b = await make_api(redis_url=redis_url, redis_namespace=namespace)
    screen = await connect(node_b, viewer_key)
    await screen.subscribe("devices")
    await screen.subscribe("feed")
    await screen.until(lambda s: len(s.states) == 2)
    before = await node_a.ingest(*camera_online(ce))
    await screen.at("devices", before[-1])

    await node_a.client.close()  # the active node stops: its advisory locks are released
    after = await node_b.ingest(*camera_online(ce, "offline"))
    await active(node_b, within=20)  # a standby runner retries the lock every 5 s
    await screen.at("devices", after[-1], within=20)
    await screen.at("feed", after[-1], within=20)
    assert screen.screen.snapshots == {"devices": 1, "feed": 1}  # the chain continued
    assert screen.screen.states["devices"] == await devices_answer(node_b, viewer_key)


# -- two server processes -------------------------------------------------------------------


def _serve(port: int, database_url: str, redis_url: str, namespace: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        OPS_CENTER_REDIS_NAMESPACE=namespace,
        OPS_CENTER_COMMIT_MAX_WAIT_MS="1",
    )
    args = [sys.executable, "-m", "ops_center.cli", "serve", "--port", str(port)]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _healthy(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{base} did not become healthy")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_two_server_processes_share_the_stream_and_take_over(
    empty_database_url, redis_url, namespace, make_key, ce
):
    """Both nodes start together on a new database (as docker-compose starts them): the
    setup lock lets one create the tables while the other waits."""
    database_url = empty_database_url
    viewer = make_key("viewer", url=database_url)
    writer = make_key("integration", url=database_url)
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    procs: list[subprocess.Popen] = []
    try:
        async with aiohttp.ClientSession() as session:
            procs = [_serve(port, database_url, redis_url, namespace) for port in ports]
            for base, proc in zip(bases, procs, strict=True):
                await _healthy(session, base, proc)

            async def ingest(base: str, events: list[dict[str, Any]]) -> int:
                async with session.post(
                    f"{base}/api/v1/events",
                    data=orjson.dumps(events),
                    headers={
                        **writer.headers,
                        "Content-Type": "application/cloudevents-batch+json",
                    },
                ) as response:
                    body = await response.json()
                    assert response.status == 200, body
                    return int(body["results"][-1]["position"])

            ws = await session.ws_connect(f"{bases[1]}/ws", headers=viewer.headers)
            screen = Client(ws)
            await screen.subscribe("feed")
            await screen.subscribe("devices")
            await screen.until(lambda s: len(s.states) == 2)
            first = await ingest(bases[0], camera_online(ce))
            await screen.at("feed", first)
            await screen.at("devices", first)

            await asyncio.to_thread(_stop, procs[0])
            second = await ingest(bases[1], camera_online(ce, "degraded"))
            await screen.at("feed", second, within=30)
            await screen.at("devices", second, within=30)
            # the nodes' alarm rules may append events of their own: compare at one position
            for _ in range(5):
                async with session.get(f"{bases[1]}/api/v1/feed", headers=viewer.headers) as got:
                    answer = await got.json()
                state = await screen.at("feed", answer["position"], within=30)
                if state["position"] == answer["position"]:
                    break
            assert state == answer
            await ws.close()
    finally:
        for proc in procs:
            _stop(proc)
