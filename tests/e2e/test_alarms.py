"""Alarms end to end (docs/CONTRACT.md §4): rules raising from ingested events and from the
clock alone, the operators' actions by role, the queries, the overview's count and the
``alarms`` live topic, on the real app with its rules running.

The module has a database of its own (the rules follow the whole log); every test uses
fresh subject codes. Grace periods are zero and the clock ticks every 0.1 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import aiohttp
import orjson
import pytest

from streams.client import Screen

PROBLEM = "application/problem+json"
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def alarms_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
def keys(alarms_url: str, make_key: Any) -> dict[str, Any]:
    return {
        role: make_key(role, url=alarms_url)
        for role in ("integration", "viewer", "operator", "admin")
    }


@pytest.fixture
async def api(alarms_url: str, make_api: Any, keys: dict[str, Any]) -> Any:
    return await make_api(
        key=keys["integration"],
        database_url=alarms_url,
        alarm_rules=True,
        alarm_offline_grace_seconds=0.0,
        alarm_tick_seconds=0.1,
    )


async def find(
    api: Any, key: Any, subject: str, state: str | None = None, occurrence: int | None = None
) -> dict[str, Any]:
    """The latest alarm of `subject` (in `state`, of that `occurrence`), waiting for it to
    show (the alarms read model follows the log: an action acknowledged a moment ago may
    not show yet)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            reply = await api.get("/api/v1/alarms?limit=1000", key=key)
            assert reply.status == 200, reply.body
            for item in reply.body["items"]:
                if (
                    item["subject"] == subject
                    and state in (None, item["state"])
                    and occurrence in (None, item["occurrence"])
                ):
                    return item
            await asyncio.sleep(0.05)


