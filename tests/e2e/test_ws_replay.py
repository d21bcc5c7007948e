"""``op: replay`` on ``/ws`` against the real app on a real PostgreSQL (docs/CONTRACT.md §6).

A crafted history (events ingested a few tenths of a second apart, so their recorded
times differ) is replayed; every replayed frame, applied by the contract's rules, must
equal what the query answers with ``as_of`` the frame's time, at the frame's position.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

from test_ws import Client, connect, settled

from ops_center.province.calendar import TZ

STEP = 0.35


async def history(api: Any, ce: Any) -> tuple[datetime, int]:
    """A camera comes online, an indicator is defined and reported, the camera goes
    offline, the indicator is reported again: `STEP` seconds apart. The moment before it
    all, and the last position."""
    start = datetime.now(TZ)
    await asyncio.sleep(0.05)
    camera = ce.code("camera.registered")
    indicator = ce.code("kpi.defined")
    batches = [
        [
            ce.event("camera.registered", camera, time=ce.at(-60)),
            ce.event("camera.status", camera, status="online"),
        ],
        [
            ce.event("kpi.defined", indicator, time=ce.at(-30)),
            ce.event("kpi.reported", indicator, value=40.0),
        ],
        [ce.event("camera.status", camera, status="offline")],
        [ce.event("kpi.reported", indicator, value=95.0)],
    ]
    last = 0
    for batch in batches:
        last = max(await api.ingest(*batch))
        await settled(api, last)
        await asyncio.sleep(STEP)
    return start, last


def replay(topic: str, start: datetime, speed: float, **fields: Any) -> dict[str, Any]:
    return {"op": "replay", "topic": topic, "from": start.isoformat(), "speed": speed, **fields}


async def until_end(client: Client, within: float = 20.0) -> list[dict[str, Any]]:
    """The replay frames until ``replay_end``."""
    got = []
    async with asyncio.timeout(within):
        while True:
            frame = await client.frame()
            if frame["op"] == "replay_end":
                return got
            if frame.get("replay"):
                got.append(frame)


async def check_against_as_of(api: Any, key: Any, topic: str, start: datetime) -> int:
    """Replay `topic` at real speed; each applied frame equals ``as_of`` its time."""
    client = await connect(api, key)
    await client.send(**replay(topic, start, 1))
    deltas = 0
    async with asyncio.timeout(30):
        while True:
            frame = await client.frame()
            if frame["op"] == "replay_end":
                assert frame["position"] == client.screen.replay_position
                break
            assert frame["replay"] is True
            assert frame["topic"] == topic
            deltas += frame["op"] == "delta"
            path = "overview" if topic == "overview" else "kpis"
            answer = await api.get(f"/api/v1/{path}?as_of={quote(frame['time'])}", key=key)
            assert answer.status == 200, answer.body
            assert answer.body["position"] == frame["position"]
            assert client.screen.replay == answer.body, frame
    await client.ws.close()
    return deltas


async def test_replayed_frames_equal_as_of_at_every_position(make_api, viewer_key, ce):
    api = await make_api()
    start, _ = await history(api, ce)
    assert await check_against_as_of(api, viewer_key, "overview", start) >= 2
    assert await check_against_as_of(api, viewer_key, "kpis", start) >= 2


async def test_the_replay_shows_the_past_value_then_the_later_one(make_api, viewer_key, ce):
    api = await make_api()
    start, _ = await history(api, ce)
    client = await connect(api, viewer_key)
    await client.send(**replay("overview", start, 1, unit=ce.UNIT))
    shown = []
    async with asyncio.timeout(20):
        while (await client.frame())["op"] != "replay_end":
            shown.append(client.screen.replay["devices"]["camera"])
    frames = client.screen.replay_frames
    assert frames[0]["op"] == "snapshot"
    before = frames[0]["data"]["devices"]["camera"]
    # the past value: the camera was online then
    assert {**before, "online": before["online"] + 1} in shown
    after = client.screen.replay["devices"]["camera"]
    assert after["online"] == before["online"]
    assert after["offline"] == before["offline"] + 1
    assert [f["position"] for f in frames] == sorted({f["position"] for f in frames})


async def test_pause_stops_frames_resume_goes_on_and_seek_jumps(make_api, viewer_key, ce):
    api = await make_api()
    start, _ = await history(api, ce)
    client = await connect(api, viewer_key)
    await client.send(**replay("overview", start, 1))
    snapshot = await client.frame()
    assert snapshot["op"] == "snapshot"
    assert snapshot["replay"] is True
    await client.send(op="pause")
    async with asyncio.timeout(10):
        while (await client.frame())["op"] != "replay_paused":
            pass
    assert await client.quiet(1.5) == []  # three ticks and more: nothing while paused

    await client.send(op="resume")
    frames = await until_end(client)
    assert [f["op"] for f in frames].count("delta") >= 2
    end = client.screen.replay

    await client.send(op="seek", at=start.isoformat())
    again = await client.frame()
    assert again["op"] == "snapshot"
    assert again["position"] == snapshot["position"]
    assert again["data"] == snapshot["data"]
    await until_end(client)
    assert client.screen.replay == end


async def test_a_faster_replay_ends_sooner_in_fewer_frames(make_api, viewer_key, ce):
    api = await make_api()
    start, _ = await history(api, ce)
    slow, fast = await connect(api, viewer_key), await connect(api, viewer_key)
    await slow.send(**replay("overview", start, 1))
    await fast.send(**replay("overview", start, 3600))
    order: list[str] = []

    async def follow(name: str, client: Client) -> list[dict[str, Any]]:
        frames = await until_end(client)
        order.append(name)
        return frames

    slow_frames, fast_frames = await asyncio.gather(follow("slow", slow), follow("fast", fast))
    assert order == ["fast", "slow"]
    assert len(fast_frames) < len(slow_frames)
    # the same content (an event that changes nothing shown is not sent: positions may differ)
    assert {**fast.screen.replay, "position": 0} == {**slow.screen.replay, "position": 0}


async def test_bad_replays_are_refused_and_live_subscriptions_carry_on(make_api, viewer_key, ce):
    api = await make_api()
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    assert (await client.frame())["op"] == "snapshot"
    start = datetime.now(TZ).isoformat()
    bad = [
        ({"op": "replay", "topic": "overview"}, "from"),
        ({"op": "replay", "topic": "overview", "from": "yesterday"}, "from"),
        ({"op": "replay", "topic": "overview", "from": "2999-01-01T00:00:00Z"}, "from"),
        ({"op": "replay", "topic": "overview", "from": 17}, "from"),
        ({"op": "replay", "topic": "overview", "from": start, "to": "2020-01-01"}, "to"),
        ({"op": "replay", "topic": "overview", "from": start, "to": "soon"}, "to"),
        ({"op": "replay", "topic": "overview", "from": start, "speed": 0}, "speed"),
        ({"op": "replay", "topic": "overview", "from": start, "speed": 3601}, "speed"),
        ({"op": "replay", "topic": "overview", "from": start, "speed": "fast"}, "speed"),
        ({"op": "replay", "topic": "overview", "from": start, "speed": True}, "speed"),
        ({"op": "replay", "topic": "devices", "from": start}, "topic"),
        ({"op": "replay", "topic": "nope", "from": start}, "topic"),
        ({"op": "replay", "topic": "overview", "from": start, "unit": "nowhere"}, "unit"),
    ]
    for message, field in bad:
        await client.send(**message)
        frame = await client.frame()
        assert frame["op"] == "error", message
        assert frame["code"] == "invalid_replay", frame
        assert frame["field"] == field, (message, frame)
    await client.send(op="pause")
    assert (await client.frame())["code"] == "no_replay"

    camera = ce.code("camera.registered")
    positions = await api.ingest(
        ce.event("camera.registered", camera, time=ce.at(-60)),
        ce.event("camera.status", camera, status="online"),
    )
    state = await client.at("overview", positions[-1])
    assert client.screen.deltas["overview"] >= 1
    assert state == (await api.get("/api/v1/overview", key=viewer_key)).body


async def test_a_replay_beside_a_live_subscription_of_the_same_topic(make_api, viewer_key, ce):
    api = await make_api()
    start, last = await history(api, ce)
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    await client.send(**replay("overview", start, 3600))
    await until_end(client)
    live = await client.at("overview", last)
    assert client.screen.replay == {**live, "position": client.screen.replay_position}
    await client.send(op="stop")
    camera = ce.code("camera.registered")
    positions = await api.ingest(
        ce.event("camera.registered", camera, time=ce.at(-60)),
        ce.event("camera.status", camera, status="degraded"),
    )
    await client.at("overview", positions[-1])
    assert client.screen.replay_frames[-1]["position"] <= last
