"""``POST /api/v1/alarms/what-if`` end to end (docs/CONTRACT.md §4) on the real app with its
rules running: today's thresholds reproduce the alarms raised, a longer grace raises
fewer, the roles and the 400 answers, and nothing is written to the log.

The module has a database of its own (the what-if replays the whole log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
import pytest

TIMEOUT = 10.0
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def whatif_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
def keys(whatif_url: str, make_key: Any) -> dict[str, Any]:
    return {role: make_key(role, url=whatif_url) for role in ("viewer", "operator", "admin")}


@pytest.fixture
async def api(whatif_url: str, make_api: Any) -> Any:
    return await make_api(
        database_url=whatif_url,
        alarm_rules=True,
        alarm_offline_grace_seconds=0.0,
        alarm_tick_seconds=0.1,
    )


async def what_if(api: Any, key: Any, body: Any) -> Any:
    return await api.request(
        "POST",
        "/api/v1/alarms/what-if",
        key=key,
        headers={"Content-Type": "application/json"},
        data=body if isinstance(body, bytes) else orjson.dumps(body),
    )


async def wait_for(api: Any, key: Any, subjects: set[str], resolved: set[str]) -> None:
    """Until the read model shows alarms of `subjects`, those of `resolved` resolved."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            reply = await api.get("/api/v1/alarms?limit=1000", key=key)
            items = {i["subject"]: i for i in reply.body["items"]}
            if subjects <= items.keys() and all(items[s]["state"] == "resolved" for s in resolved):
                return
            await asyncio.sleep(0.05)


async def count_events(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ops_events"))
    finally:
        await conn.close()


def assert_problem(reply: Any, status: int, *names: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    if names:
        assert [p["name"] for p in reply.body["invalid_params"]] == list(names), reply.body


async def test_what_if_reproduces_and_a_longer_grace_raises_fewer(
    api: Any, keys: dict[str, Any], ce: Any, whatif_url: str
) -> None:
    station = ce.code("radio.station.registered")
    camera = ce.code("camera.registered")
    await api.ingest(
        ce.event("radio.station.registered", station, time=ce.at(-60)),
        ce.event("radio.cluster.fault", station, cluster=2, fault="network", time=ce.at(0)),
        ce.event("camera.registered", camera, time=ce.at(-60)),
        ce.event("camera.status", camera, status="offline", time=ce.at(1)),
    )
    await api.ingest(ce.event("camera.status", camera, status="online", time=ce.at(3)))
    await wait_for(api, keys["viewer"], {station, camera}, {camera})
    period = {"from": ce.at(-30), "to": ce.at(30)}
    before = await count_events(whatif_url)

    reply = await what_if(api, keys["operator"], period)
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["thresholds"] == {
        "offline_grace_seconds": 0.0,
        "alert_hold_seconds": 1800.0,
        "dossier_grace_seconds": 0.0,
    }
    assert body["would_raise"] == body["raised"]
    assert {(a["cause"], a["subject"]) for a in body["raised"]} == {
        ("cluster_fault", station),
        ("device_offline", camera),
    }
    offline = next(a for a in body["raised"] if a["subject"] == camera)
    assert offline["resolved_at"] is not None  # resolved by the rules
    assert body["summary"] == {"would_raise": 2, "raised": 2, "only_what_if": 0, "only_raised": 0}

    longer = {**period, "thresholds": {"offline_grace_seconds": 600}}
    reply = await what_if(api, keys["admin"], longer)
    assert reply.status == 200, reply.body
    assert reply.body["thresholds"]["offline_grace_seconds"] == 600.0
    assert reply.body["thresholds"]["alert_hold_seconds"] == 1800.0
    assert [a["subject"] for a in reply.body["would_raise"]] == [station]
    assert reply.body["summary"]["only_raised"] == 1
    assert await count_events(whatif_url) == before  # nothing written


async def test_what_if_roles_and_bad_bodies(api: Any, keys: dict[str, Any], ce: Any) -> None:
    period = {"from": ce.at(-30), "to": ce.at(30)}
    assert_problem(await what_if(api, keys["viewer"], period), 403)
    assert_problem(await what_if(api, None, period), 401)
    operator = keys["operator"]
    unknown = {**period, "thresholds": {"zeta_seconds": 1, "offline_grace_seconds": 5, "a": 2}}
    assert_problem(await what_if(api, operator, unknown), 400, "a", "zeta_seconds")
    negative = {**period, "thresholds": {"alert_hold_seconds": -1}}
    assert_problem(await what_if(api, operator, negative), 400, "alert_hold_seconds")
    assert_problem(await what_if(api, operator, {"to": ce.at(30)}), 400, "from")
    assert_problem(await what_if(api, operator, {"from": "soon", "to": ce.at(30)}), 400, "from")
    assert_problem(await what_if(api, operator, {"from": ce.at(0), "to": ce.at(0)}), 400, "from")
    long = {"from": ce.at(0), "to": ce.at(200 * 24 * 60)}
    assert_problem(await what_if(api, operator, long), 400, "to")
    assert_problem(await what_if(api, operator, b"[1]"), 400, "body")
