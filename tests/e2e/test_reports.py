"""Citizens' field reports end to end (docs/CONTRACT.md §3, §5): real HTTP, real PostgreSQL.

Each test gets a database of its own (the figures are exact). The known world
(`ops_center.tools.testing.known_world`) has five reports relative to today's local
midnight T0 (Y0 the day before):

* P1 (MS-D01-C01, own coordinates 21.24/106.25), received Y0 09:00, assigned to STTTT at
  09:15 due Y0 20:00: overdue now; a reassignment dated 09:10 arrives late (history only);
* P2 (MS-D02-C01, no coordinates, traffic, by hotline) received today: new;
* P3 (MS-D01-C01, utilities) received today, assigned to SYT, resolved on time, rated
  satisfied;
* P4 (MS-D02-C01, urban order) received Y0 10:00, assigned to the commune MS-D02-C01 due
  Y0 12:00, resolved late today, rated dissatisfied;
* P5 (MS-D01-C02, other, by social media) received today, rejected as a duplicate of P1.

The statistics are checked on a crafted set of October reports whose answers are worked
out by hand below (`OCTOBER`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from ops_center.province.calendar import TZ, iso
from ops_center.tools.testing import Events, known_world
from web.appkeys import PROJECTIONS

PROBLEM = "application/problem+json"


@pytest.fixture
def fresh_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
async def world_api(fresh_url: str, make_api: Any, make_key: Any) -> Any:
    """The app on a fresh database, called with an admin key (reads and ingests)."""
    return await make_api(key=make_key("admin", url=fresh_url), database_url=fresh_url)


async def settle(api: Any, position: int) -> None:
    async with asyncio.timeout(15):
        await api.app[PROJECTIONS].wait_for(position)


async def ingest(api: Any, batches: list[list[dict[str, Any]]]) -> int:
    last = 0
    for batch in batches:
        last = max(await api.ingest(*batch))
        await settle(api, last)
    return last


def midnight() -> datetime:
    return datetime.combine(datetime.now(TZ).date(), time(), TZ)


def codes(reply: Any) -> list[str]:
    assert reply.status == 200, reply.body
    return [item["code"] for item in reply.body["items"]]


def assert_problem(reply: Any, parameter: str) -> None:
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.content_type == PROBLEM
    assert reply.body["invalid_params"][0]["name"] == parameter, reply.body


# -- the list and one report --------------------------------------------------------------


async def test_reports_are_listed_newest_first_with_their_state_and_place(world_api: Any) -> None:
    last = await ingest(world_api, known_world(datetime.now(TZ)))
    t0 = midnight()
    y0 = t0 - timedelta(days=1)
    reply = await world_api.get("/api/v1/reports")
    assert reply.body["position"] == last
    assert reply.body["next"] is None
    assert codes(reply) == ["P5", "P3", "P2", "P4", "P1"]
    by_code = {item["code"]: item for item in reply.body["items"]}
    assert by_code["P1"] == {
        "code": "P1",
        "category": "environment",
        "title": "Report P1",
        "unit": "MS-D01-C01",
        "agency": "STTTT",  # the late reassignment to SYT is history only
        "state": "overdue",
        "channel": "app",
        "received_at": iso(y0 + timedelta(hours=9)),
        "due_at": iso(y0 + timedelta(hours=20)),
        "resolved_at": None,
        "on_time": None,
        "rating": None,
        "lat": 21.24,
        "lon": 106.25,
        "located_by": "self",
    }
    # no coordinates of its own: the centroid of its unit in the profile
    assert (by_code["P2"]["lat"], by_code["P2"]["lon"], by_code["P2"]["located_by"]) == (
        21.2183,
        106.2926,
        "unit",
    )
    assert (by_code["P2"]["state"], by_code["P2"]["agency"], by_code["P2"]["channel"]) == (
        "new",
        None,
        "hotline",
    )
    assert (by_code["P3"]["state"], by_code["P3"]["on_time"], by_code["P3"]["rating"]) == (
        "resolved",
        True,
        "satisfied",
    )
    assert by_code["P3"]["resolved_at"] == iso(t0 + timedelta(seconds=15))
    assert (by_code["P4"]["on_time"], by_code["P4"]["rating"]) == (False, "dissatisfied")
    assert (by_code["P5"]["state"], by_code["P5"]["resolved_at"]) == ("rejected", None)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=new", ["P2"]),
        ("state=assigned", []),
        ("state=overdue", ["P1"]),
        ("state=resolved", ["P3", "P4"]),
        ("state=rejected", ["P5"]),
        ("state=open", ["P2", "P1"]),
        ("category=utilities", ["P3"]),
        ("unit=MS-D02", ["P2", "P4"]),
        ("unit=MS-D01-C01&state=open", ["P1"]),
        ("agency=STTTT", ["P1"]),
        ("agency=SYT", ["P3"]),
        ("agency=MS-D02-C01", ["P4"]),  # assigned to a commune
    ],
)
async def test_reports_filter_by_state_category_unit_and_agency(
    world_api: Any, query: str, expected: list[str]
) -> None:
    await ingest(world_api, known_world(datetime.now(TZ)))
    assert codes(await world_api.get(f"/api/v1/reports?{query}")) == expected


async def test_reports_page_with_a_cursor(world_api: Any) -> None:
    await ingest(world_api, known_world(datetime.now(TZ)))
    seen: list[list[str]] = []
    path = "/api/v1/reports?limit=2"
    while True:
        reply = await world_api.get(path)
        seen.append(codes(reply))
        if reply.body["next"] is None:
            break
        path = f"/api/v1/reports?limit=2&cursor={quote(reply.body['next'])}"
    assert seen == [["P5", "P3"], ["P2", "P4"], ["P1"]]
    filtered = await world_api.get("/api/v1/reports?state=resolved&limit=1")
    following = await world_api.get(
        f"/api/v1/reports?state=resolved&limit=1&cursor={quote(filtered.body['next'])}"
    )
    assert (codes(filtered), codes(following), following.body["next"]) == (["P3"], ["P4"], None)


async def test_one_report_has_its_details_and_every_event(world_api: Any, make_key: Any) -> None:
    await ingest(world_api, known_world(datetime.now(TZ)))
    reply = await world_api.get("/api/v1/reports/P1")
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["code"], body["state"], body["agency"], body["assignments"]) == (
        "P1",
        "overdue",
        "STTTT",
        2,
    )
    history = body["history"]
    assert [h["event"] for h in history] == ["received", "assigned", "reassigned"]
    assert [h["type"] for h in history] == [
        "report.received",
        "report.assigned",
        "report.reassigned",
    ]
    positions = [h["position"] for h in history]
    assert positions == sorted(positions)
    assert {h["source"] for h in history} == {"/tests"}
    assert {h["key"] for h in history} == {world_api.key.name}
    assert history[2]["data"]["agency"] == "SYT"  # kept, though not in effect
    assert all(h["id"] for h in history)

    p4 = (await world_api.get("/api/v1/reports/P4")).body
    assert (p4["result"], p4["on_time"], p4["rating"], p4["rejection"]) == (
        "done",
        False,
        "dissatisfied",
        None,
    )
    assert p4["rated_at"] == iso(midnight() + timedelta(seconds=18))
    p5 = (await world_api.get("/api/v1/reports/P5")).body
    assert p5["rejection"] == {
        "reason": "duplicate",
        "duplicate_of": "P1",
        "at": iso(midnight() + timedelta(seconds=20)),
    }
    unknown = await world_api.get("/api/v1/reports/NO-SUCH-REPORT")
    assert unknown.status == 404
    assert unknown.content_type == PROBLEM
    assert unknown.body["type"] == "urn:ops-center:problem:unknown-report"


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/reports?state=late", "state"),
        ("/api/v1/reports?category=pothole", "category"),
        ("/api/v1/reports?unit=NOWHERE", "unit"),
        ("/api/v1/reports?agency=NOBODY", "agency"),
        ("/api/v1/reports?limit=0", "limit"),
        ("/api/v1/reports?cursor=not-a-cursor", "cursor"),
        ("/api/v1/reports?cursor=WzEsMl0", "cursor"),  # JSON [1, 2]: not ours
        ("/api/v1/reports/stats?to=2026-11-02", "from"),
        ("/api/v1/reports/stats?from=2026-11-01", "to"),
        ("/api/v1/reports/stats?from=2026-11-02&to=2026-11-01", "from"),
        ("/api/v1/reports/stats?from=2026-11-01&to=2026-11-02&bucket=hour", "bucket"),
        ("/api/v1/reports/stats?from=2000-01-01&to=2026-11-02", "bucket"),
        ("/api/v1/reports/stats?from=2026-11-01&to=2026-11-02&agency=NOBODY", "agency"),
    ],
)
async def test_bad_report_parameters_are_named(
    refusing_api: Any, path: str, parameter: str
) -> None:
    assert_problem(await refusing_api.get(path), parameter)


# -- the statistics on a crafted set --------------------------------------------------------


def oct_(day: int, hour: float) -> datetime:
    """October `day`, 2026, at `hour` (local)."""
    return datetime(2026, 10, day, tzinfo=TZ) + timedelta(hours=hour)


def october() -> list[list[dict[str, Any]]]:
    """Seven reports over 5-7 October 2026 (D1-D3), in two batches (the second has the
    events dated after D2, so some arrive after the others of their report).

    * A (environment) D1 08:00, to SYT due D1 17:00, resolved D1 15:00 (on time, 7 h),
      rated satisfied D2 09:00;
    * B (environment) D1 10:00, to STTTT due D2 12:00, resolved D3 10:00 (late, 48 h),
      rated dissatisfied D3 11:00;
    * C (traffic) D1 20:00, never assigned;
    * D (environment) D2 08:00, to SYT due D2 20:00, reassigned D3 09:00 to the commune
      MS-D01-C01 due D4 18:00: overdue at the end of D2 by the first assignment;
    * E (utilities) D2 09:00, to STTTT due D3 05:00, resolved D3 04:00 (on time, 19 h);
    * F (environment) D3 07:00, rejected D3 08:00;
    * G (urban order, MS-D02-C01) D3 12:00, to SYT due D5 17:00.
    """
    e = Events(prefix="oct")
    unit = "MS-D01-C01"
    first = [
        e.field_report("A", unit, oct_(5, 8)),
        e.report_assigned("A", "SYT", oct_(5, 17), oct_(5, 8.5)),
        e.report_resolved("A", oct_(5, 15)),
        e.report_rated("A", "satisfied", oct_(6, 9)),
        e.field_report("B", unit, oct_(5, 10)),
        e.report_assigned("B", "STTTT", oct_(6, 12), oct_(5, 11)),
        e.field_report("C", unit, oct_(5, 20), category="traffic"),
        e.field_report("D", unit, oct_(6, 8)),
        e.report_assigned("D", "SYT", oct_(6, 20), oct_(6, 8.5)),
        e.field_report("E", unit, oct_(6, 9), category="utilities"),
        e.report_assigned("E", "STTTT", oct_(7, 5), oct_(6, 10)),
    ]
    second = [
        e.report_resolved("E", oct_(7, 4)),
        e.field_report("F", unit, oct_(7, 7)),
        e.report_rejected("F", oct_(7, 8)),
        e.report_reassigned("D", unit, oct_(8, 18), oct_(7, 9)),
        e.report_resolved("B", oct_(7, 10)),
        e.report_rated("B", "dissatisfied", oct_(7, 11)),
        e.field_report("G", "MS-D02-C01", oct_(7, 12), category="urban_order"),
        e.report_assigned("G", "SYT", oct_(9, 17), oct_(7, 13)),
    ]
    return [first, second]


def bucket(
    day: int,
    received: int,
    on_time: int,
    late: int,
    open_: tuple[int, int, int],
    median: float | None,
    satisfaction: float | None,
) -> dict[str, Any]:
    return {
        "start": iso(oct_(day, 0)),
        "end": iso(oct_(day + 1, 0)),
        "received": received,
        "resolved_on_time": on_time,
        "resolved_late": late,
        "open_not_due": open_[0],
        "open_due_24h": open_[1],
        "overdue": open_[2],
        "median_hours_to_resolve": median,
        "satisfaction_rate": satisfaction,
    }


STATS = "/api/v1/reports/stats?from=2026-10-05&to=2026-10-08"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            "",
            [
                # D1: A, B, C received; A resolved on time in 7 h; at the end B is due within
                # 24 h, C (unassigned) not yet due
                bucket(5, 3, 1, 0, (1, 1, 0), 7.0, None),
                # D2: D, E received; A rated satisfied; at the end B and D are overdue (D by
                # the assignment in effect then), E due within 24 h, C not due
                bucket(6, 2, 0, 0, (1, 1, 2), None, 1.0),
                # D3: F, G received; E on time (19 h), B late (48 h): median 33.5; B rated
                # dissatisfied; at the end C and G not due, D due within 24 h (reassigned)
                bucket(7, 2, 1, 1, (2, 1, 0), 33.5, 0.0),
            ],
            id="province",
        ),
        pytest.param(
            "&category=environment",  # A, B, D, F
            [
                bucket(5, 2, 1, 0, (0, 1, 0), 7.0, None),
                bucket(6, 1, 0, 0, (0, 0, 2), None, 1.0),
                bucket(7, 1, 0, 1, (0, 1, 0), 48.0, 0.0),
            ],
            id="category",
        ),
        pytest.param(
            "&unit=MS-D02",  # G
            [
                bucket(5, 0, 0, 0, (0, 0, 0), None, None),
                bucket(6, 0, 0, 0, (0, 0, 0), None, None),
                bucket(7, 1, 0, 0, (1, 0, 0), None, None),
            ],
            id="unit",
        ),
        pytest.param(
            "&agency=STTTT",  # B, E
            [
                bucket(5, 1, 0, 0, (0, 1, 0), None, None),
                bucket(6, 1, 0, 0, (0, 1, 1), None, None),
                bucket(7, 0, 1, 1, (0, 0, 0), 33.5, 0.0),
            ],
            id="agency",
        ),
        pytest.param(
            "&agency=MS-D01-C01",  # D, assigned to the commune now
            [
                bucket(5, 0, 0, 0, (0, 0, 0), None, None),
                bucket(6, 1, 0, 0, (0, 0, 1), None, None),
                bucket(7, 0, 0, 0, (0, 1, 0), None, None),
            ],
            id="commune",
        ),
    ],
)
async def test_report_statistics_per_day_have_the_hand_computed_answers(
    world_api: Any, query: str, expected: list[dict[str, Any]]
) -> None:
    last = await ingest(world_api, october())
    reply = await world_api.get(STATS + query)
    assert reply.status == 200, reply.body
    assert reply.body["position"] == last
    assert reply.body["bucket"] == "day"
    assert reply.body["buckets"] == expected


async def test_report_statistics_per_month_and_as_of_now(world_api: Any) -> None:
    await ingest(world_api, october())
    month = await world_api.get("/api/v1/reports/stats?from=2026-10-01&to=2026-11-01&bucket=month")
    assert month.status == 200, month.body
    # seven received; A and E on time, B late (7, 19 and 48 h: median 19); one rating of
    # two satisfied; open at the end of October: C (not due), D and G (overdue)
    assert month.body["buckets"] == [
        {
            "start": iso(datetime(2026, 10, 1, tzinfo=TZ)),
            "end": iso(datetime(2026, 11, 1, tzinfo=TZ)),
            "received": 7,
            "resolved_on_time": 2,
            "resolved_late": 1,
            "open_not_due": 1,
            "open_due_24h": 0,
            "overdue": 2,
            "median_hours_to_resolve": 19.0,
            "satisfaction_rate": 0.5,
        }
    ]
    # today (the clock inside the bucket: as of now) and tomorrow (not begun: null)
    today = datetime.now(TZ).date()
    reply = await world_api.get(
        f"/api/v1/reports/stats?from={today}&to={today + timedelta(days=2)}"
    )
    now_bucket, tomorrow = reply.body["buckets"]
    assert (now_bucket["open_not_due"], now_bucket["open_due_24h"], now_bucket["overdue"]) == (
        1,
        0,
        2,
    )
    assert (tomorrow["open_not_due"], tomorrow["open_due_24h"], tomorrow["overdue"]) == (
        None,
        None,
        None,
    )
    assert tomorrow["received"] == 0


# -- the overview as of a moment ----------------------------------------------------------


async def test_overview_reports_as_of_a_moment_use_the_assignment_in_effect_then(
    world_api: Any,
) -> None:
    """Assigned with a due time already passed (overdue), then reassigned with a later
    one: as of a moment between the two it was overdue, and the answer then is given
    again; now it is not."""
    clock = datetime.now(TZ)
    e = Events(prefix="asof")
    first = [
        e.field_report("R1", "MS-D01-C01", clock - timedelta(hours=3)),
        e.report_assigned("R1", "SXD", clock - timedelta(hours=1), clock - timedelta(hours=2)),
        e.field_report("R2", "MS-D02-C01", clock - timedelta(hours=2)),
        e.report_resolved("R2", clock - timedelta(minutes=50)),
    ]
    await ingest(world_api, [first])
    then = (await world_api.get("/api/v1/overview")).body
    assert then["reports"]["overdue"] == 1
    await asyncio.sleep(0.05)
    moment = datetime.now(TZ)
    await asyncio.sleep(0.05)
    later = [
        e.report_reassigned("R1", "SXD", clock + timedelta(hours=5), clock - timedelta(minutes=30)),
        e.report_rated("R2", "satisfied", clock - timedelta(minutes=20)),
    ]
    await ingest(world_api, [later])
    now_ = (await world_api.get("/api/v1/overview")).body
    assert now_["reports"] == {
        "received_today": now_["reports"]["received_today"],
        "open": 1,
        "overdue": 0,
        "resolved_today": now_["reports"]["resolved_today"],
        "satisfaction_rate": 1.0,
    }
    past = await world_api.get(f"/api/v1/overview?as_of={quote(moment.isoformat())}")
    assert past.status == 200, past.body
    assert past.body == then
    assert past.body["reports"]["overdue"] == 1
    assert past.body["reports"]["satisfaction_rate"] is None
    assert (
        await world_api.get(f"/api/v1/overview?as_of={quote(datetime.now(TZ).isoformat())}")
    ).body == now_


# -- where: bbox ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        # a box that is a point: P1's own coordinates, edges included
        ("106.25,21.24,106.25,21.24", ["P1"]),
        # the centroid of MS-D01-C01: P3, which has no coordinates of its own
        ("106.2514,21.2374,106.2514,21.2374", ["P3"]),
        # P1 just outside the west edge; P3, P2 and P4 at their units' centroids inside
        ("106.2500001,21.2,106.3,21.3", ["P3", "P2", "P4"]),
        ("106.25,21.2,106.3,21.3", ["P3", "P2", "P4", "P1"]),
        ("-180,-90,180,90", ["P5", "P3", "P2", "P4", "P1"]),
        ("0,0,1,1", []),
    ],
)
async def test_reports_within_a_bounding_box(
    world_api: Any, bbox: str, expected: list[str]
) -> None:
    await ingest(world_api, known_world(datetime.now(TZ)))
    assert codes(await world_api.get(f"/api/v1/reports?bbox={bbox}")) == expected


async def test_devices_within_a_bounding_box_fall_back_to_their_units(world_api: Any) -> None:
    await ingest(world_api, known_world(datetime.now(TZ)))
    # both corners are centroids: MS-D01-C01 (west, north) and MS-D02-C01 (east, south)
    box = "106.2514,21.2183,106.2926,21.2374"
    cameras = await world_api.get(f"/api/v1/devices?kind=camera&bbox={box}")
    assert codes(cameras) == ["CAM-A", "CAM-B", "CAM-C", "CAM-E"]
    assert cameras.body["total"] == 4
    first = cameras.body["items"][0]
    assert (first["lat"], first["lon"], first["located_by"]) == (21.2374, 106.2514, "unit")
    radios = await world_api.get(f"/api/v1/devices?kind=radio&bbox={box}")
    # R-1 is in MS-D01-C01 but has coordinates of its own, outside the box
    assert codes(radios) == ["R-2"]
    own = await world_api.get("/api/v1/devices?kind=radio&bbox=106.2,21.2,106.2,21.2")
    assert codes(own) == ["R-1"]
    assert own.body["items"][0]["located_by"] == "self"
    detail = await world_api.get("/api/v1/devices/CAM-D")
    assert (detail.body["lat"], detail.body["lon"], detail.body["located_by"]) == (
        21.3297,
        106.2067,
        "unit",
    )


@pytest.mark.parametrize(
    "path", ["/api/v1/devices?kind=camera&", "/api/v1/reports?", "/api/v1/alarms?"]
)
@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "nan,21,106,22",
        "inf,21,106,22",
        "1_0,21,106,22",
        "106,,107,22",
        "181,21,182,22",
        "106,-91,107,22",
        "106.5,21,106.0,21.5",  # west edge east of the east edge
        "106,21.5,107,21",  # south edge north of the north edge
        "",
    ],
)
async def test_a_malformed_or_inverted_bbox_is_a_400_naming_it(
    api: Any, viewer_key: Any, path: str, bbox: str
) -> None:
    assert_problem(await api.get(f"{path}bbox={quote(bbox)}", key=viewer_key), "bbox")