async def detail(api: Any, key: Any, alarm: str, events: int) -> dict[str, Any]:
    """The alarm's detail once its history has `events` events."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            reply = await api.get(f"/api/v1/alarms/{alarm}", key=key)
            assert reply.status == 200, reply.body
            if len(reply.body["history"]) >= events:
                return reply.body  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


async def act(api: Any, key: Any, alarm: str, action: str, body: Any = None) -> Any:
    data = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    return await api.request(
        "POST",
        f"/api/v1/alarms/{alarm}/{action}",
        key=key,
        headers={"Content-Type": "application/json"},
        data=data,
    )


def assert_problem(reply: Any, status: int, name: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert reply.body["status"] == status
    assert reply.body["detail"]
    if name is not None:
        assert reply.body["invalid_params"][0]["name"] == name, reply.body


def faulty_station(ce: Any) -> tuple[str, list[dict[str, Any]]]:
    code = ce.code("radio.station.registered")
    return code, [
        ce.event("radio.station.registered", code, time=ce.at(-60)),
        ce.event("radio.cluster.fault", code, cluster=2, fault="network"),
    ]


async def test_alarm_actions_by_role_and_history(api: Any, keys: dict[str, Any], ce: Any) -> None:
    code, events = faulty_station(ce)
    await api.ingest(*events)
    alarm = await find(api, keys["viewer"], code)
    assert (alarm["cause"], alarm["state"], alarm["severity"], alarm["unit"]) == (
        "cluster_fault",
        "active",
        "warning",
        ce.UNIT,
    )
    assert alarm["detail"] == {"clusters": [{"cluster": 2, "fault": "network"}]}
    alarm_id = alarm["id"]

    assert_problem(await act(api, keys["viewer"], alarm_id, "ack"), 403)
    assert_problem(await act(api, keys["integration"], alarm_id, "ack"), 403)
    assert_problem(await act(api, keys["viewer"], alarm_id, "resolve"), 403)
    assert_problem(await act(api, None, alarm_id, "ack"), 401)
    assert_problem(await act(api, keys["operator"], str(uuid4()), "ack"), 404)
    assert_problem(await act(api, keys["operator"], "not-an-id", "resolve"), 404)
    assert_problem(await act(api, keys["operator"], alarm_id, "ack", {"note": 5}), 400, "note")
    assert_problem(await act(api, keys["operator"], alarm_id, "ack", [1]), 400, "body")
    assert_problem(await act(api, keys["operator"], alarm_id, "ack", b"{"), 400, "body")
    assert_problem(await act(api, keys["operator"], alarm_id, "ack", {"nope": 1}), 400, "nope")

    acked = await act(api, keys["operator"], alarm_id, "ack", {"note": "đội kỹ thuật đang tới"})
    assert acked.status == 200, acked.body
    assert (acked.body["state"], acked.body["by"]) == ("acknowledged", keys["operator"].name)
    assert acked.body["position"] > 0
    again = await act(api, keys["admin"], alarm_id, "ack")
    assert_problem(again, 409)
    assert again.body["state"] == "acknowledged"

    resolved = await act(api, keys["admin"], alarm_id, "resolve")
    assert resolved.status == 200, resolved.body
    assert resolved.body["state"] == "resolved"
    twice = await act(api, keys["operator"], alarm_id, "resolve", {"note": "again"})
    assert_problem(twice, 409)
    assert twice.body["type"] == "urn:ops-center:problem:alarm-state"
    assert "already resolved" in twice.body["detail"]

    body = await detail(api, keys["viewer"], alarm_id, 3)
    assert [(h["event"], h["by"], h["note"], h["state"]) for h in body["history"]] == [
        ("raised", None, None, "active"),
        ("acknowledged", keys["operator"].name, "đội kỹ thuật đang tới", "acknowledged"),
        ("resolved", keys["admin"].name, None, "resolved"),
    ]
    assert body["acknowledged"]["by"] == keys["operator"].name
    assert body["resolved"] == {
        "at": body["history"][2]["at"],
        "by": keys["admin"].name,
        "note": None,
        "automatic": False,
    }
    assert [o["id"] for o in body["occurrences"]] == [alarm_id]
    assert body["position"] >= resolved.body["position"]
    # how long it stayed in each state: active until acknowledged, then until resolved
    raised_at, acked_at, resolved_at = (h["at"] for h in body["history"])
    assert body["periods"] == [
        {"state": "active", "from": raised_at, "to": acked_at},
        {"state": "acknowledged", "from": acked_at, "to": resolved_at},
    ]
    # and in the statistics of its cause and unit
    since = quote(body["raised_at"])
    until = quote((datetime.fromisoformat(resolved_at) + timedelta(seconds=1)).isoformat())
    stats = await api.get(
        f"/api/v1/alarms/stats?from={since}&to={until}&cause=cluster_fault&unit={ce.UNIT}",
        key=keys["viewer"],
    )
    assert stats.status == 200, stats.body
    (row,) = [i for i in stats.body["items"] if i["unit"] == ce.UNIT]
    assert row["raised"] >= 1
    assert row["resolved_by_operator"] >= 1
    assert_problem(
        await api.get(f"/api/v1/alarms/stats?from={until}&to={since}", key=keys["viewer"]),
        400,
        "from",
    )
    assert_problem(
        await api.get("/api/v1/alarms/stats?to=2026-11-01", key=keys["viewer"]), 400, "from"
    )


async def test_operator_resolves_and_the_rules_resolve_by_themselves(
    api: Any, keys: dict[str, Any], ce: Any
) -> None:
    code = ce.code("camera.registered")
    await api.ingest(
        ce.event("camera.registered", code, time=ce.at(-60)),
        ce.event("camera.status", code, status="offline"),
    )
    alarm = await find(api, keys["viewer"], code, "active")
    assert (alarm["cause"], alarm["summary"]) == (
        "device_offline",
        f"Camera {code} (Camera ngã tư Trần Phú) is offline",
    )
    reply = await act(api, keys["operator"], alarm["id"], "resolve", {"note": "đã kiểm tra"})
    assert reply.status == 200, reply.body
    await api.ingest(ce.event("camera.status", code, status="online", time=ce.at(1)))
    await api.ingest(ce.event("camera.status", code, status="offline", time=ce.at(2)))
    # the operator's resolve and the new offline status race to the read model: wait
    # for the second occurrence rather than take the first one before it shows resolved
    second = await find(api, keys["viewer"], code, "active", occurrence=2)
    assert second["id"] != alarm["id"]
    assert second["occurrence"] == 2
    await api.ingest(ce.event("camera.status", code, status="online", time=ce.at(3)))
    cleared = await find(api, keys["viewer"], code, "resolved")
    if cleared["id"] != second["id"]:  # the list is newest first: wait for the second
        cleared = await detail(api, keys["viewer"], second["id"], 2)
    assert cleared["resolved"]["by"] == "rules"
    assert cleared["resolved"]["automatic"] is True


async def test_dossier_overdue_is_raised_by_the_clock_alone(
    api: Any, keys: dict[str, Any], ce: Any
) -> None:
    code = ce.code("dossier.received")
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    await api.ingest(ce.event("dossier.received", code, time=ce.at(-60), due_at=due.isoformat()))
    await asyncio.sleep(0.5)
    listed = (await api.get("/api/v1/alarms?limit=1000", key=keys["viewer"])).body["items"]
    assert all(item["subject"] != code for item in listed)  # not yet due
    alarm = await find(api, keys["viewer"], code)  # no event sent since
    assert (alarm["cause"], alarm["state"]) == ("dossier_overdue", "active")
    await api.ingest(ce.event("dossier.completed", code, time=datetime.now(UTC).isoformat()))
    resolved = await find(api, keys["viewer"], code, "resolved")
    assert resolved["resolved"]["automatic"] is True


async def test_report_overdue_is_raised_by_the_clock_alone_and_found_where_it_is(
    api: Any, keys: dict[str, Any], ce: Any
) -> None:
    """An assigned report passing its due time raises `report_overdue` with no event; its
    resolution resolves it. `bbox` finds alarms by their subject's place: a report's or a
    camera's own coordinates, else the alarm's unit's centroid (a dossier)."""
    viewer = keys["viewer"]
    now = datetime.now(UTC)
    report = ce.code("report.received")
    # a place of its own that no other test of this module uses
    lat, lon = 10.0 + int(uuid4().hex[:4], 16) / 1e5, 104.5
    due = now + timedelta(seconds=1.5)
    await api.ingest(
        ce.event(
            "report.received",
            report,
            time=(now - timedelta(minutes=10)).isoformat(),
            lat=lat,
            lon=lon,
        ),
        ce.event(
            "report.assigned",
            report,
            time=(now - timedelta(minutes=5)).isoformat(),
            due_at=due.isoformat(),
        ),
    )
    await asyncio.sleep(0.5)
    listed = (await api.get("/api/v1/alarms?limit=1000", key=viewer)).body["items"]
    assert all(item["subject"] != report for item in listed)  # not yet due
    alarm = await find(api, viewer, report)  # no event sent since
    assert (alarm["cause"], alarm["subject_kind"], alarm["state"], alarm["severity"]) == (
        "report_overdue",
        "report",
        "active",
        "warning",
    )
    assert (alarm["unit"], alarm["detail"]["agency"]) == (ce.UNIT, ce.AGENCY)
    assert datetime.fromisoformat(alarm["raised_at"]) == due

    # where: the report by its own coordinates, a dossier by its unit's centroid
    dossier = ce.code("dossier.received")
    await api.ingest(ce.event("dossier.received", dossier, time=ce.at(-60)))
    await find(api, viewer, dossier)
    box = f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}"
    near = (await api.get(f"/api/v1/alarms?bbox={box}&limit=1000", key=viewer)).body
    assert [i["subject"] for i in near["items"]] == [report]
    assert near["total"] == 1
    centroid = ce.PROFILE.units[ce.UNIT]
    point = f"{centroid.lon},{centroid.lat},{centroid.lon},{centroid.lat}"
    at_unit = (await api.get(f"/api/v1/alarms?bbox={point}&limit=1000", key=viewer)).body
    subjects = {i["subject"] for i in at_unit["items"]}
    assert dossier in subjects
    assert report not in subjects  # in the unit, but placed by its own coordinates
    nowhere = (await api.get("/api/v1/alarms?bbox=0,0,1,1", key=viewer)).body
    assert (nowhere["total"], nowhere["items"]) == (0, [])

    await api.ingest(ce.event("report.resolved", report, time=datetime.now(UTC).isoformat()))
    resolved = await find(api, viewer, report, "resolved")
    assert resolved["resolved"]["automatic"] is True
    assert resolved["resolved"]["by"] == "rules"


