"""The Decision 766 service index on a crafted set of dossiers, worked out by hand.

Events are recorded with `OpsCenter.ingest` with chosen receipt times (the transparency
group compares them with the events' own times), the `service_index` projection follows
the log with `step`, and the readers are called with chosen clocks. Every expected figure
below is counted by hand from the table of dossiers; the scores are the decision's
formulas applied to those counts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.tools.simulator.recording import submissions
from ops_center.tools.testing import Events
from projections.projection import Connection, ensure_schema, reset, step
from projections.read import service_index as index_read
from projections.registry import create_projections
from projections.service_index import ServiceIndexProjection

PROFILE = load_profile()
A, B = "STTTT", "SYT"
C1, C2 = "MS-D01-C01", "MS-D02-C01"
NOV = index_read.parse_period("2026-11")
Q4 = index_read.parse_period("2026-Q4")
#: After November: the month is counted at its end.
DECEMBER_10 = datetime(2026, 12, 10, 12, 0, tzinfo=TZ)


def t(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def fresh_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
async def store(fresh_url: str) -> AsyncIterator[OpsCenter]:
    app = await asyncio.to_thread(OpsCenter, fresh_url)
    try:
        yield app
    finally:
        await asyncio.to_thread(app.close)


@pytest.fixture
async def conn(fresh_url: str) -> AsyncIterator[Connection]:
    connection = await asyncpg.connect(fresh_url)
    try:
        await ensure_schema(connection, [ServiceIndexProjection()])
        yield connection
    finally:
        await connection.close()


#: Events that reached the center more than 24 h after their time.
LATE: set[str] = set()


def world() -> list[dict[str, Any]]:
    """The dossiers (A, B: agencies; C1, C2: wards of two districts; times in 2026):

    D1  A C1 full online, digitised, fee; received 11-02, due 11-05; completed 11-04 (on
        time, e-result, paid online); rated very satisfied.
    D2  A C1 partial counter, digitised; received 11-03, due 11-06; supplement 11-04
        (reaches the center 30 h late); completed 11-10 (late); rated dissatisfied.
    D3  B C2 offline counter, fee; received 11-05, due 11-12 17:00; completed 11-12 16:00
        (on time, reaches the center 26 h late; e-result, not paid online); rated satisfied.
    D4  B C2 full online, digitised; received 11-20, due 11-25: open.
    D5  A C2 full online; received 11-28, due 12-03; completed 12-02 (e-result).
    D6  A C1 partial online, fee; received 10-30, due 11-04; completed 11-03 (paid online).
    D7  B C1 full counter, digitised; received 11-30 23:30, due 12-05; withdrawn 12-01 00:10.
    D8  A C2 full online, not digitised; received 11-15, due 11-16; withdrawn 11-16 10:00.
    D9  A C1 full online, digitised; received 12-01 00:00, due 12-06; completed 12-05.
    D10 B C1 full online, digitised; received 12-08, due 12-20: open.
    D11 A C1 full online, digitised; received 12-15 (after the clock of 12-10), due 12-20.
    """
    e = Events(prefix="index")
    out = [
        e.dossier("D1", t(11, 2), t(11, 5, 17), agency=A, unit=C1, digitised=True, fee=True),
        e.completed("D1", t(11, 4, 10), e_result=True, paid_online=True),
        e.rated("D1", "very_satisfied", t(11, 4, 12)),
        e.dossier(
            "D2",
            t(11, 3),
            t(11, 6, 17),
            agency=A,
            unit=C1,
            level="partial_online",
            channel="counter",
            digitised=True,
        ),
        e.supplement("D2", t(11, 4)),
        e.completed("D2", t(11, 10, 10), e_result=False),
        e.rated("D2", "dissatisfied", t(11, 11)),
        e.dossier(
            "D3",
            t(11, 5, 8),
            t(11, 12, 17),
            agency=B,
            unit=C2,
            level="offline",
            channel="counter",
            digitised=False,
            fee=True,
        ),
        e.completed("D3", t(11, 12, 16), e_result=True, paid_online=False),
        e.rated("D3", "satisfied", t(11, 12, 18)),
        e.dossier("D4", t(11, 20), t(11, 25, 17), agency=B, unit=C2, digitised=True),
        e.dossier("D5", t(11, 28), t(12, 3, 17), agency=A, unit=C2),
        e.dossier(
            "D6", t(10, 30), t(11, 4, 17), agency=A, unit=C1, level="partial_online", fee=True
        ),
        e.completed("D6", t(11, 3, 10), paid_online=True),
        e.dossier(
            "D7",
            t(11, 30, 23, 30),
            t(12, 5, 17),
            agency=B,
            unit=C1,
            channel="counter",
            digitised=True,
        ),
        e.dossier("D8", t(11, 15), t(11, 16, 17), agency=A, unit=C2, digitised=False),
        e.withdrawn("D8", t(11, 16, 10)),
        e.dossier("D9", t(12, 1, 0), t(12, 6, 17), agency=A, unit=C1, digitised=True),
        e.dossier("D10", t(12, 8), t(12, 20, 17), agency=B, unit=C1, digitised=True),
        e.dossier("D11", t(12, 15), t(12, 20, 17), agency=A, unit=C1, digitised=True),
        # December closings, after the receptions above in the log
        e.completed("D5", t(12, 2, 10), e_result=True),
        e.withdrawn("D7", t(12, 1, 0, 10)),
        e.completed("D9", t(12, 5, 10)),
    ]
    late = {("dossier.supplement_requested", "D2"): 30, ("dossier.completed", "D3"): 26}
    for raw in out:
        raw["_late_hours"] = late.get((raw["type"], raw["subject"]), 0)
    return out


async def record(store: OpsCenter, raws: Sequence[dict[str, Any]]) -> int:
    """Record the events, each received 5 minutes after its time (or its `_late_hours`
    later); the last position."""
    clean = [{k: v for k, v in r.items() if k != "_late_hours"} for r in raws]
    subs = submissions(clean, PROFILE)
    for sub, raw in zip(subs, raws, strict=True):
        at = datetime.fromisoformat(sub.meta["time"])
        delay = timedelta(hours=raw["_late_hours"]) if raw["_late_hours"] else timedelta(minutes=5)
        sub.meta["received_at"] = (at + delay).isoformat()
    outcomes = await asyncio.to_thread(store.ingest, subs)
    assert [o.status for o in outcomes] == ["accepted"] * len(raws), outcomes
    return max(o.position or 0 for o in outcomes)


async def follow(conn: Connection, batch: int = 2_000) -> None:
    projection = ServiceIndexProjection()
    while not (await step(conn, projection, batch=batch, window=batch * 3)).caught_up:
        pass


async def index(conn: Connection, period: index_read.Period, **kwargs: Any) -> dict[str, Any]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        kwargs.setdefault("clock", DECEMBER_10)
        return await index_read.service_index(conn, period=period, **kwargs)


async def readings_agree(
    conn: Connection, period: index_read.Period, clock: datetime, **kwargs: Any
) -> None:
    """The counters' tallies (now) equal the dossiers' rows read at the current position."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchval("SELECT max(notification_id) FROM ops_events")
        counted = await index_read.tallies(
            conn, period=period, clock=clock, position=None, **kwargs
        )
        historic = await index_read.tallies(
            conn, period=period, clock=clock, position=head, **kwargs
        )
    keep = {k: v for k, v in counted.items() if v.any()}
    assert keep, (period, clock, kwargs)
    assert keep == {k: v for k, v in historic.items() if v.any()}, (period, clock, kwargs)


