"""The what-if of the alarm rules against a real PostgreSQL: with the thresholds the rules
ran with it reproduces the alarms that were raised (read model), a longer grace raises a
subset, and nothing is written.

The rules are driven by `RulesEngine.step(clock)` with a clock the test moves, ticking at
other moments than the what-if evaluates: raising times come from the observations.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import psycopg
import pytest

from ops_center.alarms.engine import AlarmDesk, RulesEngine
from ops_center.alarms.history import replay
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.alarms.whatif import Outcome, summary
from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.tools.simulator.recording import submissions
from ops_center.tools.testing import Events
from projections.alarms import AlarmsProjection
from projections.projection import ensure_schema, step
from projections.read.alarms import alarms_raised

PROFILE = load_profile()
UNIT = "MS-D01-C01"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)
THRESHOLDS = Thresholds(offline_grace=timedelta(minutes=5))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture(scope="module")
def history(url: str) -> str:
    """A history with alarms raised by the engine, resolved by the rules and by hand."""
    store = OpsCenter(url)
    desk = AlarmDesk(url)
    try:
        engine = RulesEngine(desk, THRESHOLDS, PROFILE.unit_of)
        ev = Events(prefix=f"w{secrets.token_hex(3)}")

        def ingest(*raws: dict[str, Any]) -> None:
            outcomes = store.ingest(submissions(raws, PROFILE))
            assert all(o.status == "accepted" for o in outcomes), outcomes

        def run(clock: datetime) -> None:
            while not engine.step(clock).caught_up:
                pass

        ingest(
            *(ev.camera(f"CAM-{n}", UNIT, at(-60)) for n in range(1, 6)),
            ev.station("ST-1", UNIT, at(-60)),
            ev.station("ST-2", UNIT, at(-60)),
            ev.camera_status("CAM-4", "offline", at(-30)),  # raised before the period
            ev.camera_status("CAM-5", "offline", at(-3)),  # raised in it, from before
        )
        run(at(-1))
        ingest(ev.camera_status("CAM-1", "offline", at(1)))  # 8 minutes offline
        ingest(ev.camera_status("CAM-2", "offline", at(2)))  # 28 minutes
        run(at(3.3))
        run(at(7.1))
        ingest(ev.camera_status("CAM-1", "online", at(9)), ev.fault("ST-1", 3, at(5)))
        run(at(12.7))
        ingest(ev.camera_status("CAM-4", "online", at(20)), ev.restored("ST-1", 3, at(20)))
        ingest(ev.camera_status("CAM-2", "online", at(30)))
        run(at(33))
        ingest(ev.camera_status("CAM-3", "offline", at(40)), ev.fault("ST-2", 1, at(50)))
        run(at(51))
        alarms = {a.subject: a for a in _alarms(url, desk)}
        desk.act(alarms["ST-2"].id, "resolve", "op-1", "handled", at(52))
        ingest(ev.camera_status("CAM-5", "online", at(70)))  # after the period
        run(at(80))
    finally:
        desk.close()
        store.close()
    return url


def _alarms(url: str, desk: AlarmDesk) -> list[Any]:
    with psycopg.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT originator_id FROM ops_events WHERE topic LIKE '%:Alarm.Raised'"
            ).fetchall()
        ]
    return list(desk.load_alarms(ids).values())


async def _project(url: str) -> None:
    """Bring the alarms read model up to the log."""
    conn = await asyncpg.connect(url)
    try:
        projection = AlarmsProjection()
        await ensure_schema(conn, [projection])
        while not (await step(conn, projection)).caught_up:
            pass
    finally:
        await conn.close()


async def _run(url: str, thresholds: Thresholds, **kw: Any) -> tuple[list[Outcome], list[Outcome]]:
    await _project(url)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            mine = await replay(conn, thresholds, PROFILE.unit_of, at(0), at(60), **kw)
            real = [Outcome(**r) for r in await alarms_raised(conn, start=at(0), end=at(60))]
    finally:
        await conn.close()
    return mine, real


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ops_events").fetchone()
    assert row is not None
    return int(row[0])


async def test_todays_thresholds_reproduce_the_raised_alarms(history: str) -> None:
    before = _count(history)
    mine, real = await _run(history, THRESHOLDS, chunk=3)
    assert _count(history) == before
    assert {(o.subject, o.cause) for o in real} == {
        ("CAM-1", "device_offline"),
        ("CAM-2", "device_offline"),
        ("CAM-3", "device_offline"),
        ("CAM-5", "device_offline"),
        ("ST-1", "cluster_fault"),
        ("ST-2", "cluster_fault"),
    }
    assert [o.key() for o in mine] == [o.key() for o in real]
    by_subject = {o.subject: o for o in mine}
    assert by_subject["CAM-5"].raised_at == at(2)  # offline since before the period
    assert by_subject["CAM-1"].resolved_at == at(9)
    assert by_subject["CAM-3"].resolved_at is None
    assert by_subject["ST-2"].resolved_at == at(52)  # by hand, as recorded
    assert summary(mine, real) == {
        "would_raise": 6,
        "raised": 6,
        "only_what_if": 0,
        "only_raised": 0,
    }


async def test_a_longer_grace_raises_a_subset(history: str) -> None:
    longer = Thresholds(offline_grace=timedelta(minutes=10))
    mine, real = await _run(history, longer)
    assert {(o.cause, o.subject) for o in mine} < {(o.cause, o.subject) for o in real}
    assert "CAM-1" not in {o.subject for o in mine}  # offline 8 minutes only
    cam5 = next(o for o in mine if o.subject == "CAM-5")
    assert cam5.raised_at == at(7)
    counts = summary(mine, real)
    assert counts["would_raise"] < counts["raised"]
    assert counts["only_raised"] >= 1


def test_the_cli_runs_and_prints(history: str) -> None:
    asyncio.run(_project(history))
    env = {k: v for k, v in os.environ.items() if k not in ("OPS_CENTER_DEBUG", "REDIS_URL")}
    env["DATABASE_URL"] = history
    env["OPS_CENTER_ALARM_OFFLINE_GRACE_SECONDS"] = "300"
    command = [sys.executable, "-m", "ops_center.cli", "alarms", "what-if"]
    window = ["--from", at(0).isoformat(), "--to", at(60).isoformat()]
    before = _count(history)
    done = subprocess.run([*command, *window], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"what-if of the alarm rules from {at(0).isoformat()} to {at(60).isoformat()}"
    )
    assert "  offline_grace_seconds = 300" in done.stdout
    assert "would raise 6 alarms; 6 were raised; 0 only in the what-if, 0 only raised" in (
        done.stdout
    )
    assert "what-if" in done.stderr  # the progress line
    longer = subprocess.run(
        [*command, *window, "--set", "offline_grace_seconds=600", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert longer.returncode == 0, longer.stderr
    body = orjson.loads(longer.stdout)
    assert body["thresholds"]["offline_grace_seconds"] == 600.0
    assert "CAM-1" not in {a["subject"] for a in body["would_raise"]}
    assert len(body["raised"]) == 6
    unknown = subprocess.run(
        [*command, *window, "--set", "nope_seconds=1"], env=env, capture_output=True, text=True
    )
    assert unknown.returncode == 2
    assert "nope_seconds" in unknown.stderr
    assert _count(history) == before