async def test_filters_overview_count_and_bad_parameters(
    api: Any, keys: dict[str, Any], ce: Any
) -> None:
    viewer = keys["viewer"]
    code, events = faulty_station(ce)
    sos = ce.code("radio.station.registered")
    events += [
        ce.event("radio.station.registered", sos, time=ce.at(-60), unit=ce.DISTRICT),
        ce.event("radio.broadcast.started", sos, broadcast_id="sos-1", kind="emergency"),
    ]
    await api.ingest(*events)
    await find(api, viewer, code)
    emergency = await find(api, viewer, sos)
    assert emergency["severity"] == "critical"
    critical = (await api.get("/api/v1/alarms?severity=critical&state=active", key=viewer)).body
    assert emergency["id"] in {i["id"] for i in critical["items"]}
    assert all(i["severity"] == "critical" for i in critical["items"])
    in_unit = (await api.get(f"/api/v1/alarms?unit={quote(ce.UNIT)}", key=viewer)).body
    assert {i["unit"] for i in in_unit["items"]} == {ce.UNIT}
    assert emergency["id"] not in {i["id"] for i in in_unit["items"]}
    page = (await api.get("/api/v1/alarms?limit=1&offset=1", key=viewer)).body
    assert (page["limit"], page["offset"], len(page["items"])) == (1, 1, 1)
    assert page["total"] >= 2

    async with asyncio.timeout(TIMEOUT):
        while True:
            active = (await api.get("/api/v1/alarms?state=active", key=viewer)).body
            overview = (await api.get("/api/v1/overview", key=viewer)).body
            if overview["position"] == active["position"]:
                break
            await asyncio.sleep(0.05)
    assert overview["alarms"]["active"] == active["total"] >= 2

    for path, name in [
        ("/api/v1/alarms?state=sleeping", "state"),
        ("/api/v1/alarms?severity=major", "severity"),
        ("/api/v1/alarms?unit=NOWHERE", "unit"),
        ("/api/v1/alarms?cause=boredom", "cause"),
        ("/api/v1/alarms?limit=0", "limit"),
    ]:
        assert_problem(await api.get(path, key=viewer), 400, name)
    assert_problem(await api.get("/api/v1/alarms", key=keys["integration"]), 403)
    assert_problem(await api.get(f"/api/v1/alarms/{uuid4()}", key=viewer), 404)


