"""The event store going away and coming back, under a running app (docs/CONTRACT.md §2: 503).

Each test runs its own embedded PostgreSQL on a fixed port in a temporary folder, builds
the real app on it, stops the server under the app, and starts it again on the same port
and data folder. The app is never restarted: it must answer 503 (problem+json, with
``Retry-After``, nothing stored) while the store is down and recover by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops_center.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

PROBLEM = "application/problem+json"
#: How long the app may take to notice that the store is back.
RECOVERY_SECONDS = 90
#: How long the store stays down at most while clients wait to be told (503).
OUTAGE_SECONDS = 45
#: The longest a request may wait for its 503: one commit's attempts to connect (3, each
#: waiting up to the 3 s connect timeout); requests queued meanwhile are refused at once.
SLOWEST_503_SECONDS = 15


@pytest.fixture
def pg(server_dir: Path) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL (not started) with an explicit port, stopped after the test."""
    server = EmbeddedPostgres(server_dir, port=free_port())
    try:
        yield server
    finally:
        server.stop()


def assert_unavailable(reply: Any, retry_after: int) -> None:
    assert reply.status == 503, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert reply.body["status"] == 503
    assert reply.body["detail"]
    assert reply.headers["Retry-After"] == str(retry_after)


async def until_accepted(
    api: Any, event: dict[str, Any], *, allowed: tuple[int, ...] = (503,)
) -> dict[str, Any]:
    """Send `event` until the app answers 200 again (only `allowed` statuses meanwhile)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    statuses: list[int] = []
    while True:
        reply = await api.structured(event)
        statuses.append(reply.status)
        if reply.status == 200:
            return reply.results[0]
        assert reply.status in allowed, (statuses, reply.body)
        assert time.monotonic() < deadline, f"no recovery within {RECOVERY_SECONDS} s: {statuses}"
        await asyncio.sleep(0.5)


async def test_store_down_answers_503_and_the_app_recovers_by_itself(
    pg: EmbeddedPostgres, make_api: Any, make_key: Any, ce: Any
) -> None:
    """Stop the database: 503 + Retry-After, nothing stored; start it: ingest works again,
    and what was accepted before is still there (duplicates answer the original positions)."""
    dsn = await asyncio.to_thread(pg.start)
    key = make_key("integration", url=dsn)
    # Keys stay cached for the whole test: this test is about the event store.
    api = await make_api(
        key=key, database_url=dsn, key_cache_seconds=3600, unavailable_retry_after=7
    )
    code = ce.code("camera.registered")
    before = [
        ce.event("camera.registered", code, time=ce.at(0)),
        ce.event("camera.status", code, time=ce.at(1), status="online"),
    ]
    positions = await api.ingest(*before)

    await asyncio.to_thread(pg.stop)
    refused = ce.event("camera.status", code, time=ce.at(2), status="offline")
    assert_unavailable(await api.structured(refused), 7)
    refused_batch = [ce.event("camera.registered"), ce.event("kpi.defined")]
    assert_unavailable(await api.batch(refused_batch), 7)
    # a load balancer is told to send traffic elsewhere (no key needed for /readyz)
    ready = await api.get("/readyz", key=None)
    assert ready.status == 503, ready.body
    assert "store" in ready.body["failing"]
    assert ready.headers["Retry-After"] == "7"

    assert await asyncio.to_thread(pg.start) == dsn  # same port, same data folder

    # The refused event was not stored: once the store is back it is accepted, not a duplicate.
    result = await until_accepted(api, refused)
    assert result["status"] == "accepted"
    assert result["position"] > positions[-1]
    assert len((await api.batch(refused_batch)).positions()) == 2
    # What was accepted before the outage is still there, at its original positions.
    again = await api.batch(before)
    assert [(r["status"], r["position"]) for r in again.results] == [
        ("duplicate", p) for p in positions
    ]
    camera = await api.aggregate("camera.registered", code)
    assert camera.status == "offline"
    assert camera.version == 3
    # and /readyz says so again once the projections have caught up
    deadline = time.monotonic() + RECOVERY_SECONDS
    while (ready := await api.get("/readyz", key=None)).status != 200:
        assert time.monotonic() < deadline, ready.body
        await asyncio.sleep(0.5)


async def test_store_down_with_uncached_key_answers_503(
    pg: EmbeddedPostgres, make_api: Any, make_key: Any, ce: Any
) -> None:
    """Keys live in the same database: when a key cannot be checked because the store is
    down, the answer is 503 with Retry-After (unavailable), not 401 or 500."""
    dsn = await asyncio.to_thread(pg.start)
    key = make_key("integration", url=dsn)
    api = await make_api(key=key, database_url=dsn, key_cache_seconds=0)
    assert len(await api.ingest(ce.event("camera.registered"))) == 1

    await asyncio.to_thread(pg.stop)
    reply = await api.structured(ce.event("camera.registered"))
    assert reply.status == 503, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert "Retry-After" in reply.headers


async def test_key_lookups_work_again_after_the_store_restarts(
    pg: EmbeddedPostgres, make_api: Any, make_key: Any, ce: Any
) -> None:
    """With no key cache, keys are read from the database again once it is back, without
    restarting the app; events sent then are accepted."""
    dsn = await asyncio.to_thread(pg.start)
    key = make_key("integration", url=dsn)
    api = await make_api(key=key, database_url=dsn, key_cache_seconds=0)
    (position,) = await api.ingest(ce.event("camera.registered"))

    await asyncio.to_thread(pg.stop)
    await asyncio.to_thread(pg.start)
    result = await until_accepted(api, ce.event("camera.registered"), allowed=(503,))
    assert result["status"] == "accepted"
    assert result["position"] > position
    viewer = make_key("viewer", url=dsn)
    assert (await api.get("/api/v1/units", key=viewer)).status == 200


async def test_store_stopped_mid_ingest_answers_only_200_or_503_and_loses_no_ack(
    pg: EmbeddedPostgres, make_api: Any, make_key: Any, ce: Any
) -> None:
    """PostgreSQL stopped while concurrent clients send batches: every answer is 200 or
    503 (problem+json, Retry-After); after it returns, without restarting the app, every
    acknowledged event is a duplicate at its position and every refused one is accepted
    or (if its commit landed as the connection dropped) a duplicate, never a conflict.
    Each acknowledged event is stored once: its subject has one domain event."""
    dsn = await asyncio.to_thread(pg.start)
    key = make_key("integration", url=dsn)
    api = await make_api(key=key, database_url=dsn, key_cache_seconds=3600)
    acked: dict[str, tuple[dict[str, Any], int]] = {}
    refused: list[dict[str, Any]] = []
    statuses: list[int] = []
    stop = asyncio.Event()
    in_doubt = 0
    timeline: list[tuple[float, float, int]] = []
    t0 = time.monotonic()

    async def client() -> None:
        nonlocal in_doubt
        while not stop.is_set():
            events = [ce.event("camera.registered") for _ in range(20)]
            sent_at = time.monotonic()
            reply = await api.batch(events)
            statuses.append(reply.status)
            timeline.append((sent_at - t0, time.monotonic() - t0, reply.status))
            if reply.status == 200:
                for event, result in zip(events, reply.results, strict=True):
                    # "duplicate" on a first send: the commit landed but its acknowledgement
                    # was lost with the connection; the store's retry found the receipt
                    assert result["status"] in ("accepted", "duplicate"), result
                    in_doubt += result["status"] == "duplicate"
                    acked[event["id"]] = (event, result["position"])
            else:
                assert_unavailable(reply, 5)
                refused.extend(events)
                await asyncio.sleep(0.05)

    clients = [asyncio.create_task(client()) for _ in range(4)]
    for _ in range(200):  # load is flowing
        if len(acked) >= 200:
            break
        await asyncio.sleep(0.02)
    await asyncio.to_thread(pg.stop)
    for _ in range(OUTAGE_SECONDS * 20):  # until the clients have been told of the outage
        if statuses.count(503) >= 4:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(pg.start)
    stop.set()
    await asyncio.gather(*clients)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 4, timeline

    probe = ce.event("camera.registered")
    assert (await until_accepted(api, probe))["status"] == "accepted"
    events = [event for event, _ in acked.values()]
    for start in range(0, len(events), 500):
        reply = await api.batch(events[start : start + 500])
        assert [(r["status"], r["position"]) for r in reply.results] == [
            ("duplicate", acked[e["id"]][1]) for e in events[start : start + 500]
        ]
    for event, _ in acked.values():
        assert len(await api.stored_events("camera.registered", event["subject"])) == 1
    for start in range(0, len(refused), 500):
        reply = await api.batch(refused[start : start + 500])
        assert reply.status == 200
        assert {r["status"] for r in reply.results} <= {"accepted", "duplicate"}
    slowest = max(end - start for start, end, _ in timeline)
    assert slowest < SLOWEST_503_SECONDS, timeline
    print(
        f"\nstore stopped mid-ingest: slowest answer {slowest:.1f} s; "
        f"{len(statuses)} requests, {statuses.count(503)} answered "
        f"503, {len(acked)} acknowledged events checked ({in_doubt} answered duplicate after a "
        f"lost commit acknowledgement), {len(refused)} refused events resent"
    )
