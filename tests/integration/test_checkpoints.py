"""Checkpoints of the overview's counts (`projections.checkpoints`) against a real PostgreSQL.

The property: the overview at any position and moment read from a checkpoint and the
history since equals the overview read from the history alone (``checkpoints=False``, the
reader used before checkpoints existed), for the province and for one district, at
positions just before, at and just after checkpoints, and moments across local midnight
and the dossiers' due times. Checkpoints are written every `INTERVAL` positions (small, so
that a short log has many), applied in chunks of varied sizes, and rebuilt with their
projection.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops_center.pipeline.rebuild import rebuild
from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter
from ops_center.tools.simulator.recording import submissions
from ops_center.tools.testing import Events
from projections import read
from projections.projection import ensure_schema, step
from projections.read.checkpoints import DEVICE_CHECKPOINTS
from projections.registry import create_projections
from projections.services import CHECKPOINTS as DOSSIER_CHECKPOINTS

PROFILE = load_profile()
INTERVAL = 7
UNITS = ("MS-D01-C01", "MS-D01-C02", "MS-D02-C01")
DISTRICT = "MS-D01"
#: The moments the log's business times are spread around (the due times fall on both
#: sides of the local midnights around it).
START = datetime.now(TZ).replace(microsecond=0) - timedelta(days=2)


def _world(seed: int) -> list[list[dict[str, Any]]]:
    """Devices changing status and moving unit, dossiers received, closed and withdrawn,
    due on both sides of local midnights; in batches (one transaction each)."""
    rng = random.Random(seed)
    e = Events(prefix=f"ckpt{seed}")
    cameras = [f"C{i}" for i in range(6)]
    stations = [f"S{i}" for i in range(3)]
    batches: list[list[dict[str, Any]]] = [
        [e.camera(c, rng.choice(UNITS), START) for c in cameras]
        + [e.station(s, rng.choice(UNITS), START) for s in stations]
    ]
    open_dossiers: list[tuple[str, datetime]] = []
    n = 0
    for hour in range(0, 96, 2):
        moment = START + timedelta(hours=hour, minutes=rng.randint(0, 100))
        batch: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            late = moment - timedelta(minutes=rng.randint(0, 300))
            if roll < 0.3:
                status = rng.choice(["online", "offline", "degraded"])
                batch.append(e.camera_status(rng.choice(cameras), status, late))
            elif roll < 0.4:
                status = rng.choice(["online", "offline"])
                batch.append(e.station_status(rng.choice(stations), status, late))
            elif roll < 0.45:
                # registered again: a newer registration moves the camera
                batch.append(e.camera(rng.choice(cameras), rng.choice(UNITS), moment))
            elif roll < 0.75 or not open_dossiers:
                n += 1
                code = f"D{seed}-{n}"
                due = moment + timedelta(hours=rng.choice([-30, -3, 1, 5, 20, 26, 50]))
                due += timedelta(minutes=rng.randint(0, 59))
                batch.append(e.dossier(code, moment, due, unit=rng.choice(UNITS)))
                open_dossiers.append((code, moment))
            else:
                code, received = open_dossiers.pop(rng.randrange(len(open_dossiers)))
                at = max(moment, received + timedelta(minutes=1))
                if rng.random() < 0.85:
                    batch.append(e.completed(code, at))
                else:
                    batch.append(e.withdrawn(code, at))
        batches.append(batch)
    return batches


@pytest.fixture(scope="module")
async def world(new_database: Any) -> AsyncIterator[tuple[str, int, list[datetime]]]:
    """A database with the world recorded and every projection applied (checkpoints every
    `INTERVAL` positions, chunks of varied sizes): (url, head, the due times)."""
    with new_database() as url:
        store = await asyncio.to_thread(OpsCenter, url)
        dues: list[datetime] = []
        head = 0
        try:
            for batch in _world(5):
                outcomes = await asyncio.to_thread(store.ingest, submissions(batch, PROFILE))
                assert all(o.status == "accepted" for o in outcomes), outcomes
                head = max([head, *(o.position or 0 for o in outcomes)])
                dues += [
                    datetime.fromisoformat(r["data"]["due_at"])
                    for r in batch
                    if r["type"] == "dossier.received"
                ]
        finally:
            await asyncio.to_thread(store.close)
        conn = await asyncpg.connect(url)
        try:
            projections = create_projections(checkpoint_interval=INTERVAL)
            await ensure_schema(conn, projections)
            sizes = random.Random(1)
            for projection in projections:
                while not (await step(conn, projection, batch=sizes.randint(1, 12))).caught_up:
                    pass
        finally:
            await conn.close()
        yield url, head, dues


async def _both(conn: Any, scope: read.Scope, clock: datetime, position: int) -> tuple[Any, Any]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        fast = await read.overview_at(conn, scope, clock=clock, position=position)
        slow = await read.overview_at(
            conn, scope, clock=clock, position=position, checkpoints=False
        )
    return fast, slow


def _moments(dues: list[datetime]) -> st.SearchStrategy[datetime]:
    """Any moment of the log's days, and moments at, just before and just after a due
    time or a local midnight."""
    us = timedelta(microseconds=1)
    midnights = [
        datetime.combine((START + timedelta(days=d)).date(), datetime.min.time(), TZ)
        for d in range(6)
    ]
    edges = [t + d for t in (*dues, *midnights) for d in (-us, timedelta(0), us)]
    anywhere = st.integers(0, 6 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))
    return st.one_of(anywhere, st.sampled_from(edges))


def _positions(head: int) -> st.SearchStrategy[int]:
    near = [c + d for c in range(0, head + 1, INTERVAL) for d in (-1, 0, 1)]
    return st.one_of(st.integers(0, head), st.sampled_from([p for p in near if 0 <= p <= head]))


@pytest.mark.parametrize("district", [False, True], ids=["province", "district"])
async def test_overview_from_a_checkpoint_equals_the_overview_from_history(
    world: tuple[str, int, list[datetime]], district: bool
) -> None:
    url, head, dues = world
    units = PROFILE.descendants(DISTRICT) if district else None
    scope = read.Scope(units, PROFILE.owners_within(units) if units else None)
    conn = await asyncpg.connect(url)
    try:
        written = await conn.fetchval(f"SELECT count(DISTINCT position) FROM {DOSSIER_CHECKPOINTS}")
        assert written >= head // INTERVAL // 3  # the property is about checkpoints

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            position = data.draw(_positions(head), label="position")
            clock = data.draw(_moments(dues), label="clock")
            examples.append((position, clock))

        examples: list[tuple[int, datetime]] = []
        check()
        assert len(examples) >= 100
        for position, clock in examples:
            fast, slow = await _both(conn, scope, clock, position)
            assert fast == slow, (position, clock)
    finally:
        await conn.close()


async def test_as_of_from_checkpoints_equals_as_of_from_history(
    world: tuple[str, int, list[datetime]],
) -> None:
    """Through `overview(as_of=...)`: the recorded moments of the events just before, at
    and just after checkpoints (the clock is then the moment, as leaders ask it)."""
    url, head, _ = world
    conn = await asyncpg.connect(url)
    try:
        near = sorted({c + d for c in range(INTERVAL, head, INTERVAL) for d in (-1, 0, 1)})
        rows = await conn.fetch(
            "SELECT notification_id, state FROM ops_events WHERE notification_id = ANY($1)",
            near,
        )
        moments = [datetime.fromisoformat(orjson.loads(r[1])["timestamp"]) for r in rows]
        for moment in moments:
            for scope in (read.Scope(), read.Scope(PROFILE.descendants(DISTRICT))):
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    fast = await read.overview(conn, scope, clock=moment, as_of=moment)
                    slow = await read.overview(
                        conn, scope, clock=moment, as_of=moment, checkpoints=False
                    )
                assert fast == slow, moment
    finally:
        await conn.close()


async def test_checkpoints_do_not_depend_on_chunks_and_survive_a_rebuild(
    world: tuple[str, int, list[datetime]],
) -> None:
    url, _, _ = world
    conn = await asyncpg.connect(url)
    try:
        query = "SELECT * FROM {} ORDER BY 1, 2, 3, 4"
        before = {
            t: await conn.fetch(query.format(t)) for t in (DEVICE_CHECKPOINTS, DOSSIER_CHECKPOINTS)
        }
        assert all(before.values())
        await rebuild(url, ["devices", "services"], checkpoint_interval=INTERVAL)
        after = {t: await conn.fetch(query.format(t)) for t in before}
        assert after == before
    finally:
        await conn.close()
