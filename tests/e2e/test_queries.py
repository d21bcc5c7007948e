"""The leaders' queries end to end (docs/CONTRACT.md §5): real HTTP, real PostgreSQL.

Each test gets a database of its own (the figures are exact), starts the real app on it,
ingests a known world over HTTP and waits until every projection has applied the last
accepted position. The world (`ops_center.tools.testing.known_world`) is relative to today's
local midnight T0 in Asia/Ho_Chi_Minh; the expected figures are written out below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from ops_center.province.calendar import TZ
from ops_center.tools.testing import Events, known_world
from web.appkeys import PROJECTIONS

PROBLEM = "application/problem+json"


@pytest.fixture
def fresh_url(new_database: Any) -> Iterator[str]:
    """A database of this test's own, on the session's server (dropped afterwards)."""
    with new_database() as url:
        yield url


@pytest.fixture
async def world_api(fresh_url: str, make_api: Any, make_key: Any) -> Any:
    """The app on a fresh database, called with an admin key (reads and ingests)."""
    return await make_api(key=make_key("admin", url=fresh_url), database_url=fresh_url)


async def settle(api: Any, position: int) -> None:
    """Wait until every projection of the app has applied `position`."""
    async with asyncio.timeout(15):
        await api.app[PROJECTIONS].wait_for(position)


async def ingest_world(api: Any, clock: datetime | None = None) -> int:
    """Send the known world batch by batch (several chunks); the last position."""
    last = 0
    for batch in known_world(clock or datetime.now(TZ)):
        last = max(await api.ingest(*batch))
        await settle(api, last)
    return last


def assert_problem(reply: Any, status: int, parameter: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert reply.body["status"] == status
    assert reply.body["detail"]
    if parameter is not None:
        assert reply.body["invalid_params"][0]["name"] == parameter, reply.body


def today_start() -> datetime:
    return datetime.combine(datetime.now(TZ).date(), datetime.min.time(), TZ)


def q(moment: datetime) -> str:
    return quote(moment.isoformat())


# -- overview -------------------------------------------------------------------------------


async def test_overview_gives_exact_figures_of_the_known_world(world_api: Any) -> None:
    last = await ingest_world(world_api)
    reply = await world_api.get("/api/v1/overview")
    assert reply.status == 200, reply.body
    assert reply.body == {
        "position": last,
        "devices": {
            "camera": {"online": 2, "offline": 1, "degraded": 1},
            "radio": {"online": 1, "offline": 1},
        },
        "broadcasts": {"active": 2, "emergency_active": 1},
        "services": {
            "received_today": 3,
            "completed_today": 2,
            "on_time_rate": 0.5,
            "overdue": 1,
        },
        "kpis": {"on_track": 3, "off_track": 2},
        "alarms": {"active": 0},
        # P2, P3, P5 received today; P1 (overdue) and P2 (new) open; P3 (on time) and P4
        # (late) resolved today; rated: P3 satisfied, P4 dissatisfied
        "reports": {
            "received_today": 3,
            "open": 2,
            "overdue": 1,
            "resolved_today": 2,
            "satisfaction_rate": 0.5,
        },
    }


async def test_overview_of_a_unit_includes_its_descendants_only(world_api: Any) -> None:
    last = await ingest_world(world_api)
    reply = await world_api.get("/api/v1/overview?unit=MS-D01")
    assert reply.status == 200, reply.body
    assert reply.body == {
        "position": last,
        "devices": {
            "camera": {"online": 1, "offline": 1, "degraded": 0},
            "radio": {"online": 1, "offline": 0},
        },
        "broadcasts": {"active": 1, "emergency_active": 1},
        "services": {
            "received_today": 1,
            "completed_today": 1,
            "on_time_rate": 1.0,
            "overdue": 1,
        },
        "kpis": {"on_track": 1, "off_track": 0},
        "alarms": {"active": 0},
        # P1, P3 and P5 are in MS-D01
        "reports": {
            "received_today": 2,
            "open": 1,
            "overdue": 1,
            "resolved_today": 1,
            "satisfaction_rate": 1.0,
        },
    }
    commune = await world_api.get("/api/v1/overview?unit=MS-D02-C01")
    assert commune.body["devices"]["camera"] == {"online": 1, "offline": 0, "degraded": 1}
    assert commune.body["services"]["received_today"] == 2


async def test_overview_as_of_answers_as_the_projection_stood_then(world_api: Any) -> None:
    """`as_of` between two ingests gives exactly the answer given at that moment."""
    clock = datetime.now(TZ)
    batches = known_world(clock)
    positions = []
    for batch in batches[:4]:
        positions.append(max(await world_api.ingest(*batch)))
    await settle(world_api, positions[-1])
    then = (await world_api.get("/api/v1/overview")).body
    kpis_then = (await world_api.get("/api/v1/kpis")).body
    await asyncio.sleep(0.05)
    moment = datetime.now(TZ)
    await asyncio.sleep(0.05)
    for batch in batches[4:]:
        last = max(await world_api.ingest(*batch))
    await settle(world_api, last)

    past = await world_api.get(f"/api/v1/overview?as_of={q(moment)}")
    assert past.status == 200, past.body
    assert past.body == then
    assert past.body["position"] == positions[-1]
    assert past.body["devices"]["camera"]["offline"] == 0  # CAM-A went offline later

    kpis_past = await world_api.get(f"/api/v1/kpis?as_of={q(moment)}")
    assert [i["status"] for i in kpis_past.body["items"]] == [
        i["status"] for i in kpis_then["items"]
    ]
    assert kpis_past.body["position"] == kpis_then["position"]

    current = (await world_api.get("/api/v1/overview")).body
    now_ = await world_api.get(f"/api/v1/overview?as_of={q(datetime.now(TZ))}")
    assert now_.body == current

    before = await world_api.get(f"/api/v1/overview?as_of={q(clock - timedelta(days=400))}")
    assert before.body["position"] == 0
    assert before.body["devices"]["camera"] == {"online": 0, "offline": 0, "degraded": 0}


async def test_unit_as_of_history_matches_current_answer(world_api: Any) -> None:
    await ingest_world(world_api)
    current = (await world_api.get("/api/v1/overview?unit=MS-D01")).body
    past = await world_api.get(f"/api/v1/overview?unit=MS-D01&as_of={q(datetime.now(TZ))}")
    assert past.body == current


# -- devices ------------------------------------------------------------------------------


async def test_devices_list_filters_by_kind_status_and_unit(world_api: Any) -> None:
    last = await ingest_world(world_api)
    cameras = await world_api.get("/api/v1/devices?kind=camera")
    assert cameras.status == 200
    assert cameras.body["position"] == last
    assert cameras.body["total"] == 5
    assert [(d["code"], d["status"]) for d in cameras.body["items"]] == [
        ("CAM-A", "offline"),
        ("CAM-B", "online"),
        ("CAM-C", "online"),
        ("CAM-D", None),
        ("CAM-E", "degraded"),
    ]
    online = await world_api.get("/api/v1/devices?kind=camera&status=online")
    assert [d["code"] for d in online.body["items"]] == ["CAM-B", "CAM-C"]
    unknown = await world_api.get("/api/v1/devices?kind=camera&status=unknown")
    assert [d["code"] for d in unknown.body["items"]] == ["CAM-D"]
    district = await world_api.get("/api/v1/devices?kind=camera&unit=MS-D02")
    assert [d["code"] for d in district.body["items"]] == ["CAM-C", "CAM-E"]
    page = await world_api.get("/api/v1/devices?kind=camera&limit=2&offset=2")
    assert [d["code"] for d in page.body["items"]] == ["CAM-C", "CAM-D"]
    assert page.body["total"] == 5

    radios = await world_api.get("/api/v1/devices?kind=radio")
    first = radios.body["items"][0]
    assert first["code"] == "R-1"
    assert first["status"] == "online"
    assert first["clusters"] == 4
    # cluster 3 was restored; the late "restored" of cluster 2 is history only
    assert [(f["cluster"], f["fault"]) for f in first["faults"]] == [(2, "power")]
    assert first["broadcasts_active"] == 1


async def test_device_detail_and_late_status(world_api: Any) -> None:
    await ingest_world(world_api)
    reply = await world_api.get("/api/v1/devices/CAM-B")
    assert reply.status == 200
    body = reply.body
    assert body["kind"] == "camera"
    assert body["status"] == "online"  # the late "offline" (older time) did not win
    t0 = today_start()
    assert datetime.fromisoformat(body["status_at"]) == t0 + timedelta(seconds=2)
    assert body["status_at"].endswith("+07:00")
    alerted = (await world_api.get("/api/v1/devices/CAM-C")).body
    assert alerted["status"] == "online"  # equal times: the later position wins
    assert alerted["last_alert"]["severity"] == "critical"
    station = (await world_api.get("/api/v1/devices/R-1?kind=radio")).body
    assert [b["broadcast_id"] for b in station["broadcasts"]] == ["e1"]
    assert station["lat"] == 21.2


async def test_device_codes_shared_by_camera_and_station_need_kind(world_api: Any) -> None:
    e = Events(prefix="shared")
    t = datetime.now(TZ)
    last = max(
        await world_api.ingest(e.camera("X-1", "MS-D01-C01", t), e.station("X-1", "MS-D01-C01", t))
    )
    await settle(world_api, last)
    ambiguous = await world_api.get("/api/v1/devices/X-1")
    assert_problem(ambiguous, 400, "kind")
    camera = await world_api.get("/api/v1/devices/X-1?kind=camera")
    assert camera.body["kind"] == "camera"
    radio = await world_api.get("/api/v1/devices/X-1?kind=radio")
    assert radio.body["kind"] == "radio"


async def test_unknown_codes_answer_404(world_api: Any) -> None:
    await ingest_world(world_api)
    assert_problem(await world_api.get("/api/v1/devices/NOPE"), 404)
    assert_problem(await world_api.get("/api/v1/devices/CAM-A?kind=radio"), 404)
    assert_problem(await world_api.get("/api/v1/kpis/NOPE/history"), 404)


# -- services -----------------------------------------------------------------------------


async def test_service_stats_per_day_are_exact(world_api: Any) -> None:
    last = await ingest_world(world_api)
    t0 = today_start()
    y0 = t0 - timedelta(days=1)
    reply = await world_api.get(
        f"/api/v1/services/stats?from={q(y0)}&to={q(t0 + timedelta(days=1))}&bucket=day"
    )
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["position"] == last
    yesterday, today = body["items"]
    assert datetime.fromisoformat(yesterday["start"]) == y0
    assert datetime.fromisoformat(today["start"]) == t0
    assert yesterday == {
        "start": y0.isoformat(),
        "end": t0.isoformat(),
        "received": 2,
        "completed": {"on_time": 0, "late": 0, "total": 0},
        "withdrawn": 0,
        "in_progress": {"not_yet_due": 1, "due_within_24h": 1, "overdue": 1},
        "online_share": 0.5,
        "on_time_rate": None,
    }
    assert today["received"] == 3
    assert today["completed"] == {"on_time": 1, "late": 1, "total": 2}
    assert today["withdrawn"] == 1
    assert today["in_progress"] == {"not_yet_due": 1, "due_within_24h": 1, "overdue": 1}
    assert today["online_share"] == pytest.approx(0.6667)
    assert today["on_time_rate"] == 0.5
    totals = body["totals"]
    assert totals["received"] == 5
    assert totals["online_share"] == 0.6
    assert totals["in_progress"] == today["in_progress"]


async def test_service_stats_filters_and_other_buckets(world_api: Any) -> None:
    await ingest_world(world_api)
    t0 = today_start()
    span = f"from={q(t0 - timedelta(days=1))}&to={q(t0 + timedelta(days=1))}"
    by_agency = await world_api.get(f"/api/v1/services/stats?{span}&bucket=day&agency=SYT")
    assert [i["received"] for i in by_agency.body["items"]] == [0, 2]
    by_unit = await world_api.get(f"/api/v1/services/stats?{span}&bucket=day&unit=MS-D01")
    assert [i["received"] for i in by_unit.body["items"]] == [2, 1]
    hours = await world_api.get(
        f"/api/v1/services/stats?from={q(t0)}&to={q(t0 + timedelta(hours=2))}&bucket=hour"
    )
    assert [i["received"] for i in hours.body["items"]] == [3, 0]
    month = await world_api.get(
        f"/api/v1/services/stats?from={q(t0)}&to={q(t0 + timedelta(days=1))}&bucket=month"
    )
    assert len(month.body["items"]) == 1
    assert month.body["items"][0]["received"] == 3


async def test_overdue_list_follows_the_clock(world_api: Any) -> None:
    """A dossier becomes overdue when its due time passes, with no new event."""
    clock = datetime.now(TZ)
    e = Events(prefix="clock")
    last = max(
        await world_api.ingest(
            e.dossier("LATE-1", clock - timedelta(hours=3), clock - timedelta(hours=1)),
            e.dossier("SOON-1", clock - timedelta(hours=3), clock + timedelta(seconds=2)),
            e.dossier("DONE-1", clock - timedelta(hours=3), clock - timedelta(hours=2)),
            e.completed("DONE-1", clock - timedelta(minutes=1)),
        )
    )
    await settle(world_api, last)
    first = await world_api.get("/api/v1/services/overdue")
    assert first.status == 200
    assert [i["code"] for i in first.body["items"]] == ["LATE-1"]
    assert first.body["items"][0]["overdue_hours"] >= 1
    assert (await world_api.get("/api/v1/overview")).body["services"]["overdue"] == 1

    await asyncio.sleep(2.5)
    later = await world_api.get("/api/v1/services/overdue")
    assert later.body["position"] == first.body["position"] == last
    assert [i["code"] for i in later.body["items"]] == ["LATE-1", "SOON-1"]
    assert later.body["total"] == 2
    assert (await world_api.get("/api/v1/overview")).body["services"]["overdue"] == 2
    other = await world_api.get("/api/v1/services/overdue?agency=SYT")
    assert other.body["items"] == []


# -- KPIs ---------------------------------------------------------------------------------


async def test_kpis_have_the_documented_statuses(world_api: Any) -> None:
    last = await ingest_world(world_api)
    reply = await world_api.get("/api/v1/kpis")
    assert reply.status == 200
    assert reply.body["position"] == last
    statuses = {i["code"]: i["status"] for i in reply.body["items"]}
    assert statuses == {
        "K1": "met",
        "K2": "off_track",
        "K3": "on_track",
        "K4": "off_track",
        "K5": "on_track",
    }
    k1 = next(i for i in reply.body["items"] if i["code"] == "K1")
    assert k1["target"] == 80  # the late revision (older than the definition) is history
    assert k1["latest"]["value"] == 85  # the late report for that period is history
    k5 = next(i for i in reply.body["items"] if i["code"] == "K5")
    assert k5["target"] == 40
    assert k5["latest"] is None

    off = await world_api.get("/api/v1/kpis?status=off_track")
    assert [i["code"] for i in off.body["items"]] == ["K2", "K4"]
    owned = await world_api.get("/api/v1/kpis?owner=SYT")
    assert [i["code"] for i in owned.body["items"]] == ["K4", "K5"]
    pillar = await world_api.get("/api/v1/kpis?pillar=digital_economy")
    assert [i["code"] for i in pillar.body["items"]] == ["K5"]


async def test_kpi_history_lists_periods_in_order(world_api: Any) -> None:
    await ingest_world(world_api)
    reply = await world_api.get("/api/v1/kpis/K1/history")
    assert reply.status == 200
    values = [(i["period"], i["value"]) for i in reply.body["items"]]
    assert [v for _, v in values] == [70, 85]
    assert values[0][0] < values[1][0]
    as_of = await world_api.get(f"/api/v1/kpis/K1/history?as_of={q(datetime.now(TZ))}")
    assert as_of.body["items"] == reply.body["items"]


# -- feed ---------------------------------------------------------------------------------


async def test_feed_lists_latest_events_newest_first(world_api: Any) -> None:
    last = await ingest_world(world_api)
    reply = await world_api.get("/api/v1/feed?limit=3")
    assert reply.status == 200
    items = reply.body["items"]
    assert [i["position"] for i in items] == [last, last - 1, last - 2]
    assert items[0]["type"] == "camera.alert"
    assert items[0]["subject"] == "CAM-C"
    assert items[0]["unit"] == "MS-D02-C01"
    assert items[0]["data"]["severity"] == "critical"
    older = await world_api.get(f"/api/v1/feed?limit=2&before={last - 2}")
    assert [i["position"] for i in older.body["items"]] == [last - 3, last - 4]


# -- parameters and keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/overview?unit=NOWHERE", "unit"),
        ("/api/v1/overview?as_of=yesterday", "as_of"),
        ("/api/v1/overview?as_of=2999-01-01T00:00:00Z", "as_of"),
        ("/api/v1/devices", "kind"),
        ("/api/v1/devices?kind=toaster", "kind"),
        ("/api/v1/devices?kind=radio&status=degraded", "status"),
        ("/api/v1/devices?kind=camera&limit=0", "limit"),
        ("/api/v1/devices?kind=camera&limit=abc", "limit"),
        ("/api/v1/services/stats?to=2026-11-02", "from"),
        ("/api/v1/services/stats?from=2026-11-01", "to"),
        ("/api/v1/services/stats?from=2026-11-02&to=2026-11-01", "from"),
        ("/api/v1/services/stats?from=2026-11-01&to=2026-11-02&bucket=week", "bucket"),
        ("/api/v1/services/stats?from=2026-13-01&to=2026-11-02", "from"),
        ("/api/v1/services/stats?from=2020-01-01&to=2026-01-01&bucket=hour", "bucket"),
        ("/api/v1/services/stats?from=2026-11-01&to=2026-11-02&agency=NOPE", "agency"),
        ("/api/v1/services/overdue?unit=NOPE", "unit"),
        ("/api/v1/kpis?status=great", "status"),
        ("/api/v1/kpis?pillar=space", "pillar"),
        ("/api/v1/kpis?owner=NOPE", "owner"),
        ("/api/v1/feed?limit=5000", "limit"),
        ("/api/v1/feed?before=x", "before"),
    ],
)
async def test_bad_parameters_answer_400_naming_the_parameter(
    refusing_api: Any, path: str, parameter: str
) -> None:
    assert_problem(await refusing_api.get(path), 400, parameter)


async def test_keys_that_cannot_read_get_403(fresh_url: str, make_api: Any, make_key: Any) -> None:
    api = await make_api(key=make_key("integration", url=fresh_url), database_url=fresh_url)
    for path in ("/api/v1/overview", "/api/v1/devices?kind=camera", "/api/v1/feed"):
        assert_problem(await api.get(path), 403)
    viewer = make_key("viewer", url=fresh_url)
    assert (await api.get("/api/v1/overview", key=viewer)).status == 200
    assert_problem(await api.get("/api/v1/overview", key=None), 401)