def part(answer: dict[str, Any], group: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in answer["groups"][group]["parts"] if p["name"] == name)
    return found


def fractions(answer: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {
        p["name"]: (p["numerator"], p["denominator"])
        for g in answer["groups"].values()
        for p in g["parts"]
    }


def expected_total(counts: dict[str, tuple[int, int]]) -> float:
    maxima = {p.name: p.max for p in index_read.PARTS}
    return round(sum(maxima[n] * (a / b if b else 1) for n, (a, b) in counts.items()), 2)


async def test_november_province_wide_worked_out_by_hand(store: OpsCenter, conn: Any) -> None:
    await record(store, world())
    await follow(conn)
    answer = await index(conn, NOV)
    # received in November: D1 D2 D3 D4 D5 D7 D8 (D6 in October, D9 at 12-01 00:00 is
    # December's); online-capable: all but D3; of those filed online: D1 D4 D5 D8;
    # digitised: D1 D2 D4 D7. Completed in November: D6 D1 D2 D3 (D8 was withdrawn), on
    # time D6 D1 D3; with a fee D1 D3 D6, paid online D1 D6; e-result D1 D3. In progress
    # at the month's end: D4 (overdue since 11-25), D5, D7 (received 23:30, withdrawn after
    # midnight). Rated: D1 D2 D3, satisfied D1 D3. Status events of November: 7 receptions,
    # 1 supplement, 5 closings (D6 D1 D2 D3 completed, D8 withdrawn); late: D2's supplement,
    # D3's completion.
    counts = {
        "on_time": (3 + 3 - 1, 4 + 3),
        "online_share": (4, 6),
        "online_payment": (2, 3),
        "digitised_intake": (4, 7),
        "e_result": (2, 4),
        "satisfied": (2, 3),
        "timely": (11, 13),
    }
    assert fractions(answer) == counts
    assert answer["total"] == expected_total(counts)
    assert answer["total"] == 67.97  # 14.29 + 14.67 + 11.79 + 12 + 15.23
    assert answer["groups"]["progress"] == {
        "score": 14.29,
        "max": 20,
        "no_data": False,
        "parts": [
            {
                "name": "on_time",
                "score": 14.29,
                "max": 20,
                "numerator": 5,
                "denominator": 7,
                "no_data": False,
            }
        ],
    }
    assert answer["groups"]["online"]["score"] == 14.67  # 7.333 + 7.333
    assert answer["groups"]["digitisation"]["score"] == 11.79  # 6.286 + 5.5
    assert answer["groups"]["satisfaction"]["score"] == 12.0
    assert answer["groups"]["transparency"]["score"] == 15.23
    assert list(answer["groups"]) == [
        "progress",
        "online",
        "digitisation",
        "satisfaction",
        "transparency",
    ]
    assert answer["period"] == "2026-11"
    assert (answer["agency"], answer["unit"], answer["as_of"]) == (None, None, None)


async def test_an_agency_and_a_group_without_data(store: OpsCenter, conn: Any) -> None:
    await record(store, world())
    await follow(conn)
    # agency B: received D3 D4 D7 (online-capable D4 D7, filed online D4; digitised D4 D7);
    # completed D3 (on time, fee not paid online, e-result); in progress at the end D4
    # (overdue) and D7; rated D3 (satisfied); status events D3 D4 D7 and D3's late completion
    agency = await index(conn, NOV, agency=B)
    assert fractions(agency) == {
        "on_time": (1 + 2 - 1, 1 + 2),
        "online_share": (1, 2),
        "online_payment": (0, 1),
        "digitised_intake": (2, 3),
        "e_result": (1, 1),
        "satisfied": (1, 1),
        "timely": (3, 4),
    }
    # agency A in ward C2: D5 and D8 received, both online, neither digitised; nothing
    # completed (D5 in December, D8 withdrawn), nothing rated: those parts score their
    # maximum and say so; D5 in progress at the end, not overdue
    both = await index(conn, NOV, agency=A, units=[C2], unit=C2)
    assert fractions(both) == {
        "on_time": (1, 1),
        "online_share": (2, 2),
        "online_payment": (0, 0),
        "digitised_intake": (0, 2),
        "e_result": (0, 0),
        "satisfied": (0, 0),
        "timely": (3, 3),
    }
    assert part(both, "online", "online_payment") == {
        "name": "online_payment",
        "score": 11.0,
        "max": 11,
        "numerator": 0,
        "denominator": 0,
        "no_data": True,
    }
    assert both["groups"]["satisfaction"] == {
        "score": 18.0,
        "max": 18,
        "no_data": True,
        "parts": [part(both, "satisfaction", "satisfied")],
    }
    assert both["groups"]["digitisation"]["no_data"] is False  # one half has data
    assert both["groups"]["digitisation"]["score"] == 11.0  # 0 + 11 (no data)
    assert both["total"] == 20 + 22 + 11 + 18 + 18
    # a district is its wards: D01 holds C1 only
    district = await index(conn, NOV, units=PROFILE.descendants("MS-D01"), unit="MS-D01")
    ward = await index(conn, NOV, units=[C1], unit=C1)
    assert fractions(district) == fractions(ward)
    assert fractions(ward)["digitised_intake"] == (3, 3)  # D1 D2 D7


async def test_a_period_not_ended_judges_overdue_at_the_clock(store: OpsCenter, conn: Any) -> None:
    """Q4 at 12-10: completed D6 D1 D2 D3 D5 D9 (on time all but D2); in progress (received
    before the quarter's end, not closed before it, by the events recorded): D4, D10 and
    D11 (dated after the clock, but recorded); overdue at the clock: D4. Received in Q4:
    all 11."""
    await record(store, world())
    await follow(conn)
    answer = await index(conn, Q4)
    counts = fractions(answer)
    assert counts["on_time"] == (5 + 3 - 1, 6 + 3)
    assert counts["digitised_intake"] == (7, 11)  # D1 D2 D4 D7 D9 D10 D11
    assert counts["e_result"] == (3, 6)  # D1 D3 D5
    assert counts["timely"] == (20 - 2, 20)  # 11 receptions, 1 supplement, 8 closings
    # the quarter's sums are its months' sums
    months = [await index(conn, index_read.parse_period(f"2026-{m}")) for m in (10, 11, 12)]
    for name in ("online_share", "online_payment", "digitised_intake", "satisfied", "timely"):
        assert counts[name] == tuple(sum(fractions(m)[name][i] for m in months) for i in (0, 1)), (
            name
        )
    # at the end of October D6 was in progress and not overdue, nothing completed
    assert fractions(months[0])["on_time"] == (1, 1)
    # at 11-20 10:00 November has not ended: its four completions, and in progress D4, D5
    # and D7 (closed in December), none overdue yet
    mid = await index(conn, NOV, clock=t(11, 20, 10))
    assert mid["groups"]["progress"]["parts"][0]["denominator"] == 4 + 3
    assert fractions(mid)["on_time"] == (3 + 3, 4 + 3)
    # later that month D4 is overdue: 11-26
    assert fractions(await index(conn, NOV, clock=t(11, 26)))["on_time"] == (3 + 3 - 1, 4 + 3)
    # a period that has not begun has no dossiers in progress and no data
    future = await index(conn, index_read.parse_period("2027-02"))
    assert all(p["no_data"] for g in future["groups"].values() for p in g["parts"])
    assert future["total"] == 100.0


async def test_as_of_answers_as_the_log_stood_then(store: OpsCenter, conn: Any) -> None:
    """The events recorded after a moment do not count as of that moment; the historic
    reading at the current position equals the counters' answer."""
    events = world()
    first = [e for e in events if e["subject"] in {"D1", "D2", "D6"}]
    await record(store, first)
    await follow(conn)
    then = await index(conn, NOV)
    await asyncio.sleep(0.05)
    moment = datetime.now(TZ)
    await asyncio.sleep(0.05)
    await record(store, [e for e in events if e not in first])
    await follow(conn)
    past = await index(conn, NOV, as_of=moment)
    assert past["as_of"] is not None
    assert {**past, "as_of": None} == then
    assert fractions(past) == {
        "on_time": (2, 3),  # D6 D1 on time, D2 late; nothing open at the end
        "online_share": (1, 2),
        "online_payment": (2, 2),
        "digitised_intake": (2, 2),
        "e_result": (1, 3),
        "satisfied": (1, 2),
        "timely": (5, 6),  # receptions D1 D2, D2's late supplement, completions D6 D1 D2
    }
    for period in (NOV, Q4, index_read.parse_period("2026")):
        for kwargs in ({}, {"agency": A}, {"units": [C2]}, {"agency": B, "units": [C1]}):
            for clock in (DECEMBER_10, t(11, 26), t(12, 31, 23)):
                await readings_agree(conn, period, clock, **kwargs)


async def test_ranking_by_agency_and_by_ward(store: OpsCenter, conn: Any) -> None:
    await record(store, world())
    await follow(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        by_agency = await index_read.index_ranking(
            conn, period=NOV, by="agency", clock=DECEMBER_10, names={A: "Sở TT&TT"}
        )
        by_unit = await index_read.index_ranking(
            conn,
            period=NOV,
            by="unit",
            clock=DECEMBER_10,
            names={},
            within={C1, C2},
        )
    a = await index(conn, NOV, agency=A)
    b = await index(conn, NOV, agency=B)
    expected = sorted(
        [
            {"code": A, "name": "Sở TT&TT", "total": a["total"], "groups": a["groups"]},
            {"code": B, "name": B, "total": b["total"], "groups": b["groups"]},
        ],
        key=lambda i: -i["total"],
    )
    assert by_agency["items"] == expected
    assert by_agency["items"][0]["total"] >= by_agency["items"][1]["total"]
    c1 = await index(conn, NOV, units=[C1])
    c2 = await index(conn, NOV, units=[C2])
    assert {i["code"]: i["total"] for i in by_unit["items"]} == {C1: c1["total"], C2: c2["total"]}
    assert [i["total"] for i in by_unit["items"]] == sorted(
        (i["total"] for i in by_unit["items"]), reverse=True
    )


def noisy_world(count: int, seed: int) -> list[dict[str, Any]]:
    """Random dossiers over three months, closed and rated at random (some late)."""
    rng = random.Random(seed)
    e = Events(prefix=f"noisy{seed}")
    out: list[dict[str, Any]] = []
    start = t(10, 1)
    for n in range(count):
        code = f"N{n}"
        r = start + timedelta(hours=rng.randint(0, 24 * 80))
        due = r + timedelta(hours=rng.randint(-5, 24 * 10))
        out.append(
            e.dossier(
                code,
                r,
                due,
                agency=rng.choice([A, B]),
                unit=rng.choice([C1, C2, "MS-D01-C02"]),
                level=rng.choice(["full_online", "partial_online", "offline"]),
                channel=rng.choice(["online", "counter", "postal"]),
                **({"digitised": rng.random() < 0.7} if rng.random() < 0.8 else {}),
                **({"fee": rng.random() < 0.5} if rng.random() < 0.8 else {}),
            )
        )
        if rng.random() < 0.2:
            out.append(e.supplement(code, r + timedelta(hours=rng.randint(1, 30))))
        roll = rng.random()
        closing = r + timedelta(hours=rng.randint(-3, 24 * 12))
        if roll < 0.7:
            out.append(
                e.completed(
                    code,
                    closing,
                    e_result=rng.random() < 0.6,
                    paid_online=rng.random() < 0.5,
                )
            )
            if rng.random() < 0.4:
                rating = rng.choice(["very_satisfied", "satisfied", "dissatisfied"])
                out.append(e.rated(code, rating, closing + timedelta(hours=rng.randint(1, 48))))
        elif roll < 0.8:
            out.append(e.withdrawn(code, closing))
    # supplements must precede the closing in time to be accepted after it: put every
    # later event after its dossier's reception in the log, in a shuffled order of
    # subjects, so that chunks cut between a reception and its closing
    for raw in out:
        raw["_late_hours"] = 30 if rng.random() < 0.1 else 0
    receptions = [r for r in out if r["type"] == "dossier.received"]
    others = [r for r in out if r["type"] != "dossier.received"]
    rng.shuffle(receptions)
    return (
        receptions[: count // 2]
        + others[: len(others) // 3]
        + receptions[count // 2 :]
        + others[len(others) // 3 :]
    )


async def rebuilt_rows(
    conn: Any, projection: ServiceIndexProjection, batch: int
) -> dict[str, list[tuple[str, ...]]]:
    """Every row of the projection's tables, sorted, after a rebuild in chunks of `batch`."""
    await reset(conn, projection)
    await follow(conn, batch)
    rows = {}
    for table in projection.tables:
        found = await conn.fetch(f"SELECT * FROM {table}")
        rows[table] = sorted(tuple(str(v) for v in row.values()) for row in found)
    return rows


async def test_rebuild_equals_incremental_and_the_readings_agree(
    store: OpsCenter, conn: Any
) -> None:
    raws = noisy_world(300, seed=11)
    accepted = []
    for raw in raws:  # some closings may precede their reception: skip what is refused
        clean = {k: v for k, v in raw.items() if k != "_late_hours"}
        outcome = await asyncio.to_thread(store.ingest, submissions([clean], PROFILE))
        if outcome[0].status == "accepted":
            accepted.append(raw)
    assert len(accepted) > 300
    projection = ServiceIndexProjection()
    dumps = [await rebuilt_rows(conn, projection, batch) for batch in (7, 50, 5_000)]
    assert dumps[0] == dumps[1] == dumps[2]
    assert len(dumps[0]["rm_index_dossiers"]) == 300
    for period in (NOV, Q4, index_read.parse_period("2026-10")):
        for clock in (t(10, 20), t(11, 15, 13), DECEMBER_10, t(12, 25)):
            for kwargs in ({}, {"agency": B}, {"units": [C1, "MS-D01-C02"]}):
                await readings_agree(conn, period, clock, **kwargs)
            for by in ("agency", "unit"):
                await readings_agree(conn, period, clock, by=by)


async def test_one_chunk_equals_the_index_event_by_event(store: OpsCenter, conn: Any) -> None:
    """The fold of a whole chunk (months looked up, arrival times parsed once, the
    counters summed per group and month) gives the rows of one event at a time."""
    for raw in noisy_world(150, seed=23):  # some closings precede their reception: skipped
        clean = {k: v for k, v in raw.items() if k != "_late_hours"}
        subs = submissions([clean], PROFILE)
        at = datetime.fromisoformat(subs[0].meta["time"])
        late = timedelta(hours=raw["_late_hours"], minutes=5)
        subs[0].meta["received_at"] = (at + late).isoformat()
        await asyncio.to_thread(store.ingest, subs)
    projection = ServiceIndexProjection()
    dumps = [await rebuilt_rows(conn, projection, batch) for batch in (1, 10_000)]
    assert dumps[0] == dumps[1]
    timely = await conn.fetch("SELECT DISTINCT received_timely FROM rm_index_dossiers")
    assert {row[0] for row in timely} == {True, False}
    assert dumps[0]["rm_index_supplements"]


async def test_the_index_projection_is_registered(fresh_url: str) -> None:
    assert "service_index" in {p.name for p in create_projections()}


async def test_the_simulated_province_scores_as_real_provinces_do(
    store: OpsCenter, conn: Any
) -> None:
    """Two working days of the demo province's dossiers, delivered as they happen: the
    index lands where real provinces score (70-90)."""
    from ops_center.tools.simulator import Province

    start = t(11, 2, 0)  # a Monday
    events = [
        e
        for e in Province(start, seed=5, run="idx", profile=PROFILE).advance(
            start + timedelta(days=2)
        )
        if e["type"].startswith("dossier.")
    ]
    assert len(events) > 5_000
    for i in range(0, len(events), 2_000):
        await record(store, [{**e, "_late_hours": 0} for e in events[i : i + 2_000]])
    await follow(conn)
    answer = await index(conn, NOV, clock=start + timedelta(days=2))
    assert 70 <= answer["total"] <= 90, answer
    assert not any(g["no_data"] for g in answer["groups"].values())
