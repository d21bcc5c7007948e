"""A node with two HTTP processes (``ops-center serve --workers 2``), against a real serve:
one for the module's tests that leave it as they found it, one of its own for the test that
kills a worker. The port is shared (``SO_REUSEPORT``), and keys, rate limits and
idempotency hold across the processes; a worker killed with SIGKILL is replaced while the
other answers; a screen on one worker sees what is committed through the other.

Which process answered is in the ``X-Ops-Worker`` header; the kernel spreads new
connections over the processes, so each test opens connections until both have answered.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil  # type: ignore[import-untyped]
import pytest
from opsproc import STRUCTURED, Ledger, Serve, camera, load, stored

from ops_center.access.keystore import create_key
from ops_center.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]


@asynccontextmanager
async def running_node(data_dir: Path) -> AsyncIterator[Serve]:
    """A node on the embedded PostgreSQL of `data_dir`, both workers answering."""
    serve = Serve(data_dir, free_port(), OPS_CENTER_WORKERS="2")
    serve.start()
    try:
        await serve.wait_healthy()
        await both_answer(serve)
        yield serve
    finally:
        serve.stop()
        await asyncio.to_thread(EmbeddedPostgres(data_dir).stop)


@pytest.fixture(scope="module")
async def node() -> AsyncIterator[Serve]:
    """One node for the tests that kill nothing (each uses keys and events of its own)."""
    folder = Path(tempfile.mkdtemp(prefix="ops-center-test-"))  # as conftest's server_dir
    try:
        async with running_node(folder / "data") as serve:
            yield serve
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def own_node(server_dir: Path) -> AsyncIterator[Serve]:
    """A node of this test's own (it kills a worker)."""
    async with running_node(server_dir) as serve:
        yield serve


async def both_answer(serve: Serve, within: float = 60) -> None:
    """Until both HTTP processes have answered ``/healthz`` (the second may start later)."""
    seen: set[str] = set()
    async with asyncio.timeout(within):
        while len(seen) < 2:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
                s.get(f"{serve.base}/healthz") as response,
            ):
                if response.status == 200:
                    seen.add(response.headers.get("X-Ops-Worker", "?"))
            await asyncio.sleep(0.02)


def http_children(serve: Serve) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(serve.pid).children()
        if " http " in " ".join(child.cmdline()) + " "
    ]


async def post(serve: Serve, key: str, event: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """One structured event on a new connection: (worker, status, body)."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.post(
            f"{serve.base}/api/v1/events",
            data=orjson.dumps(event),
            headers={"Authorization": f"Bearer {key}", "Content-Type": STRUCTURED},
        ) as response,
    ):
        body = orjson.loads(await response.read())
        return response.headers.get("X-Ops-Worker", "?"), response.status, body


async def test_the_same_event_raced_across_two_workers_is_stored_once(node: Serve) -> None:
    key = await asyncio.to_thread(node.key, "integration")
    assert len(http_children(node)) == 2
    for _ in range(10):
        event = camera()
        answers = await asyncio.gather(*(post(node, key, event) for _ in range(16)))
        if len({worker for worker, _, _ in answers}) == 2:
            break
    else:
        raise AssertionError("the 16 connections never reached both workers")
    assert all(status == 200 for _, status, _ in answers), answers
    results = [body["results"][0] for _, _, body in answers]
    assert sorted(r["status"] for r in results).count("accepted") == 1
    assert {r["position"] for r in results} == {results[0]["position"]}
    url = await asyncio.to_thread(node.database_url)
    found = await asyncio.to_thread(stored, url, [(event["source"], event["id"])])
    assert found[(event["source"], event["id"])] == (results[0]["position"], 1)


async def test_a_keys_rate_limit_is_one_limit_for_the_node(node: Serve) -> None:
    """5 events/s with 2 s of burst: about 10 events are admitted in a second, whichever
    worker they reach (one limit per worker would admit about 20)."""
    url = await asyncio.to_thread(node.database_url)
    key = await asyncio.to_thread(
        create_key, url, f"rated-{uuid.uuid4().hex[:8]}", "integration", scopes=["*"], rate=5
    )
    answers = await asyncio.gather(*(post(node, key, camera()) for _ in range(40)))
    assert len({worker for worker, _, _ in answers}) == 2, "one worker took every connection"
    admitted = [a for a in answers if a[1] == 200]
    refused = [a for a in answers if a[1] == 429]
    assert len(admitted) + len(refused) == 40
    assert 10 <= len(admitted) <= 14, len(admitted)


async def test_a_worker_killed_with_sigkill_is_replaced_while_the_other_answers(
    own_node: Serve,
) -> None:
    import random

    node = own_node

    key = await asyncio.to_thread(node.key, "integration")
    before = {p.pid for p in http_children(node)}
    ledger = Ledger()
    stop = asyncio.Event()
    sending = asyncio.create_task(
        load(
            node.base,
            key,
            ledger,
            senders=4,
            sizes=(1, 10),
            rng=random.Random(3),
            stop=stop,
            keep_going=True,
        )
    )
    await asyncio.sleep(0.5)
    victim = sorted(before)[0]
    psutil.Process(victim).kill()
    await asyncio.sleep(1.0)
    # the other worker answered meanwhile; the supervisor starts a new one
    answered = len([a for a in ledger.attempts if a.status == 200])
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(sending, 60)
    assert len([a for a in ledger.attempts if a.status == 200]) > answered
    after = {p.pid for p in http_children(node)}
    assert len(after) == 2
    assert victim not in after
    assert "exited with status -9" in node.output(whole=True)
    # nothing acknowledged is lost: one receipt and one domain event each
    url = await asyncio.to_thread(node.database_url)
    found = await asyncio.to_thread(stored, url, ledger.sent)
    assert ledger.acked
    assert all(found[k] == (ledger.acked[k], 1) for k in ledger.acked)


async def test_a_screen_on_one_worker_sees_events_committed_through_the_other(
    node: Serve,
) -> None:
    key = await asyncio.to_thread(node.key, "integration")
    viewer = await asyncio.to_thread(node.key, "viewer")
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            ws = await session.ws_connect(
                f"{node.base}/ws", headers={"Authorization": f"Bearer {viewer}"}
            )
            screen_worker = ws._response.headers.get("X-Ops-Worker")
            await ws.send_str('{"op": "subscribe", "topic": "feed"}')
            snapshot = orjson.loads((await ws.receive(timeout=30)).data)
            assert snapshot["op"] == "snapshot"
            for _ in range(20):
                event = camera()
                worker, status, body = await post(node, key, event)
                if worker != screen_worker:
                    break
            else:
                await ws.close()
                continue
            assert status == 200
            position = body["results"][0]["position"]
            async with asyncio.timeout(30):
                while True:
                    frame = orjson.loads((await ws.receive()).data)
                    if frame["op"] == "delta" and frame["position"] >= position:
                        break
            assert any(item["position"] == position for item in frame["data"]["items"])
            await ws.close()
            return
    raise AssertionError("could not place the screen and the ingest on two workers")
