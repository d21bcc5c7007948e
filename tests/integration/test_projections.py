"""The projection runner against a real PostgreSQL: exactly once, restartable, rebuildable.

Each test has a database of its own. Events are recorded with `OpsCenter.ingest` (in a
thread: the library is synchronous), then projections are applied by `step` or by real
the pipeline's `Follower` tasks, and the read-model tables are compared row by row.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ops_center.pipeline.follower import Follower
from ops_center.pipeline.rebuild import format_status, rebuild, status
from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.store.log import Event
from ops_center.tools.simulator.recording import submissions
from ops_center.tools.testing import Events, known_world
from projections.devices import DevicesProjection
from projections.feed import FeedProjection
from projections.projection import (
    Connection,
    Projection,
    ensure_schema,
    reset,
    step,
)
from projections.registry import PROJECTIONS, create_projections

PROFILE = load_profile()


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


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait until `check()` (a bool, or an awaitable of one) is true."""
    for _ in range(int(seconds / 0.02)):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


async def record(store: OpsCenter, raws: Sequence[dict[str, Any]]) -> int:
    """Record events in one transaction; the last accepted position."""
    outcomes = await asyncio.to_thread(store.ingest, submissions(raws, PROFILE))
    positions = [o.position for o in outcomes if o.status == "accepted"]
    assert len(positions) == len(raws), outcomes
    return max(p for p in positions if p is not None)


async def follow_to(follower: Follower, position: int, seconds: float = 20) -> None:
    """Run `follower` until every consumer has reached `position` (at most `seconds`), then
    stop it."""
    follower.start()
    try:
        async with asyncio.timeout(seconds):
            await follower.wait_for(position)
    finally:
        await follower.stop()


async def record_world(store: OpsCenter) -> int:
    last = 0
    for batch in known_world(datetime.now(TZ)):
        last = await record(store, batch)
    return last