async def test_alarms_topic_snapshot_then_deltas_equal_the_query(
    api: Any, keys: dict[str, Any], ce: Any
) -> None:
    viewer = keys["viewer"]
    code, events = faulty_station(ce)
    await api.ingest(*events)
    first = await find(api, viewer, code)
    ws = await api.client.ws_connect("/ws", headers=viewer.headers)
    screen = Screen()

    async def until(done: Any) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while not done(screen.states.get("alarms")):
                message = await ws.receive()
                assert message.type == aiohttp.WSMsgType.TEXT, message
                screen.handle(orjson.loads(message.data))
        return screen.states["alarms"]

    def ids(state: dict[str, Any] | None) -> set[str]:
        return set() if state is None else {i["id"] for i in state["items"]}

    await ws.send_bytes(orjson.dumps({"op": "subscribe", "topic": "alarms"}))
    state = await until(lambda s: s is not None)
    assert first["id"] in ids(state)
    other, more = faulty_station(ce)
    await api.ingest(*more)
    second = await find(api, viewer, other)
    state = await until(lambda s: second["id"] in ids(s))
    order = [(i["raised_at"], i["id"]) for i in state["items"]]
    assert order == sorted(order, reverse=True)  # newest first
    await act(api, keys["operator"], first["id"], "resolve")
    state = await until(lambda s: first["id"] not in ids(s))
    assert screen.deltas["alarms"] >= 2
    async with asyncio.timeout(TIMEOUT):
        while True:
            answer = (await api.get("/api/v1/alarms?state=open&limit=1000", key=viewer)).body
            state = await until(lambda s, p=answer["position"]: s["position"] >= p)
            if state["position"] == answer["position"]:
                break
    assert state["items"] == answer["items"]
    await ws.close()
