"""How long alarms stayed open: the periods of an alarm and the statistics per cause and
unit, on alarms whose every time is chosen, worked out by hand; and ``ops-center alarms
stats`` printing the same.

Alarms are made with the domain's `Alarm` aggregate and stored in the event store like
the rules and the operators store them; the ``alarms`` projection follows with `step`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ops_center.domain.alarm import Alarm
from ops_center.province.calendar import TZ
from ops_center.store.application import OpsCenter
from projections.alarms import AlarmsProjection
from projections.projection import Connection, ensure_schema, step
from projections.read import alarms as alarms_read

DAY = datetime(2026, 11, 22, tzinfo=TZ)
START, END = DAY + timedelta(hours=9), DAY + timedelta(hours=12)
LATER = datetime(2026, 12, 20, tzinfo=TZ)


def at(hour: int, minute: int = 0) -> str:
    return (DAY + timedelta(hours=hour, minutes=minute)).isoformat()


@pytest.fixture
def fresh_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
async def conn(fresh_url: str) -> AsyncIterator[Connection]:
    connection = await asyncpg.connect(fresh_url)
    try:
        await ensure_schema(connection, [AlarmsProjection()])
        yield connection
    finally:
        await connection.close()


def alarm(cause: str, kind: str, subject: str, unit: str | None, raised: str) -> Alarm:
    return Alarm(
        cause=cause,
        subject_kind=kind,
        subject=subject,
        occurrence=1,
        unit=unit,
        severity="warning",
        summary=f"{cause} {subject}",
        detail={},
        at=raised,
    )


def world() -> dict[str, Alarm]:
    """X1 raised 10:00, acknowledged 10:05, resolved by an operator 10:20; X2 raised
    10:10, resolved by itself 10:40; X3 raised 11:00, acknowledged 11:30, still open; X4
    (another cause, another unit) raised 10:30, repeated 10:35, resolved by itself 11:00;
    X5 (an indicator without unit) raised 09:30, still open; X6 raised 08:00 (before the
    window); X7 raised 10:50, acknowledged 12:30 (after the window)."""
    c1, c2 = "MS-D01-C01", "MS-D02-C01"
    x = {
        "X1": alarm("device_offline", "camera", "C-1", c1, at(10)),
        "X2": alarm("device_offline", "camera", "C-2", c1, at(10, 10)),
        "X3": alarm("device_offline", "camera", "C-3", c1, at(11)),
        "X4": alarm("camera_alert", "camera", "C-1", c2, at(10, 30)),
        "X5": alarm("kpi_off_track", "kpi", "K-1", None, at(9, 30)),
        "X6": alarm("device_offline", "camera", "C-6", c1, at(8)),
        "X7": alarm("device_offline", "camera", "C-7", c1, at(10, 50)),
    }
    x["X1"].acknowledge("duty", "on my way", at(10, 5))
    x["X1"].resolve("duty", None, at(10, 20))
    x["X2"].resolve("rules", None, at(10, 40), automatic=True)
    x["X3"].acknowledge("duty", None, at(11, 30))
    x["X4"].repeat(c2, "critical", "again", {"n": 2}, at(10, 35))
    x["X4"].resolve("rules", None, at(11), automatic=True)
    x["X7"].acknowledge("duty", None, at(12, 30))
    return x


async def stored(fresh_url: str, conn: Connection) -> dict[str, Alarm]:
    alarms = world()
    store = await asyncio.to_thread(OpsCenter, fresh_url)
    try:
        await asyncio.to_thread(store.save, *alarms.values())
    finally:
        await asyncio.to_thread(store.close)
    while not (await step(conn, AlarmsProjection())).caught_up:
        pass
    return alarms


async def read(conn: Connection, reader: Any, *args: Any, **kwargs: Any) -> Any:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await reader(conn, *args, **kwargs)


async def test_periods_follow_acknowledgement_and_resolution(fresh_url: str, conn: Any) -> None:
    alarms = await stored(fresh_url, conn)

    async def periods(name: str) -> list[dict[str, Any]]:
        body = await read(conn, alarms_read.alarm_detail, alarms[name].id)
        found: list[dict[str, Any]] = body["periods"]
        return found

    assert await periods("X1") == [
        {"state": "active", "from": at(10), "to": at(10, 5)},
        {"state": "acknowledged", "from": at(10, 5), "to": at(10, 20)},
    ]
    assert await periods("X2") == [{"state": "active", "from": at(10, 10), "to": at(10, 40)}]
    assert await periods("X3") == [
        {"state": "active", "from": at(11), "to": at(11, 30)},
        {"state": "acknowledged", "from": at(11, 30), "to": None},
    ]
    # a repeat changes nothing of the state
    assert await periods("X4") == [{"state": "active", "from": at(10, 30), "to": at(11)}]
    assert await periods("X5") == [{"state": "active", "from": at(9, 30), "to": None}]


async def test_stats_per_cause_and_unit_worked_out_by_hand(fresh_url: str, conn: Any) -> None:
    await stored(fresh_url, conn)
    body = await read(conn, alarms_read.alarm_stats, start=START, end=END, clock=LATER)
    assert (body["from"], body["to"]) == (START.isoformat(), END.isoformat())
    assert body["position"] > 0
    # device_offline in C1: X1 X2 X3 X7 (X6 was raised before the window). Judged at
    # 12:00: acknowledged X1 (300 s) and X3 (1,800 s), not X7 (12:30); resolved X1 by an
    # operator (1,200 s), X2 by itself (1,800 s); open X1 1,200 + X2 1,800 + X3 3,600 (to
    # 12:00) + X7 4,200 (10:50 to 12:00)
    assert body["items"] == [
        {
            "cause": "camera_alert",
            "unit": "MS-D02-C01",
            "raised": 1,
            "acknowledged": 0,
            "resolved_by_operator": 0,
            "resolved_by_itself": 1,
            "seconds_to_acknowledge": {"median": None, "p90": None},
            "seconds_to_resolve": {"median": 1800.0, "p90": 1800.0},
            "active_seconds": 1800.0,
        },
        {
            "cause": "device_offline",
            "unit": "MS-D01-C01",
            "raised": 4,
            "acknowledged": 2,
            "resolved_by_operator": 1,
            "resolved_by_itself": 1,
            "seconds_to_acknowledge": {"median": 1050.0, "p90": 300 + 0.9 * 1500},
            "seconds_to_resolve": {"median": 1500.0, "p90": 1200 + 0.9 * 600},
            "active_seconds": 1200.0 + 1800 + 3600 + 4200,
        },
        {
            "cause": "kpi_off_track",
            "unit": None,
            "raised": 1,
            "acknowledged": 0,
            "resolved_by_operator": 0,
            "resolved_by_itself": 0,
            "seconds_to_acknowledge": {"median": None, "p90": None},
            "seconds_to_resolve": {"median": None, "p90": None},
            "active_seconds": 9000.0,  # 09:30 to 12:00
        },
    ]
    # the same window while it is still going on (clock 11:15): X1 and X2 are resolved,
    # X3 and X7 count their open time up to the clock
    during = await read(conn, alarms_read.alarm_stats, start=START, end=END, clock=at_time(11, 15))
    offline = next(i for i in during["items"] if i["cause"] == "device_offline")
    assert offline["acknowledged"] == 1  # X3's acknowledgement is at 11:30
    assert offline["active_seconds"] == 1200.0 + 1800 + 900 + 1500
    # narrowed by cause, and by a unit (with its descendants)
    only = await read(
        conn,
        alarms_read.alarm_stats,
        start=START,
        end=END,
        clock=LATER,
        cause="device_offline",
    )
    assert [(i["cause"], i["raised"]) for i in only["items"]] == [("device_offline", 4)]
    district = await read(
        conn,
        alarms_read.alarm_stats,
        start=START,
        end=END,
        clock=LATER,
        units=["MS-D02", "MS-D02-C01"],
    )
    assert [i["cause"] for i in district["items"]] == ["camera_alert"]


def at_time(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def test_the_command_prints_the_same_as_a_table(fresh_url: str) -> None:
    async def prepare() -> None:
        connection = await asyncpg.connect(fresh_url)
        try:
            await ensure_schema(connection, [AlarmsProjection()])
            await stored(fresh_url, connection)
        finally:
            await connection.close()

    asyncio.run(prepare())
    env = {k: v for k, v in os.environ.items() if k not in ("OPS_CENTER_DEBUG", "REDIS_URL")}
    env["DATABASE_URL"] = fresh_url
    command = [sys.executable, "-m", "ops_center.cli", "alarms", "stats"]
    window = ["--from", "2026-11-22T09:00", "--to", "2026-11-22T12:00"]
    done = subprocess.run([*command, *window], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"alarms raised from {START.isoformat()} to {END.isoformat()}")
    assert lines[1].split() == [
        "CAUSE",
        "UNIT",
        "RAISED",
        "ACKED",
        "BY_OPERATOR",
        "BY_ITSELF",
        "ACK_MEDIAN_S",
        "ACK_P90_S",
        "RESOLVE_MEDIAN_S",
        "RESOLVE_P90_S",
        "OPEN_S",
    ]
    rows = [line.split() for line in lines[2:]]
    assert rows == [
        ["camera_alert", "MS-D02-C01", "1", "0", "0", "1", "-", "-", "1800.0", "1800.0", "1800.0"],
        [
            "device_offline",
            "MS-D01-C01",
            "4",
            "2",
            "1",
            "1",
            "1050.0",
            "1650.0",
            "1500.0",
            "1740.0",
            "10800.0",
        ],
        ["kpi_off_track", "-", "1", "0", "0", "0", "-", "-", "-", "-", "9000.0"],
    ]
    # --unit takes the descendants; an unknown unit or an empty window is a usage error
    narrowed = subprocess.run(
        [*command, *window, "--unit", "MS-D02"], env=env, capture_output=True, text=True
    )
    assert narrowed.returncode == 0, narrowed.stderr
    assert [line.split()[0] for line in narrowed.stdout.splitlines()[2:]] == ["camera_alert"]
    unknown = subprocess.run([*command, "--unit", "NOPE"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "ops-center alarms: no unit with code 'NOPE' in the profile"
    backwards = subprocess.run(
        [*command, "--from", "2026-11-22T12:00", "--to", "2026-11-22T09:00"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert backwards.returncode == 2, backwards.stderr
    bad = subprocess.run([*command, "--from", "yesterday"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "is not a time" in bad.stderr
