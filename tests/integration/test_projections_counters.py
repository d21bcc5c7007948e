"""The dossier counters against brute force, on a random world with every edge case.

`projections.read.service_stats` (and the overview's and overdue list's service figures)
sum counters kept by the services projection, and read dossiers only for pieces of time
finer than the counters. Here every answer is compared with the definitions applied to
each dossier one by one: received and closed in a bucket by their CloudEvent times; in
progress at min(bucket end - 1 us, clock) when received at or before then and not closed
at or before then; overdue when due before then, due within 24 h when due before then +
24 h. The world has dossiers received, due and closed at hour and day boundaries, one
microsecond either side of the instants where a class changes, closed before their
reception, due before it, dated in the future, and before 1906 (when the zone's offset was
not a whole number of hours, so local days do not start on UTC hours).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ops_center.province.calendar import TZ, Bucket, buckets
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.tools.simulator.recording import submissions
from ops_center.tools.testing import Events
from projections import read, services
from projections.projection import Connection, Projection, ensure_schema, reset, step
from projections.registry import create_projections

PROFILE = load_profile()
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
AGENCIES = ("STTTT", "SYT", "CAT")
UNITS = ("MS-D01", "MS-D01-C01", "MS-D01-C02", "MS-D02-C01", "MS-D02-C02", "MS-D03-C01")
#: Local midnight a few days into a month, so that day and month buckets both matter.
BASE = datetime(2026, 11, 3, tzinfo=TZ)


@pytest.fixture
def fresh_url(new_database: Any) -> Iterator[str]:
    """A database of this test's own on the session's server (dropped afterwards)."""
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
        yield connection
    finally:
        await connection.close()


def edgy(rng: random.Random, around: datetime) -> datetime:
    """A time near `around`: on an hour or a local midnight, a microsecond off, or not."""
    choice = rng.random()
    if choice < 0.25:
        base = around.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return base + rng.choice((timedelta(0), US, -US, HOUR, HOUR - US))
    if choice < 0.4:
        midnight = datetime.combine(around.astimezone(TZ).date(), datetime.min.time(), TZ)
        return midnight + rng.choice((timedelta(0), US, -US, DAY, DAY - US))
    return around + timedelta(seconds=rng.uniform(-3600, 3600), microseconds=rng.randrange(10**6))


def utc(moment: datetime) -> datetime:
    """In UTC (an offset of before 1906 in Asia/Ho_Chi_Minh has seconds, which RFC 3339
    cannot carry)."""
    return moment.astimezone(UTC)


def random_world(rng: random.Random, count: int) -> list[list[dict[str, Any]]]:
    """Dossiers with edge cases, in batches to record in order (closings after receptions,
    some in the same batch, some batches later)."""
    e = Events(prefix=f"w{rng.randrange(10**6)}")
    batches: list[list[dict[str, Any]]] = [[] for _ in range(8)]
    for n in range(count):
        code = f"RW-{n}"
        if rng.random() < 0.03:  # before 1906: local midnight is not on a UTC hour
            received = datetime(1905, 6, 1, 16, 50, tzinfo=UTC) + timedelta(
                minutes=rng.randrange(20)
            )
        elif rng.random() < 0.05:  # far in the future
            received = BASE + timedelta(days=rng.randrange(40, 70), seconds=rng.randrange(86400))
        else:
            received = edgy(rng, BASE + timedelta(seconds=rng.uniform(-5 * 86400, 6 * 86400)))
        offset = rng.choice(
            (
                timedelta(0),
                -US,
                US,
                DAY,
                DAY - US,
                DAY + US,
                -HOUR,
                timedelta(hours=rng.randrange(1, 200)),
                timedelta(seconds=rng.randrange(1, 10 * 86400)),
            )
        )
        due = received + offset if rng.random() < 0.6 else edgy(rng, received + offset)
        batch = rng.randrange(len(batches) - 1)
        batches[batch].append(
            e.dossier(
                code,
                utc(received),
                utc(due),
                agency=rng.choice(AGENCIES),
                unit=rng.choice(UNITS),
                channel=rng.choice(("online", "counter", "postal")),
            )
        )
        if rng.random() < 0.1:
            batches[batch].append(e.supplement(code, utc(received + HOUR)))
        if rng.random() < 0.3:
            continue  # stays open
        soon, late = due - DAY + US, due + US
        closed = rng.choice(
            (
                received,
                received - HOUR,
                received + US,
                soon,
                soon - US,
                soon + US,
                late,
                late - US,
                late + US,
                edgy(rng, received + timedelta(seconds=rng.uniform(0, 8 * 86400))),
                edgy(rng, due),
            )
        )
        later = rng.randrange(batch, len(batches))
        if rng.random() < 0.85:
            batches[later].append(
                e.completed(code, utc(closed), rng.choice(("approved", "refused")))
            )
        else:
            batches[later].append(e.withdrawn(code, utc(closed)))
    return [b for b in batches if b]


async def record(store: OpsCenter, raws: Sequence[dict[str, Any]]) -> None:
    outcomes = await asyncio.to_thread(store.ingest, submissions(raws, PROFILE))
    assert all(o.status == "accepted" for o in outcomes), [o for o in outcomes if o.error]


async def apply(conn: Connection, projections: Sequence[Projection], batch: int) -> None:
    for projection in projections:
        while not (await step(conn, projection, batch=batch, window=batch * 3)).caught_up:
            pass


@dataclass(frozen=True, slots=True)
class Dossier:
    agency: str
    unit: str
    channel: str
    received_at: datetime
    due_at: datetime
    state: str
    closed_at: datetime | None
    on_time: bool | None


async def dossiers(conn: Connection) -> list[Dossier]:
    rows = await conn.fetch(
        "SELECT agency, unit, channel, received_at, due_at, state, closed_at, on_time "
        "FROM rm_dossiers"
    )
    return [Dossier(*row) for row in rows]


def in_progress(selected: Sequence[Dossier], moment: datetime) -> dict[str, int]:
    """The definition: received at or before `moment`, not closed at or before it (a
    closing before the reception counts as at the reception), classified by due time."""
    out = {"not_yet_due": 0, "due_within_24h": 0, "overdue": 0}
    # The same instants in UTC, the zone of the rows: comparisons then skip the zone.
    within, moment = utc(moment + DAY), utc(moment)
    for d in selected:
        closed = None if d.closed_at is None else max(d.closed_at, d.received_at)
        if d.received_at <= moment and (closed is None or closed > moment):
            if d.due_at < moment:
                out["overdue"] += 1
            elif d.due_at < within:
                out["due_within_24h"] += 1
            else:
                out["not_yet_due"] += 1
    return out


def brute_bucket(
    selected: Sequence[Dossier],
    begin: datetime,
    stop: datetime,
    clock: datetime,
    candidates: Sequence[Dossier] | None = None,
) -> dict[str, Any]:
    """`candidates`: the dossiers of `selected` received or closed in a range holding
    ``[begin, stop)`` (the others cannot count as received or closed in it)."""
    pool = selected if candidates is None else candidates
    lo, hi = utc(begin), utc(stop)  # the rows' zone: comparisons then skip the zone
    received = [d for d in pool if lo <= d.received_at < hi]
    closed = [d for d in pool if d.closed_at is not None and lo <= d.closed_at < hi]
    on_time = sum(1 for d in closed if d.state == "completed" and d.on_time is True)
    late = sum(1 for d in closed if d.state == "completed" and d.on_time is False)
    online = sum(1 for d in received if d.channel == "online")

    def rate(part: int, whole: int) -> float | None:
        return None if whole == 0 else round(part / whole, 4)

    return {
        "start": begin.astimezone(TZ).isoformat(),
        "end": stop.astimezone(TZ).isoformat(),
        "received": len(received),
        "completed": {"on_time": on_time, "late": late, "total": on_time + late},
        "withdrawn": sum(1 for d in closed if d.state == "withdrawn"),
        "in_progress": (in_progress(selected, min(stop - US, clock)) if begin <= clock else None),
        "online_share": rate(online, len(received)),
        "on_time_rate": rate(on_time, on_time + late),
    }


def brute_stats(
    all_dossiers: Sequence[Dossier],
    start: datetime,
    end: datetime,
    bucket: Bucket,
    clock: datetime,
    agency: str | None,
    units: frozenset[str] | None,
) -> dict[str, Any]:
    selected = [
        d
        for d in all_dossiers
        if (agency is None or d.agency == agency) and (units is None or d.unit in units)
    ]
    lo, hi = utc(start), utc(end)
    candidates = [
        d
        for d in selected
        if lo <= d.received_at < hi or (d.closed_at is not None and lo <= d.closed_at < hi)
    ]
    items = [
        brute_bucket(selected, b, s, clock, candidates) for b, s in buckets(start, end, bucket)
    ]
    totals = brute_bucket(selected, start, end, clock)
    return {"items": items, "totals": totals}


FILTERS: list[tuple[str | None, frozenset[str] | None]] = [
    (None, None),
    ("SYT", None),
    (None, frozenset(PROFILE.descendants("MS-D01"))),
    (None, frozenset({"MS-D02-C01"})),
    ("CAT", frozenset(PROFILE.descendants("MS-D01"))),
    ("STTTT", frozenset({"MS-D02-C02", "MS-D03-C01"})),
    (None, frozenset(PROFILE.descendants("MS"))),  # every unit: the province's counters
    ("SYT", frozenset(PROFILE.descendants("MS"))),
]


def shapes(rng: random.Random) -> Iterator[tuple[datetime, datetime, Bucket, datetime]]:
    """(from, to, bucket, clock): typical ranges, ragged ones, and clocks on the edges."""
    day0 = BASE + timedelta(days=2)
    clocks = [
        day0 + timedelta(hours=13, minutes=17, microseconds=3),
        day0 + timedelta(hours=13),
        day0 + timedelta(hours=13) - US,
        day0,
        day0 - US,
        BASE - timedelta(days=30),
        BASE + timedelta(days=100),
    ]
    ranges: list[tuple[datetime, datetime, Bucket]] = [
        (day0, day0 + DAY, "hour"),
        (day0 - timedelta(days=6), day0 + DAY, "day"),
        (BASE.replace(day=1), BASE.replace(day=1) + timedelta(days=30), "day"),
        (datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ), "month"),
        (datetime(1905, 6, 1, tzinfo=TZ), datetime(1905, 6, 3, tzinfo=TZ), "hour"),
        (datetime(1905, 5, 1, tzinfo=TZ), datetime(1905, 8, 1, tzinfo=TZ), "day"),
        (datetime(1905, 1, 1, tzinfo=TZ), datetime(1906, 1, 1, tzinfo=TZ), "month"),
    ]
    for _ in range(4):  # ragged: from and to anywhere, down to the microsecond
        a = edgy(rng, BASE + timedelta(seconds=rng.uniform(-6 * 86400, 6 * 86400)))
        b = a + timedelta(seconds=rng.uniform(1, 5 * 86400), microseconds=rng.randrange(10**6))
        ranges.append((a, b, rng.choice(("hour", "day", "month"))))
    for start, end, bucket in ranges:
        for clock in [*rng.sample(clocks, 3), start + (end - start) / 3, end - US, end]:
            yield start, end, bucket, clock


async def test_counters_answer_exactly_what_brute_force_gives(
    store: OpsCenter, conn: Connection
) -> None:
    rng = random.Random(20261103)
    projections = create_projections()  # all, so that the overview is at one position
    await ensure_schema(conn, projections)
    for batch in random_world(rng, 700):
        await record(store, batch)
        await apply(conn, projections, batch=rng.choice((1, 7, 50, 10_000)))
    everything = await dossiers(conn)
    assert any(d.received_at.year == 1905 for d in everything)
    checked = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for start, end, bucket, clock in shapes(rng):
            for agency, units in FILTERS:
                answer = await read.service_stats(
                    conn,
                    start=start,
                    end=end,
                    bucket=bucket,
                    clock=clock,
                    agency=agency,
                    units=units,
                )
                expected = brute_stats(everything, start, end, bucket, clock, agency, units)
                where = (start, end, bucket, clock, agency, units and sorted(units)[:2])
                assert answer["items"] == expected["items"], where
                assert answer["totals"] == expected["totals"], where
                checked += len(answer["items"])
        # "overdue now" (overview, overdue list) and today's figures of the overview
        for clock in (BASE + timedelta(days=1, hours=7, minutes=5), BASE, BASE - US):
            for agency, units in FILTERS:
                selected = [
                    d
                    for d in everything
                    if (agency is None or d.agency == agency) and (units is None or d.unit in units)
                ]
                overdue = sum(1 for d in selected if d.state == "open" and d.due_at < clock)
                listed = await read.overdue_list(
                    conn, clock=clock, agency=agency, units=units, limit=5, offset=0
                )
                assert listed["total"] == overdue
                if agency is None:
                    view = await read.overview(conn, read.Scope(units, None), clock=clock)
                    today = clock.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
                    figures = brute_bucket(selected, today, today + DAY, clock)
                    assert view["services"]["overdue"] == overdue
                    assert view["services"]["received_today"] == figures["received"]
                    assert view["services"]["completed_today"] == figures["completed"]["total"]
                    assert view["services"]["on_time_rate"] == figures["on_time_rate"]
    assert checked > 1000


async def test_counters_do_not_depend_on_how_the_log_is_cut(
    store: OpsCenter, conn: Connection
) -> None:
    """Applied one event at a time, in odd chunks, or all at once: the same counter rows."""
    rng = random.Random(7)
    (projection,) = create_projections(["services"])
    await ensure_schema(conn, [projection])
    for batch in random_world(rng, 250):
        await record(store, batch)
    tables = (*services.GRAINS.values(), "rm_dossiers")

    async def rows() -> dict[str, list[tuple[str, ...]]]:
        return {
            t: sorted(
                tuple(str(v) for v in r.values()) for r in await conn.fetch(f"SELECT * FROM {t}")
            )
            for t in tables
        }

    results = []
    for size in (1, 13, 10_000):
        await reset(conn, projection)
        await apply(conn, [projection], batch=size)
        results.append(await rows())
    assert results[0] == results[1] == results[2]
    assert len(results[0]["rm_dossier_hours"]) > 100
