"""The service index, its ranking and the lineage of figures over HTTP (docs/CONTRACT.md §5).

Each test has a database of its own (the figures are exact). The index's crafted world is
dated in a future month (May 2031), so every event reaches the center before its own time
(timely) and the period has not begun (nothing in progress); the hand-worked test with late
events, period ends and dossiers in progress is tests/integration/test_service_index.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from ops_center.province.calendar import TZ
from web.appkeys import PROJECTIONS

PROBLEM = "application/problem+json"
A, B = "STTTT", "SYT"
C1, C2 = "MS-D01-C01", "MS-D02-C01"


@pytest.fixture
def fresh_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
async def admin(fresh_url: str, make_key: Any) -> Any:
    return make_key("admin", url=fresh_url)


@pytest.fixture
async def api(fresh_url: str, make_api: Any, admin: Any) -> Any:
    return await make_api(key=admin, database_url=fresh_url)


async def settle(api: Any, position: int) -> None:
    async with asyncio.timeout(15):
        await api.app[PROJECTIONS].wait_for(position)


async def send(api: Any, *events: dict[str, Any]) -> list[int]:
    positions = await api.ingest(*events)
    await settle(api, positions[-1])
    return positions


def may(day: int, hour: int = 9) -> str:
    return datetime(2031, 5, day, hour, tzinfo=TZ).isoformat()


def assert_problem(reply: Any, status: int, parameter: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert reply.body["invalid_params"][0]["name"] == parameter, reply.body


def index_world(ce: Any) -> list[dict[str, Any]]:
    """F1 (A, C1): full online, online, digitised, fee; completed on time with an e-result
    and paid online; rated satisfied. F2 (A, C1): partial, counter, not digitised, no
    fee; completed late. F3 (B, C2): full, online, flags not said; still open."""
    d = "dossier.received"
    return [
        ce.event(
            d, "F1", time=may(2), due_at=may(5, 17), agency=A, unit=C1, digitised=True, fee=True
        ),
        ce.event(
            d,
            "F2",
            time=may(3),
            due_at=may(4, 17),
            agency=A,
            unit=C1,
            level="partial_online",
            channel="counter",
            digitised=False,
            fee=False,
        ),
        ce.event(
            d,
            "F3",
            time=may(10),
            due_at=may(20, 17),
            data={
                "procedure_code": "1.000001",
                "level": "full_online",
                "channel": "online",
                "agency": B,
                "unit": C2,
                "due_at": may(20, 17),
            },
        ),
        ce.event("dossier.completed", "F1", time=may(4), e_result=True, paid_online=True),
        ce.event("dossier.completed", "F2", time=may(6), e_result=False, paid_online=False),
        ce.event("dossier.rated", "F1", time=may(7), rating="satisfied"),
    ]


async def test_the_index_of_a_period_and_its_ranking(api: Any, ce: Any) -> None:
    positions = await send(api, *index_world(ce))
    reply = await api.get("/api/v1/services/index?period=2031-05")
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["position"] == positions[-1]
    # received F1 F2 F3, all online-capable, filed online F1 F3, digitised F1; completed
    # F1 (on time, fee paid online, e-result) and F2 (late); nothing in progress before
    # May 2031 begins; rated F1 satisfied; 5 status events, all before their own time
    fractions = {
        p["name"]: (p["numerator"], p["denominator"])
        for g in body["groups"].values()
        for p in g["parts"]
    }
    assert fractions == {
        "on_time": (1, 2),
        "online_share": (2, 3),
        "online_payment": (1, 1),
        "digitised_intake": (1, 3),
        "e_result": (1, 2),
        "satisfied": (1, 1),
        "timely": (5, 5),
    }
    assert body["total"] == round(10 + 22 * 2 / 3 / 2 + 11 + 11 / 3 + 5.5 + 18 + 18, 2)
    assert body["total"] == 73.5
    assert (body["period"], body["agency"], body["unit"], body["as_of"]) == (
        "2031-05",
        None,
        None,
        None,
    )
    # the same month as the quarter and the year (nothing else happened in them)
    for period in ("2031-Q2", "2031"):
        other = (await api.get(f"/api/v1/services/index?period={period}")).body
        assert (other["period"], other["total"], other["groups"]) == (
            period,
            body["total"],
            body["groups"],
        )
    # filters: an agency, a unit (the province is everything)
    agency_b = (await api.get(f"/api/v1/services/index?period=2031-05&agency={B}")).body
    assert agency_b["agency"] == B
    assert agency_b["groups"]["satisfaction"]["no_data"] is True
    assert agency_b["groups"]["online"]["parts"][0]["numerator"] == 1
    ward = (await api.get(f"/api/v1/services/index?period=2031-05&unit={C2}")).body
    assert (ward["unit"], ward["groups"]) == (C2, agency_b["groups"])
    province = (await api.get("/api/v1/services/index?period=2031-05&unit=MS")).body
    assert (province["unit"], province["groups"]) == ("MS", body["groups"])

    ranking = (await api.get("/api/v1/services/index/ranking?period=2031-05")).body
    assert ranking["by"] == "agency"
    assert [(i["code"], i["total"]) for i in ranking["items"]] == sorted(
        [(A, (await agency_total(api, A))), (B, agency_b["total"])], key=lambda x: -x[1]
    )
    names = {i["code"]: i["name"] for i in ranking["items"]}
    assert names[B] == ce.PROFILE.agencies[B].name
    by_unit = (await api.get("/api/v1/services/index/ranking?period=2031-05&by=unit")).body
    assert {i["code"] for i in by_unit["items"]} == {C1, C2}
    within = (
        await api.get("/api/v1/services/index/ranking?period=2031-05&by=agency&unit=MS-D02")
    ).body
    assert [i["code"] for i in within["items"]] == [B]


async def agency_total(api: Any, agency: str) -> float:
    body = (await api.get(f"/api/v1/services/index?period=2031-05&agency={agency}")).body
    total: float = body["total"]
    return total


async def test_index_as_of_and_bad_parameters(api: Any, ce: Any) -> None:
    world = index_world(ce)
    await send(api, *world[:3])
    then = (await api.get("/api/v1/services/index?period=2031-05")).body
    await asyncio.sleep(0.05)
    moment = quote(datetime.now(TZ).isoformat())
    await asyncio.sleep(0.05)
    await send(api, *world[3:])
    past = (await api.get(f"/api/v1/services/index?period=2031-05&as_of={moment}")).body
    assert past["as_of"] is not None
    assert {**past, "as_of": None} == then
    assert then["groups"]["progress"]["no_data"] is True  # nothing completed yet
    now_body = (await api.get("/api/v1/services/index?period=2031-05")).body
    assert now_body["groups"] != then["groups"]

    assert_problem(await api.get("/api/v1/services/index"), 400, "period")
    for bad in ("2031-13", "2031-H1", "31-05", "2031-Q5", "may"):
        assert_problem(await api.get(f"/api/v1/services/index?period={bad}"), 400, "period")
    assert_problem(await api.get("/api/v1/services/index?period=2031&agency=NOPE"), 400, "agency")
    assert_problem(await api.get("/api/v1/services/index?period=2031&unit=NOPE"), 400, "unit")
    future = quote((datetime.now(TZ) + timedelta(hours=1)).isoformat())
    assert_problem(
        await api.get(f"/api/v1/services/index?period=2031&as_of={future}"), 400, "as_of"
    )
    assert_problem(await api.get("/api/v1/services/index/ranking?period=2031&by=x"), 400, "by")
    assert_problem(await api.get("/api/v1/services/index/ranking"), 400, "period")


# -- lineage --------------------------------------------------------------------------------


def provenance(event: dict[str, Any], position: int, key: Any) -> dict[str, Any]:
    """What a lineage item says of an event sent through the API."""
    return {
        "subject": event["subject"],
        "position": position,
        "type": event["type"],
        "source": event["source"],
        "id": event["id"],
        "time": datetime.fromisoformat(event["time"]).astimezone(TZ).isoformat(),
        "key": key.name,
    }


def without_receipt(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for item in items:
        assert item["received_at"] is not None
    return [{k: v for k, v in item.items() if k != "received_at"} for item in items]


async def lineage(api: Any, query: str) -> dict[str, Any]:
    reply = await api.get(f"/api/v1/lineage?{query}")
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


async def test_lineage_of_overview_figures(api: Any, admin: Any, ce: Any) -> None:
    now = datetime.now(TZ)

    def ago(minutes: float) -> str:
        return (now - timedelta(minutes=minutes)).isoformat()

    a, b, c = (ce.code("camera.registered") for _ in range(3))
    registrations = [ce.event("camera.registered", x, time=ago(60)) for x in (a, b, c)]
    a_off = ce.event("camera.status", a, time=ago(30), status="offline")
    a_again = ce.event("camera.status", a, time=ago(20), status="offline")  # a heartbeat
    b_off = ce.event("camera.status", b, time=ago(30), status="offline")
    b_on = ce.event("camera.status", b, time=ago(25), status="online")
    b_off_again = ce.event("camera.status", b, time=ago(10), status="offline")
    c_on = ce.event("camera.status", c, time=ago(10), status="online")
    dossier = ce.code("dossier.received")
    received = ce.event("dossier.received", dossier, time=ago(0), due_at=ago(-60 * 24))
    first = [*registrations, a_off, a_again, b_off, b_on, c_on]
    positions = await send(api, *first)
    at = dict(zip((e["id"] for e in first), positions, strict=True))
    await asyncio.sleep(0.05)
    moment = datetime.now(TZ)
    await asyncio.sleep(0.05)
    later = await send(api, b_off_again, received)

    body = await lineage(api, "figure=overview.devices.camera.offline")
    assert body["figure"] == "overview.devices.camera.offline"
    assert body["value"] == 2
    # each camera with the event that put it offline: a's first report (the heartbeat
    # changed nothing), b's latest
    assert without_receipt(body["items"]) == [
        provenance(a_off, at[a_off["id"]], admin),
        provenance(b_off_again, later[0], admin),
    ]
    assert body["next"] is None
    assert body["position"] == (await api.get("/api/v1/overview")).body["position"]
    # as it stood at a moment: b was online then
    past = await lineage(
        api, f"figure=overview.devices.camera.offline&as_of={quote(moment.isoformat())}"
    )
    assert past["value"] == 1
    assert [i["subject"] for i in past["items"]] == [a]
    online = await lineage(api, "figure=overview.devices.camera.online")
    assert [(i["subject"], i["position"]) for i in online["items"]] == [(c, at[c_on["id"]])]
    today = await lineage(api, "figure=overview.services.received_today")
    assert today["value"] == 1
    assert without_receipt(today["items"]) == [provenance(received, later[1], admin)]
    # a unit without any of them
    other = await lineage(api, f"figure=overview.devices.camera.offline&unit={C2}")
    assert (other["value"], other["items"]) == (0, [])
    empty = await lineage(api, "figure=overview.alarms.active")
    assert (empty["value"], empty["items"], empty["next"]) == (0, [], None)


async def test_lineage_of_kpi_figures(api: Any, admin: Any, ce: Any) -> None:
    code = ce.code("kpi.defined")
    defined = ce.event("kpi.defined", code, time=ce.at(0), target=80)
    september = ce.event("kpi.reported", code, time=ce.at(10), period="2026-09", value=30)
    report = ce.event("kpi.reported", code, time=ce.at(20), period="2026-10", value=50)
    better = ce.event("kpi.reported", code, time=ce.at(30), period="2026-10", value=55)
    stale = ce.event("kpi.reported", code, time=ce.at(15), period="2026-10", value=40)  # late
    revised = ce.event("kpi.target_revised", code, time=ce.at(40), target=85)
    events = [defined, september, report, better, stale, revised]
    positions = dict(zip((e["id"] for e in events), await send(api, *events), strict=True))

    value = await lineage(api, f"figure=kpis.{code}.value")
    assert value["value"] == 55
    # the report in effect and those of its period it replaced (the first, and the late
    # one dated before it), by position
    assert [i["id"] for i in value["items"]] == [report["id"], better["id"], stale["id"]]
    assert without_receipt(value["items"])[1] == provenance(better, positions[better["id"]], admin)
    target = await lineage(api, f"figure=kpis.{code}.target")
    assert target["value"] == 85
    assert [i["type"] for i in target["items"]] == ["kpi.defined", "kpi.target_revised"]
    # a page at a time
    page = await lineage(api, f"figure=kpis.{code}.value&limit=2")
    assert len(page["items"]) == 2
    assert page["next"] == page["items"][-1]["position"]
    rest = await lineage(api, f"figure=kpis.{code}.value&limit=2&after={page['next']}")
    assert rest["next"] is None
    assert [i["position"] for i in page["items"] + rest["items"]] == sorted(
        i["position"] for i in value["items"]
    )
    on_track = await lineage(api, "figure=overview.kpis.on_track")
    assert (code, positions[revised["id"]]) in {
        (i["subject"], i["position"]) for i in on_track["items"]
    }
    assert_problem(await api.get("/api/v1/lineage?figure=kpis.nope-nope.value"), 400, "figure")


async def test_lineage_of_index_figures(api: Any, admin: Any, ce: Any) -> None:
    world = index_world(ce)
    positions = dict(zip((e["id"] for e in world), await send(api, *world), strict=True))
    received = [e for e in world if e["type"] == "dossier.received"]
    completed = [e for e in world if e["type"] == "dossier.completed"]
    rated = [e for e in world if e["type"] == "dossier.rated"]

    def ids(events: list[dict[str, Any]]) -> list[str]:
        return [e["id"] for e in sorted(events, key=lambda e: positions[e["id"]])]

    on_time = await lineage(api, "figure=services.index.progress.on_time&period=2031-05")
    assert on_time["value"] == 10.0
    assert [i["id"] for i in on_time["items"]] == ids(completed)
    assert without_receipt(on_time["items"])[0] == provenance(
        completed[0], positions[completed[0]["id"]], admin
    )
    share = await lineage(api, "figure=services.index.online.online_share&period=2031-05")
    assert [i["id"] for i in share["items"]] == ids(received)
    group = await lineage(api, "figure=services.index.online&period=2031-05")
    assert group["value"] == 18.33
    assert [i["id"] for i in group["items"]] == ids(received + completed[:1])
    timely = await lineage(api, "figure=services.index.transparency.timely&period=2031-05")
    assert [i["id"] for i in timely["items"]] == ids(received + completed)
    satisfied = await lineage(api, "figure=services.index.satisfaction.satisfied&period=2031-05")
    assert [i["id"] for i in satisfied["items"]] == ids(rated)
    total = await lineage(api, "figure=services.index&period=2031-05")
    assert total["value"] == 73.5
    assert [i["id"] for i in total["items"]] == ids(world)
    agency = await lineage(api, f"figure=services.index.total&period=2031-05&agency={B}&limit=1000")
    assert [i["subject"] for i in agency["items"]] == ["F3"]
    # pages of one
    seen: list[str] = []
    after = ""
    while True:
        page = await lineage(api, f"figure=services.index&period=2031-05&limit=1{after}")
        seen += [i["id"] for i in page["items"]]
        if page["next"] is None:
            break
        after = f"&after={page['next']}"
    assert seen == ids(world)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("", "figure"),
        ("figure=overview.nothing", "figure"),
        ("figure=overview", "figure"),
        ("figure=services.index.progress.nope&period=2031", "figure"),
        ("figure=kpis.x", "figure"),
        ("figure=services.index.total", "period"),
        ("figure=overview.alarms.active&limit=0", "limit"),
        ("figure=overview.alarms.active&after=-1", "after"),
    ],
)
async def test_lineage_names_a_bad_parameter(api: Any, query: str, parameter: str) -> None:
    reply = await api.get(f"/api/v1/lineage?{query}")
    assert_problem(reply, 400, parameter)
    if parameter == "figure" and "figure=" in query:
        assert query.split("figure=")[1].split("&")[0] in reply.body["detail"]


async def test_lineage_of_report_figures(api: Any, admin: Any, ce: Any) -> None:
    now = datetime.now(TZ)

    def ago(minutes: float) -> str:
        return (now - timedelta(minutes=minutes)).isoformat()

    fields = {"category": "traffic", "title": "ổ gà", "unit": C1, "channel": "app"}
    late, fresh, done = (ce.code("report.received") for _ in range(3))
    events = [
        ce.event("report.received", late, time=ago(30), **fields),
        ce.event("report.received", fresh, time=ago(20), **fields),
        ce.event("report.received", done, time=ago(10), **fields),
        ce.event("report.assigned", late, time=ago(25), agency=A, due_at=ago(5)),
        ce.event("report.resolved", done, time=ago(1), result="đã xử lý"),
    ]
    positions = dict(zip((e["id"] for e in events), await send(api, *events), strict=True))
    received = {e["subject"]: positions[e["id"]] for e in events[:3]}

    open_ = await lineage(api, "figure=overview.reports.open")
    assert open_["value"] == 2
    assert sorted((i["subject"], i["position"]) for i in open_["items"]) == sorted(
        [(late, received[late]), (fresh, received[fresh])]
    )
    overdue = await lineage(api, "figure=overview.reports.overdue")
    assert overdue["value"] == 1
    assert [(i["subject"], i["position"]) for i in overdue["items"]] == [
        (late, positions[events[3]["id"]])
    ]
    resolved = await lineage(api, "figure=overview.reports.resolved_today")
    assert [(i["subject"], i["type"]) for i in resolved["items"]] == [(done, "report.resolved")]
    # the figure equals the overview's
    overview = (await api.get("/api/v1/overview")).body["reports"]
    assert (overview["open"], overview["overdue"]) == (open_["value"], overdue["value"])
    elsewhere = await lineage(api, f"figure=overview.reports.open&unit={C2}")
    assert (elsewhere["value"], elsewhere["items"]) == (0, [])
