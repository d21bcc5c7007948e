"""``GET /ws`` like an ops-room screen: real WebSockets on the real app (docs/CONTRACT.md §6).

Every test reads frames into a `streams.client.Screen`, which applies snapshots and deltas
by the contract's rules and fails on a delta that does not follow a snapshot or whose
position does not increase. "Equals the query" compares the screen's state with the
query's answer at the same position.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from ops_center.province.calendar import TZ, local_day
from streams.client import Screen
from web.appkeys import PROJECTIONS, STREAM_HUB, WEBSOCKETS

TIMEOUT = 15.0


class Client:
    """A WebSocket connection and the screen it feeds."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.screen = Screen()

    async def send(self, **message: Any) -> None:
        await self.ws.send_bytes(orjson.dumps(message))

    async def subscribe(self, topic: str, **fields: Any) -> None:
        await self.send(op="subscribe", topic=topic, **fields)

    async def frame(self, within: float = TIMEOUT) -> dict[str, Any]:
        message = await self.ws.receive(timeout=within)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        frame: dict[str, Any] = orjson.loads(message.data)
        self.screen.handle(frame)
        return frame

    async def until(self, done: Callable[[Screen], bool], within: float = TIMEOUT) -> Screen:
        deadline = time.monotonic() + within
        while not done(self.screen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; frames: {self.screen.frames[-5:]}")
            await self.frame(remaining)
        return self.screen

    async def at(self, topic: str, position: int, within: float = TIMEOUT) -> dict[str, Any]:
        """The topic's state once it reached `position`."""
        await self.until(lambda s: s.positions.get(topic, -1) >= position, within)
        return self.screen.states[topic]

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames received until none came for `seconds`."""
        got = []
        while True:
            try:
                got.append(await self.frame(seconds))
            except TimeoutError:
                return got


async def settled(api: Any, position: int) -> None:
    """Wait until every projection of the app has applied `position`."""
    async with asyncio.timeout(TIMEOUT):
        await api.app[PROJECTIONS].wait_for(position)


async def connect(api: Any, key: Any, **kwargs: Any) -> Client:
    ws = await api.client.ws_connect("/ws", headers=key.headers, **kwargs)
    return Client(ws)


def camera_online(ce: Any, status: str = "online") -> list[dict[str, Any]]:
    code = ce.code("camera.registered")
    return [
        ce.event("camera.registered", code, time=ce.at(-60)),
        ce.event("camera.status", code, status=status),
    ]


async def test_overview_snapshot_then_deltas_equal_the_query(make_api, viewer_key, ce):
    api = await make_api()
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    snapshot = await client.frame()
    assert snapshot["op"] == "snapshot"
    assert snapshot["topic"] == "overview"
    assert snapshot["data"]["position"] == snapshot["position"]
    assert set(snapshot["data"]) == {
        "position",
        "devices",
        "broadcasts",
        "services",
        "kpis",
        "alarms",
        "reports",
    }
    positions = await api.ingest(*camera_online(ce))
    state = await client.at("overview", positions[-1])
    assert client.screen.deltas["overview"] >= 1
    answer = await api.get("/api/v1/overview", key=viewer_key)
    assert answer.body == state


# -- helpers --------------------------------------------------------------------------------


async def devices_answer(api: Any, key: Any, unit: str | None = None) -> dict[str, Any]:
    """The devices query's answer as the devices topic shows it: every page, cameras then
    stations."""
    items: list[dict[str, Any]] = []
    positions = set()
    for kind in ("camera", "radio"):
        offset = 0
        while True:
            path = f"/api/v1/devices?kind={kind}&limit=1000&offset={offset}"
            if unit is not None:
                path += f"&unit={quote(unit)}"
            page = (await api.get(path, key=key)).body
            positions.add(page["position"])
            items.extend(page["items"])
            offset += 1000
            if offset >= page["total"]:
                break
    assert len(positions) == 1, positions
    return {"position": positions.pop(), "items": items}


def services_path(unit: str | None = None) -> str:
    start, end = local_day(datetime.now(UTC))
    path = f"/api/v1/services/stats?from={quote(start.isoformat())}&to={quote(end.isoformat())}"
    path += "&bucket=hour"
    return path if unit is None else f"{path}&unit={quote(unit)}"


def query_path(topic: str, unit: str | None = None) -> str:
    if topic == "services":
        return services_path(unit)
    if topic == "kpis":
        return "/api/v1/kpis"  # no unit parameter: the caller filters by owner
    path = {"overview": "/api/v1/overview", "kpis": "/api/v1/kpis", "feed": "/api/v1/feed"}[topic]
    return path if unit is None else f"{path}?unit={quote(unit)}"


async def topic_answer(api: Any, key: Any, topic: str, unit: str | None = None) -> dict[str, Any]:
    """The queries' answer a state topic shows: for ``services``, today's statistics with
    this month's index of the scope and its three lowest agencies (streams/sources.py)."""
    body: dict[str, Any] = (await api.get(query_path(topic, unit), key=key)).body
    if topic != "services":
        return body
    month = datetime.now(TZ).strftime("%Y-%m")
    scope = "" if unit is None else f"&unit={quote(unit)}"
    index = (await api.get(f"/api/v1/services/index?period={month}{scope}", key=key)).body
    ranking = await api.get(f"/api/v1/services/index/ranking?period={month}{scope}", key=key)
    body["index"] = index
    body["lowest_agencies"] = ranking.body["items"][::-1][:3]
    body["position"] = max(body["position"], index["position"])
    return body


def now_iso(minutes: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


# -- snapshots and deltas -------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["overview", "services", "kpis", "feed"])
async def test_state_topic_snapshot_is_the_query_answer(make_api, viewer_key, ce, topic):
    api = await make_api()
    await settled(api, (await api.ingest(*camera_online(ce)))[-1])
    client = await connect(api, viewer_key)
    await client.subscribe(topic)
    snapshot = await client.frame()
    answer = await topic_answer(api, viewer_key, topic)
    assert snapshot["op"] == "snapshot"
    assert snapshot["position"] == answer["position"]
    assert snapshot["data"] == answer


async def test_devices_and_alarms_snapshots(make_api, viewer_key, ce):
    api = await make_api()
    await settled(api, (await api.ingest(*camera_online(ce)))[-1])
    client = await connect(api, viewer_key)
    await client.subscribe("devices", unit=ce.UNIT)
    await client.subscribe("alarms")
    await client.until(lambda s: {"devices", "alarms"} <= set(s.states))
    assert client.screen.states["devices"] == await devices_answer(api, viewer_key, ce.UNIT)
    # other tests' servers may have raised alarms in this shared database: the snapshot
    # is whatever the alarms query answers for open alarms
    alarms = client.screen.states["alarms"]
    answer = (await api.get("/api/v1/alarms?state=open&limit=1000", key=viewer_key)).body
    assert alarms["items"] == answer["items"]
    assert {a["state"] for a in alarms["items"]} <= {"active", "acknowledged"}


async def test_deltas_have_strictly_increasing_positions_and_equal_the_queries(
    make_api, viewer_key, ce
):
    """Several batches later, every topic's state is its query's answer at the same
    position (the screen itself rejects a delta whose position does not increase)."""
    api = await make_api()
    client = await connect(api, viewer_key)
    for topic in ("overview", "services", "kpis", "feed"):
        await client.subscribe(topic, unit=ce.UNIT)
    await client.subscribe("devices", unit=ce.UNIT)
    await client.until(lambda s: len(s.states) == 5)
    indicator = ce.code("kpi.defined")
    dossier = ce.code("dossier.received")
    station = ce.code("radio.station.registered")
    owner = ce.UNIT
    batches = [
        camera_online(ce),
        [
            ce.event("kpi.defined", indicator, owner=owner),
            ce.event("kpi.reported", indicator, value=12.5),
        ],
        [
            ce.event("dossier.received", dossier, time=now_iso(-5), due_at=now_iso(60 * 24 * 3)),
            ce.event("radio.station.registered", station),
            ce.event("radio.station.status", station, status="offline"),
        ],
        [ce.event("dossier.completed", dossier, time=now_iso(-1))],
        camera_online(ce, "degraded"),
    ]
    last = 0
    for batch in batches:
        last = (await api.ingest(*batch))[-1]
    await client.at("feed", last)
    await client.at("devices", last)
    await client.at("overview", last)
    await client.until(lambda s: indicator in {i["code"] for i in s.states["kpis"]["items"]})
    await client.quiet()
    screen = client.screen
    assert all(screen.deltas.get(t, 0) >= 1 for t in ("overview", "feed", "devices", "kpis"))
    for topic in ("overview", "services", "kpis", "feed"):
        answer = await topic_answer(api, viewer_key, topic, ce.UNIT)
        if topic == "kpis":  # the unit's indicators: those the unit's overview counts
            owners = ce.PROFILE.owners_within(ce.PROFILE.descendants(ce.UNIT))
            answer["items"] = [i for i in answer["items"] if i["owner"] in owners]
        state = screen.states[topic]
        if state["position"] == answer["position"]:
            assert state == answer, topic
        else:  # nothing the topic shows changed in the last positions
            assert state["position"] < answer["position"]
            assert {**state, "position": 0} == {**answer, "position": 0}, topic
    assert screen.states["devices"] == await devices_answer(api, viewer_key, ce.UNIT)
    kinds = {(i["kind"], i["status"]) for i in screen.states["devices"]["items"]}
    assert ("radio", "offline") in kinds
    assert ("camera", "degraded") in kinds


async def test_a_unit_subscription_sees_only_its_units(make_api, viewer_key, ce):
    api = await make_api()
    other = next(
        u.code
        for u in ce.PROFILE.units.values()
        if u.level in ("commune", "ward") and u.code != ce.UNIT and u.parent != ce.UNIT
    )
    client = await connect(api, viewer_key)
    await client.subscribe("devices", unit=other)
    await client.subscribe("feed", unit=other)
    await client.until(lambda s: len(s.states) == 2)
    await api.ingest(*camera_online(ce))  # in ce.UNIT
    assert await client.quiet(0.5) == []
    code = ce.code("camera.registered")
    positions = await api.ingest(
        ce.event("camera.registered", code, unit=other, time=ce.at(-60)),
        ce.event("camera.status", code, status="offline"),
    )
    devices = await client.at("devices", positions[-1])
    assert [i["code"] for i in devices["items"] if i["code"] == code] == [code]
    feed = await client.at("feed", positions[-1])
    assert {i["unit"] for i in feed["items"]} == {other}


async def test_a_device_that_moves_away_is_removed_from_its_old_unit(make_api, viewer_key, ce):
    api = await make_api()
    other = next(
        u.code
        for u in ce.PROFILE.units.values()
        if u.level in ("commune", "ward") and u.code != ce.UNIT and u.parent != ce.UNIT
    )
    code = ce.code("camera.registered")
    await settled(api, (await api.ingest(ce.event("camera.registered", code, time=ce.at(-60))))[0])
    client = await connect(api, viewer_key)
    await client.subscribe("devices", unit=ce.UNIT)
    await client.until(lambda s: "devices" in s.states)
    assert code in {i["code"] for i in client.screen.states["devices"]["items"]}
    moved = await api.ingest(ce.event("camera.registered", code, unit=other, time=ce.at(-30)))
    state = await client.at("devices", moved[0])
    assert code not in {i["code"] for i in state["items"]}
    assert state == await devices_answer(api, viewer_key, ce.UNIT)


async def test_unsubscribe_stops_the_topic(make_api, viewer_key, ce):
    api = await make_api()
    client = await connect(api, viewer_key)
    await client.subscribe("feed")
    await client.frame()
    await client.send(op="unsubscribe", topic="feed")
    await api.ingest(*camera_online(ce))
    assert await client.quiet(0.5) == []
    await client.send(op="unsubscribe", topic="feed")
    error = await client.frame()
    assert error["code"] == "not_subscribed"


async def test_subscribing_again_replaces_the_subscription(make_api, viewer_key, ce):
    api = await make_api()
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    await client.frame()
    await client.subscribe("overview", unit=ce.UNIT)
    snapshot = await client.frame()
    assert snapshot["op"] == "snapshot"
    answer = await api.get(query_path("overview", ce.UNIT), key=viewer_key)
    assert snapshot["data"] == answer.body


# -- resume -----------------------------------------------------------------------------------


async def test_resume_with_since_replays_the_missed_device_changes(make_api, viewer_key, ce):
    api = await make_api()
    first = await connect(api, viewer_key)
    await first.subscribe("devices", unit=ce.UNIT)
    await first.until(lambda s: "devices" in s.states)
    positions = await api.ingest(*camera_online(ce))
    await first.at("devices", positions[-1])
    await first.ws.close()
    missed = [await api.ingest(*camera_online(ce, s)) for s in ("offline", "degraded")]
    second = await connect(api, viewer_key)
    second.screen = first.screen  # the same screen, reconnected
    snapshots = dict(second.screen.snapshots)
    await second.subscribe("devices", unit=ce.UNIT, since=first.screen.positions["devices"])
    state = await second.at("devices", missed[-1][-1])
    assert second.screen.snapshots == snapshots  # replayed, not reloaded
    assert state == await devices_answer(api, viewer_key, ce.UNIT)


async def test_resume_with_since_gets_one_delta_for_a_state_topic(make_api, viewer_key, ce):
    api = await make_api()
    first = await connect(api, viewer_key)
    await first.subscribe("overview")
    await first.frame()
    positions = await api.ingest(*camera_online(ce))
    await first.at("overview", positions[-1])
    await first.ws.close()
    missed = await api.ingest(*camera_online(ce, "offline"))
    second = await connect(api, viewer_key)
    second.screen = first.screen
    await second.subscribe("overview", since=first.screen.positions["overview"])
    frame = await second.frame()
    assert frame["op"] == "delta"
    assert frame["position"] >= missed[-1]
    answer = await api.get("/api/v1/overview", key=viewer_key)
    assert second.screen.states["overview"] == answer.body


async def test_resume_from_a_position_out_of_the_window_sends_a_snapshot(make_api, viewer_key, ce):
    api = await make_api(stream_resume_changes=2, stream_resume_states=2)
    watcher = await connect(api, viewer_key)
    await watcher.subscribe("devices")
    await watcher.subscribe("overview")
    await watcher.until(lambda s: len(s.states) == 2)
    old = dict(watcher.screen.positions)
    last = 0
    for _ in range(4):  # four publications: the window keeps two
        last = (await api.ingest(*camera_online(ce)))[-1]
        await watcher.at("devices", last)
        await watcher.at("overview", last)
    client = await connect(api, viewer_key)
    await client.subscribe("devices", since=old["devices"])
    await client.subscribe("overview", since=old["overview"])
    await client.until(lambda s: len(s.states) == 2)
    assert client.screen.snapshots == {"devices": 1, "overview": 1}
    assert client.screen.positions["overview"] >= last
    assert client.screen.states["devices"] == await devices_answer(api, viewer_key)


async def reports_answer(api: Any, key: Any, unit: str | None = None) -> dict[str, Any]:
    """The open reports as the reports topic shows them: every page of the list."""
    items: list[dict[str, Any]] = []
    positions = set()
    path = "/api/v1/reports?state=open&limit=1000"
    if unit is not None:
        path += f"&unit={quote(unit)}"
    cursor = None
    while True:
        page = (await api.get(path if cursor is None else f"{path}&cursor={cursor}", key=key)).body
        positions.add(page["position"])
        items.extend(page["items"])
        if page["next"] is None:
            break
        cursor = quote(page["next"])
    assert len(positions) == 1, positions
    return {"position": positions.pop(), "items": items}


async def test_reports_topic_snapshot_deltas_and_resume(make_api, viewer_key, ce):
    """The reports topic is the open reports of the scope: a new report shows, a resolved
    one leaves; a screen that reconnects with `since` gets what it missed as a delta."""
    api = await make_api()
    first = await connect(api, viewer_key)
    await first.subscribe("reports", unit=ce.UNIT)
    snapshot = await first.frame()
    assert snapshot["op"] == "snapshot"
    assert snapshot["data"] == await reports_answer(api, viewer_key, ce.UNIT)
    report = ce.code("report.received")
    positions = await api.ingest(
        ce.event("report.received", report, time=now_iso(-10)),
        ce.event("report.assigned", report, time=now_iso(-5), due_at=now_iso(60 * 72)),
    )
    state = await first.at("reports", positions[-1])
    assert first.screen.deltas["reports"] >= 1
    mine = [i for i in state["items"] if i["code"] == report]
    assert [(i["state"], i["agency"], i["located_by"]) for i in mine] == [
        ("assigned", ce.AGENCY, "self")
    ]
    assert state == await reports_answer(api, viewer_key, ce.UNIT)
    await first.ws.close()

    # missed while away: the report is resolved, another one received
    other = ce.code("report.received")
    missed = await api.ingest(
        ce.event("report.resolved", report, time=now_iso(-1)),
        ce.event("report.received", other, time=now_iso(-1), lat=None, lon=None),
    )
    second = await connect(api, viewer_key)
    second.screen = first.screen  # the same screen, reconnected
    snapshots = dict(second.screen.snapshots)
    await second.subscribe("reports", unit=ce.UNIT, since=first.screen.positions["reports"])
    frame = await second.frame()
    assert frame["op"] == "delta"
    assert {"code": report} in frame["data"]["removed"]
    state = await second.at("reports", missed[-1])
    assert second.screen.snapshots == snapshots  # replayed, not reloaded
    assert report not in {i["code"] for i in state["items"]}
    added = [i for i in state["items"] if i["code"] == other]
    assert [(i["state"], i["located_by"]) for i in added] == [("new", "unit")]
    assert state == await reports_answer(api, viewer_key, ce.UNIT)


async def test_resume_when_nothing_changed_sends_nothing(make_api, viewer_key, ce):
    api = await make_api()
    first = await connect(api, viewer_key)
    await first.subscribe("devices")
    await first.subscribe("overview")
    await first.until(lambda s: len(s.states) == 2)
    positions = await api.ingest(*camera_online(ce))
    await first.at("devices", positions[-1])
    await first.at("overview", positions[-1])
    second = await connect(api, viewer_key)
    second.screen = first.screen
    await second.subscribe("devices", since=first.screen.positions["devices"])
    await second.subscribe("overview", since=first.screen.positions["overview"])
    assert await second.quiet(0.5) == []


# -- slow clients -----------------------------------------------------------------------------


class RawClient:
    """A WebSocket client on a plain socket with a tiny receive buffer, which reads only
    when told: a screen on a congested link."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, token: str) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        payload = orjson.dumps(message)
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def frame(self, within: float) -> dict[str, Any]:
        async with asyncio.timeout(within):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
        assert first & 0x0F == 0x1, first  # text
        frame: dict[str, Any] = orjson.loads(payload)
        return frame

    def close(self) -> None:
        self.writer.close()


async def test_a_slow_client_gets_coalesced_frames_and_never_slows_the_others(
    make_api, viewer_key, ce
):
    api = await make_api(ws_queue_frames=20)
    server = api.client.server
    slow = await RawClient.open(server.host, server.port, viewer_key.secret)
    slow.send({"op": "subscribe", "topic": "feed"})
    for ws in api.app[WEBSOCKETS]:  # a congested link: small buffers at both ends
        ws.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        fast = await connect(api, viewer_key)
        await fast.subscribe("feed")
        await fast.frame()
        last = 0
        for _ in range(80):
            batch = [ce.event("camera.registered") for _ in range(40)]
            last = (await api.ingest(*batch))[-1]
            await fast.at("feed", last, within=5)  # the fast screen keeps up, batch by batch
        hub = api.app[STREAM_HUB]
        outboxes = [s.outbox for s in hub.sessions]
        slowest = max(outboxes, key=lambda o: o.coalesced)
        assert slowest.coalesced >= 1
        assert all(o.high_water <= o.limit for o in outboxes)
        screen = Screen()
        while screen.positions.get("feed", 0) < last:
            screen.handle(await slow.frame(TIMEOUT))
    finally:
        slow.close()
    assert screen.deltas["feed"] < 80  # coalesced
    answer = await api.get("/api/v1/feed", key=viewer_key)
    assert screen.states["feed"] == answer.body == fast.screen.states["feed"]


# -- the handshake and bad messages -----------------------------------------------------------


async def test_a_connection_needs_a_key_that_may_read(make_api, viewer_key, make_key):
    api = await make_api()
    with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
        await api.client.ws_connect("/ws")
    assert missing.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
        await api.client.ws_connect("/ws?token=not-a-key")
    assert unknown.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as forbidden:
        await api.client.ws_connect("/ws", headers=api.key.headers)  # an integration key
    assert forbidden.value.status == 403
    for key in (viewer_key, make_key("operator"), make_key("admin")):
        ws = await api.client.ws_connect(f"/ws?token={key.secret}")
        await ws.close()


async def test_origins_outside_the_allowlist_are_refused(make_api, viewer_key):
    api = await make_api(ws_origins=("https://wall.example.vn",))
    server = api.client.server
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(
            "/ws", headers={**viewer_key.headers, "Origin": "https://evil.example"}
        )
    assert refused.value.status == 403
    for origin in ("https://wall.example.vn", f"http://{server.host}:{server.port}", None):
        headers = dict(viewer_key.headers)
        if origin is not None:
            headers["Origin"] = origin
        ws = await api.client.ws_connect("/ws", headers=headers)
        await ws.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_message"),
        (b'{"op": "publish", "topic": "feed"}', "unknown_op"),
        (b'{"op": "subscribe", "topic": "weather"}', "unknown_topic"),
        (b'{"op": "subscribe", "topic": "overview", "unit": "NOWHERE"}', "unknown_unit"),
        (b'{"op": "subscribe", "topic": "overview", "since": -1}', "invalid_since"),
        (b'{"op": "subscribe", "topic": "overview", "since": "5"}', "invalid_since"),
        (b'{"op": "unsubscribe", "topic": "kpis"}', "not_subscribed"),
    ],
)
async def test_a_bad_message_gets_an_error_frame_and_the_connection_stays(
    make_api, viewer_key, message, code
):
    api = await make_api()
    client = await connect(api, viewer_key)
    await client.ws.send_bytes(message)
    error = await client.frame()
    assert error["op"] == "error"
    assert error["code"] == code
    assert error["detail"]
    await client.subscribe("alarms")
    assert (await client.frame())["op"] == "snapshot"


async def test_a_message_over_the_limit_closes_the_connection(make_api, viewer_key):
    api = await make_api(ws_max_message_bytes=1024)
    ws = await api.client.ws_connect("/ws", headers=viewer_key.headers)
    await ws.send_str('{"op": "subscribe", "topic": "feed", "pad": "' + "x" * 2000 + '"}')
    message = await ws.receive(timeout=TIMEOUT)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_the_server_sends_heartbeat_pings(make_api, viewer_key):
    api = await make_api(ws_heartbeat_seconds=0.4)
    ws = await api.client.ws_connect("/ws", headers=viewer_key.headers, autoping=False)
    message = await ws.receive(timeout=TIMEOUT)
    assert message.type == aiohttp.WSMsgType.PING
    await ws.close()


async def test_shutdown_closes_connections_with_going_away(make_api, viewer_key):
    api = await make_api()
    client = await connect(api, viewer_key)
    await client.subscribe("overview")
    await client.frame()
    started = time.monotonic()
    closing = asyncio.create_task(api.client.server.close())
    message = await client.ws.receive(timeout=TIMEOUT)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert client.ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    await closing
    assert time.monotonic() - started < 5


async def test_a_plain_get_is_told_to_upgrade(make_api, viewer_key):
    api = await make_api()
    reply = await api.get("/ws", key=viewer_key)
    assert reply.status == 426
    assert reply.content_type == "application/problem+json"