def busy_world(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Many events on few subjects, with late ones, to stress chunk boundaries."""
    rng = random.Random(seed)
    e = Events(prefix=f"busy{seed}")
    t = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)
    out = [
        *(e.camera(f"C{i}", "MS-D01-C01", t) for i in range(5)),
        *(e.station(f"S{i}", "MS-D02-C01", t) for i in range(3)),
        e.kpi("K", t, target=50, deadline="2027-12-31"),
    ]
    on_air: dict[str, int] = {}
    for n in range(count):
        moment = t + timedelta(minutes=rng.randint(-30, 600))  # many are late
        roll = rng.random()
        if roll < 0.4:
            out.append(
                e.camera_status(
                    f"C{rng.randrange(5)}", rng.choice(["online", "offline", "degraded"]), moment
                )
            )
        elif roll < 0.55:
            out.append(
                e.station_status(f"S{rng.randrange(3)}", rng.choice(["online", "offline"]), moment)
            )
        elif roll < 0.65:
            station = f"S{rng.randrange(3)}"
            if station in on_air:
                out.append(e.broadcast_end(station, f"b{on_air.pop(station)}", moment))
            else:
                on_air[station] = n
                out.append(e.broadcast(station, f"b{n}", moment, kind="emergency"))
        elif roll < 0.75:
            if rng.random() < 0.5:
                out.append(e.fault(f"S{rng.randrange(3)}", rng.randint(1, 4), moment))
            else:
                out.append(e.restored(f"S{rng.randrange(3)}", rng.randint(1, 4), moment))
        elif roll < 0.8:
            out.append(e.camera_alert(f"C{rng.randrange(5)}", f"a{n}", moment))
        elif roll < 0.85:
            out.append(e.report("K", f"2026-{rng.randint(1, 12):02d}", rng.random() * 100, moment))
        elif roll < 0.9:
            # a field report: received, then (in later events, some late) assigned,
            # reassigned, resolved or rejected, rated
            code = f"BUSY-P{n}"
            out.append(e.field_report(code, rng.choice(["MS-D01-C01", "MS-D02-C01"]), moment))
            assigned = moment + timedelta(minutes=rng.randint(0, 60))
            out.append(
                e.report_assigned(
                    code, "STTTT", assigned + timedelta(hours=rng.randint(1, 30)), assigned
                )
            )
            for _ in range(rng.randint(0, 2)):  # reassignments, at any time after the reception
                at = moment + timedelta(minutes=rng.randint(0, 300))
                out.append(
                    e.report_reassigned(code, "SYT", at + timedelta(hours=rng.randint(1, 30)), at)
                )
            closing = moment + timedelta(minutes=rng.randint(301, 3000))
            if rng.random() < 0.7:
                out.append(e.report_resolved(code, closing))
                if rng.random() < 0.6:
                    rating = rng.choice(["satisfied", "dissatisfied"])
                    out.append(e.report_rated(code, rating, closing + timedelta(hours=1)))
            elif rng.random() < 0.5:
                out.append(e.report_rejected(code, closing))
        else:
            code = f"BUSY-D{n}"
            out.append(e.dossier(code, moment, moment + timedelta(hours=rng.randint(1, 48))))
            if rng.random() < 0.7:
                out.append(e.completed(code, moment + timedelta(hours=rng.randint(1, 60))))
    return out


def device_world(count: int, seed: int) -> list[dict[str, Any]]:
    """Few devices with many events each (some late): statuses, alerts, broadcasts,
    cluster reports, and registrations again (some moving the device to another unit)."""
    rng = random.Random(seed)
    e = Events(prefix=f"devices{seed}")
    t = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)
    units = ["MS-D01-C01", "MS-D02-C01", "MS-D01"]
    out = [
        *(e.camera(f"C{i}", units[0], t) for i in range(4)),
        *(e.station(f"S{i}", units[1], t) for i in range(3)),
    ]
    on_air: dict[str, int] = {}
    for n in range(count):
        moment = t + timedelta(minutes=rng.randint(-60, 900))  # many are late
        camera, station = f"C{rng.randrange(4)}", f"S{rng.randrange(3)}"
        roll = rng.random()
        if roll < 0.3:
            status = rng.choice(["online", "offline", "degraded"])
            out.append(e.camera_status(camera, status, moment))
        elif roll < 0.45:
            out.append(e.station_status(station, rng.choice(["online", "offline"]), moment))
        elif roll < 0.6:
            severity = rng.choice(["warning", "critical"])
            out.append(e.camera_alert(camera, f"a{n}", moment, severity=severity))
        elif roll < 0.72:
            if station in on_air:
                out.append(e.broadcast_end(station, f"b{on_air.pop(station)}", moment))
            else:
                on_air[station] = n
                out.append(e.broadcast(station, f"b{n}", moment))
        elif roll < 0.86:
            if rng.random() < 0.5:
                out.append(e.fault(station, rng.randint(1, 3), moment))
            else:
                out.append(e.restored(station, rng.randint(1, 3), moment))
        elif roll < 0.93:
            out.append(
                e.camera(
                    camera, rng.choice(units), moment, kind=rng.choice(["security", "traffic"])
                )
            )
        else:
            out.append(e.station(station, rng.choice(units), moment, clusters=rng.randint(3, 5)))
    return out


async def dump(conn: Connection, projections: Sequence[Projection]) -> dict[str, list[Any]]:
    """Every row of the projections' tables, in a stable order."""
    out: dict[str, list[Any]] = {}
    for projection in projections:
        for table in projection.tables:
            rows = await conn.fetch(f"SELECT * FROM {table}")
            out[table] = sorted(tuple(str(v) for v in row.values()) for row in rows)
    return out


async def apply_all(conn: Connection, projections: Sequence[Projection], batch: int) -> None:
    for projection in projections:
        while not (await step(conn, projection, batch=batch, window=batch * 3)).caught_up:
            pass


async def test_rebuild_in_one_chunk_equals_incremental_chunks(store: OpsCenter, conn: Any) -> None:
    """However the log is cut into chunks, the read models are the same."""
    projections = create_projections()
    await ensure_schema(conn, projections)
    world = busy_world(600)
    for start in range(0, len(world), 37):  # many small transactions, applied as they come
        await record(store, world[start : start + 37])
        await apply_all(conn, projections, batch=7)
    await record_world(store)
    await apply_all(conn, projections, batch=1)
    incremental = await dump(conn, projections)
    assert len(incremental["rm_feed"]) > 0

    for projection in projections:
        await reset(conn, projection)
    assert (await dump(conn, projections))["rm_devices"] == []
    await apply_all(conn, projections, batch=10_000)
    assert await dump(conn, projections) == incremental


async def test_devices_from_one_chunk_equal_the_devices_event_by_event(
    store: OpsCenter, conn: Any
) -> None:
    """The fold of a whole chunk (each device folded in memory, written once, its history
    and the chunk's broadcasts and cluster reports set-based) gives the rows of one event
    at a time, checkpoints included."""
    devices = DevicesProjection()
    devices.checkpoint_interval = 50
    await ensure_schema(conn, [devices])
    world = device_world(500, seed=5)
    for start in range(0, len(world), 40):
        await record(store, world[start : start + 40])
    await apply_all(conn, [devices], batch=1)
    one_by_one = await dump(conn, [devices])
    assert len(one_by_one["rm_device_history"]) > 20
    assert one_by_one["rm_broadcasts"]
    assert one_by_one["rm_radio_clusters"]
    assert len(one_by_one["rm_device_checkpoints"]) > 10
    for batch in (7, 10_000):
        await reset(conn, devices)
        await apply_all(conn, [devices], batch=batch)
        assert await dump(conn, [devices]) == one_by_one


class Flaky(Projection):
    """Wraps a projection; fails once, after writing, on its `fail_on`-th chunk."""

    def __init__(self, inner: Projection, fail_on: int) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.tables = inner.tables  # type: ignore[misc]
        self.events = inner.events  # type: ignore[misc]
        self.fail_on = fail_on
        self.calls = 0

    async def setup(self, conn: Connection) -> None:
        await self.inner.setup(conn)

    async def fetch(
        self, conn: Connection, after: int, upto: int, limit: int, table: str = "ops_events"
    ) -> list[Event]:
        return await self.inner.fetch(conn, after, upto, limit, table)

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        self.calls += 1
        await self.inner.apply(conn, events)
        if self.calls == self.fail_on:
            raise RuntimeError("killed between apply and commit")


class Blocking(Flaky):
    """Blocks forever, after writing, on its `fail_on`-th chunk (to be cancelled there)."""

    def __init__(self, inner: Projection, fail_on: int) -> None:
        super().__init__(inner, fail_on)
        self.blocked = asyncio.Event()

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        self.calls += 1
        await self.inner.apply(conn, events)
        if self.calls == self.fail_on:
            self.blocked.set()
            await asyncio.Event().wait()


async def expected_tables(fresh_url: str, conn: Any) -> dict[str, list[Any]]:
    projections = create_projections()
    await ensure_schema(conn, projections)
    await apply_all(conn, projections, batch=10_000)
    expected = await dump(conn, projections)
    for projection in projections:
        await reset(conn, projection)
    return expected


async def test_a_runner_failing_mid_chunk_retries_without_double_counting(
    store: OpsCenter, conn: Any, fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = busy_world(300)
    last = await record(store, world)
    expected = await expected_tables(fresh_url, conn)
    flaky = [Flaky(factory(), fail_on=2) for factory in PROJECTIONS.values()]
    follower = Follower(fresh_url, flaky, batch=10, min_backoff=0.01)
    with caplog.at_level(logging.ERROR, logger="ops_center.pipeline.follower"):
        await follow_to(follower, last)
    # every projection that had events to apply failed once (alarms has none here)
    failed = [f for f in flaky if f.calls]
    assert len(failed) == len(flaky) - 1
    assert [follower[f.name].errors for f in failed] == [1] * len(failed)
    assert "killed between apply and commit" in caplog.text
    assert await dump(conn, create_projections()) == expected


async def test_a_runner_cancelled_between_apply_and_commit_restarts_cleanly(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    last = await record(store, busy_world(300))
    expected = await expected_tables(fresh_url, conn)
    projection = Blocking(PROJECTIONS["devices"](), fail_on=3)
    runner = Follower(fresh_url, [projection], batch=40)
    runner.start()
    async with asyncio.timeout(10):
        await projection.blocked.wait()
    before = runner["devices"].position
    await runner.stop()  # the task is cancelled inside the open transaction
    stored = await conn.fetchval("SELECT position FROM projection_positions WHERE name = 'devices'")
    assert stored == before
    again = Follower(fresh_url, [PROJECTIONS["devices"]()], batch=40)
    again.start()
    try:
        async with asyncio.timeout(10):
            await again.wait_for(last)
    finally:
        await again.stop()
    got = await dump(conn, [PROJECTIONS["devices"]()])
    assert got == {t: expected[t] for t in got}


async def test_one_failing_projection_does_not_stop_the_others(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    class Broken(Projection):
        name = "broken"
        tables = ()
        events = None

        async def setup(self, conn: Connection) -> None:
            pass

        async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
            raise ValueError("this projection is broken")

    last = await record_world(store)
    runners = Follower(
        fresh_url, [Broken(), *create_projections(["devices", "feed"])], min_backoff=0.05
    )
    await runners.setup()
    runners.start()
    try:
        async with asyncio.timeout(10):
            await runners.wait_for(last, ["devices", "feed"])
        assert runners["broken"].position == 0
        assert runners["broken"].state in ("failed", "catching_up")
        assert runners["broken"].errors >= 1

        async def error_recorded() -> bool:
            error = await conn.fetchval(
                "SELECT last_error FROM projection_positions WHERE name = 'broken'"
            )
            return "this projection is broken" in str(error)

        await until(error_recorded)
    finally:
        await runners.stop()
    rows = {r["name"]: r for r in await status(fresh_url)}
    assert rows["devices"]["lag"] == 0
    assert rows["broken"]["lag"] == last
    assert "ERROR: ValueError: this projection is broken" in format_status(list(rows.values()))


async def test_only_one_runner_per_projection_is_active(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    """The advisory lock elects one follower; the other takes over when it stops."""
    first = Follower(fresh_url, [PROJECTIONS["devices"]()], lock_interval=0.1)
    second = Follower(fresh_url, [PROJECTIONS["devices"]()], lock_interval=0.1)
    first.start()
    await until(lambda: first.state == "active")
    second.start()
    try:
        position = await record_world(store)
        async with asyncio.timeout(10):
            await first.wait_for(position)
            await second.wait_for(position)  # the standby follows the stored position
        assert second.state == "standby"
        assert second["devices"].applied == 0
        await first.stop()
        more = await record(store, [Events(prefix="more").camera("CAM-Z", "MS", datetime.now(TZ))])
        async with asyncio.timeout(10):
            await second.wait_for(more)
        assert second.state == "active"
        assert second["devices"].applied == 1
    finally:
        await first.stop()
        await second.stop()


async def test_feed_from_one_large_chunk_equals_the_feed_event_by_event(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    """A chunk longer than the feed keeps writes only its tail; the rows (and the subjects'
    labels, taken from registrations before the tail) are those of one event at a time."""
    await record_world(store)
    last = await record(store, busy_world(300))
    small = FeedProjection(keep=40)
    await ensure_schema(conn, [small])
    while not (await step(conn, small, batch=1, window=1)).caught_up:
        pass
    one_by_one = await dump(conn, [small])
    assert len(one_by_one["rm_feed"]) == 40
    await reset(conn, small)

    follower = Follower(fresh_url, [FeedProjection(keep=40)], batch=10_000)
    await follow_to(follower, last)
    assert follower.steps == 1  # the whole log in one chunk
    assert await dump(conn, [small]) == one_by_one


async def test_notifications_wake_the_runner_before_the_poll(
    store: OpsCenter, fresh_url: str
) -> None:
    runner = Follower(fresh_url, [PROJECTIONS["feed"]()], poll=60)
    runner.start()
    try:
        await until(lambda: runner.state == "active")
        await asyncio.sleep(0.2)  # now waiting on LISTEN, with a minute until the next poll
        position = await record(
            store, [Events(prefix="wake").camera("CAM-W", "MS", datetime.now(TZ))]
        )
        async with asyncio.timeout(5):
            await runner.wait_for(position)
    finally:
        await runner.stop()


async def test_rebuild_command_rebuilds_everything_and_reports_rates(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    last = await record_world(store)
    projections = create_projections()
    await ensure_schema(conn, projections)
    await apply_all(conn, projections, batch=3)
    before = await dump(conn, projections)
    await conn.execute("DELETE FROM rm_devices")  # damage a read model
    out = io.StringIO()
    results = await rebuild(fresh_url, out=out)
    assert {r.name for r in results} == set(PROJECTIONS)
    assert all(r.position == last and not r.by_server for r in results)
    assert "100.0%" in out.getvalue()
    assert "log events/s" in results[0].summary()
    assert await dump(conn, projections) == before


async def test_rebuild_command_lets_a_running_runner_do_the_work(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    last = await record_world(store)
    runner = Follower(fresh_url, [PROJECTIONS["kpis"]()])
    runner.start()
    try:
        async with asyncio.timeout(10):
            await runner.wait_for(last)
        before = await dump(conn, [PROJECTIONS["kpis"]()])
        async with asyncio.timeout(20):
            (result,) = await rebuild(fresh_url, ["kpis"], out=io.StringIO())
        assert result.by_server
        assert result.position == last
        assert await dump(conn, [PROJECTIONS["kpis"]()]) == before
        assert await conn.fetchval(
            "SELECT rebuilt_at IS NOT NULL FROM projection_positions WHERE name = 'kpis'"
        )
    finally:
        await runner.stop()


async def test_overview_is_one_consistent_position_when_projections_differ(
    store: OpsCenter, conn: Any
) -> None:
    """While one projection is ahead, the overview answers at the smallest position."""
    from projections import read

    projections = create_projections(["devices", "services", "kpis", "alarms", "reports"])
    await ensure_schema(conn, projections)
    world = known_world(datetime.now(TZ))
    for batch in world[:4]:
        await record(store, batch)
    await apply_all(conn, projections, batch=1_000)
    clock = datetime.now(TZ)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        before = await read.overview(conn, read.Scope(), clock=clock)
    for batch in world[4:]:
        await record(store, batch)
    await apply_all(conn, projections[:1], batch=1_000)  # only devices moves on
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        during = await read.overview(conn, read.Scope(), clock=clock)
    assert during == before
    await apply_all(conn, projections, batch=1_000)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        after = await read.overview(conn, read.Scope(), clock=clock)
    assert after["position"] > before["position"]
    assert after["devices"]["camera"]["offline"] == before["devices"]["camera"]["offline"] + 1


async def test_history_at_the_last_position_equals_the_current_tables(
    store: OpsCenter, conn: Any
) -> None:
    """The `as_of` readers (device history, KPI log) agree with the current tables."""
    from projections import read

    projections = create_projections()
    await ensure_schema(conn, projections)
    world = busy_world(800, seed=11)
    for start in range(0, len(world), 50):
        await record(store, world[start : start + 50])
        await apply_all(conn, projections, batch=13)
    clock = datetime.now(TZ)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        current = await read.overview(conn, read.Scope(), clock=clock)
        past = await read.overview(conn, read.Scope(), clock=clock, as_of=clock)
        kpis = await read.kpi_list(conn, clock=clock)
        kpis_past = await read.kpi_list(conn, clock=clock, as_of=clock)
        history = await read.kpi_history(conn, "K")
        history_past = await read.kpi_history(conn, "K", as_of=clock)
    assert past == current
    assert current["devices"]["camera"] != {"online": 0, "offline": 0, "degraded": 0}
    assert current["reports"]["open"] > 0
    assert kpis_past["items"] == kpis["items"]
    assert kpis["items"][0]["periods"] > 1
    assert history is not None
    assert history_past is not None
    assert history_past["items"] == history["items"]


# -- the pipeline's follower: one reading of the log for everyone ---------------------------


async def test_one_reading_of_the_log_feeds_every_projection(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    """Each event is read (and decoded) once for all projections: the events of the
    follower's steps add up to the log, and every read model equals a rebuild."""
    last = await record(store, busy_world(400))
    expected = await expected_tables(fresh_url, conn)
    read: list[int] = []
    follower = Follower(fresh_url, create_projections(), batch=50)
    follower.on_step.append(lambda events, _seconds, _delay: read.append(events))
    await follow_to(follower, last)
    assert sum(read) == last  # every position once, for five projections together
    assert len([n for n in read if n]) >= last // 50
    assert await dump(conn, create_projections()) == expected


async def test_a_projection_added_later_catches_up_while_the_others_follow(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    first = await record(store, busy_world(200, seed=5))
    expected = await expected_tables(fresh_url, conn)
    devices_only = Follower(fresh_url, create_projections(["devices"]))
    devices_only.start()
    async with asyncio.timeout(10):
        await devices_only.wait_for(first)
    await devices_only.stop()
    both = Follower(fresh_url, create_projections(["devices", "feed"]), rebuild_batch=25)
    both.start()
    try:
        later = await record(store, [Events(prefix="late").camera("CAM-L", "MS", datetime.now(TZ))])
        async with asyncio.timeout(20):
            await both.wait_for(later)
        assert both["feed"].applied > both["devices"].applied  # it read the log from 0
    finally:
        await both.stop()
    got = await dump(conn, create_projections(["feed"]))
    assert got["rm_feed"][: len(expected["rm_feed"])] or got["rm_feed"]
    assert len(got["rm_feed"]) >= len(expected["rm_feed"])


async def test_a_projection_that_raises_on_one_event_is_reported_and_the_others_go_on(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    from ops_center.metrics import Metrics
    from ops_center.pipeline.observe import watch

    class Poisoned(Projection):
        """Raises on every chunk holding the poisoned position, until cured."""

        name = "poisoned"
        tables = ()
        events = None
        poison = 10
        cured = False

        async def setup(self, conn: Connection) -> None:
            pass

        async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
            if not self.cured and any(e.position == self.poison for e in events):
                raise ValueError(f"cannot apply position {self.poison}")

    last = await record(store, busy_world(100, seed=9))
    poisoned = Poisoned()
    follower = Follower(
        fresh_url, [poisoned, *create_projections(["devices", "feed"])], batch=7, min_backoff=0.05
    )
    metrics = Metrics()
    watch(follower, metrics)
    await follower.setup()
    follower.start()
    try:
        async with asyncio.timeout(10):
            await follower.wait_for(last, ["devices", "feed"])
        track = follower["poisoned"]
        assert track.position < poisoned.poison <= last
        assert "cannot apply position 10" in str(track.last_error)
        assert metrics.pipeline_failures.labels("poisoned")._value.get() >= 1

        async def recorded() -> bool:
            return "cannot apply position 10" in str(
                await conn.fetchval(
                    "SELECT last_error FROM projection_positions WHERE name = 'poisoned'"
                )
            )

        await until(recorded)
        rows = {r["name"]: r for r in await status(fresh_url)}
        assert rows["devices"]["lag"] == 0
        assert rows["poisoned"]["lag"] > 0
        poisoned.cured = True  # fixed: it catches up by itself at its next retry
        async with asyncio.timeout(10):
            await follower.wait_for(last)
        assert follower["poisoned"].last_error is None
    finally:
        await follower.stop()
    assert await conn.fetchval(
        "SELECT last_error IS NULL FROM projection_positions WHERE name = 'poisoned'"
    )


async def test_a_rebuild_while_following_equals_a_rebuild_at_rest(
    store: OpsCenter, conn: Any, fresh_url: str
) -> None:
    """Projections rebuilt by the running follower while events keep coming end equal to
    a rebuild at rest; the others were not held up."""
    await record(store, busy_world(300, seed=11))
    follower = Follower(fresh_url, create_projections(), rebuild_batch=40)
    follower.start()
    more = busy_world(200, seed=12)
    try:
        await until(lambda: follower.state == "active")  # it holds the lock: it rebuilds
        results, outcomes = await asyncio.gather(
            rebuild(fresh_url, ["devices", "services", "feed"], out=io.StringIO()),
            asyncio.to_thread(store.ingest, submissions(more, PROFILE)),
        )
        # the same subjects again: some are refused (received twice); the rest is stored
        last = max(o.position or 0 for o in outcomes)
        assert all(r.by_server for r in results)
        async with asyncio.timeout(20):
            await follower.wait_for(last)
        assert not any(follower[n].rebuilding for n in ("devices", "services", "feed"))
        assert (
            await conn.fetchval("SELECT count(*) FROM projection_positions WHERE rebuilding") == 0
        )
    finally:
        await follower.stop()
    live = await dump(conn, create_projections())
    await rebuild(fresh_url, out=io.StringIO())  # at rest: this command does the work
    assert await dump(conn, create_projections()) == live
