"""The pipeline for a settings object: the follower with every projection and (when
`Settings.alarm_rules` is on) the alarm rules, and the stream publisher on a bus.

`open_pipeline` starts it; `Pipeline.close` stops it in reverse order. The caller owns
the bus and the alarm desk it passes (the HTTP process shares them with its own parts
when the pipeline runs inside it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import asyncpg

from ops_center.alarms.engine import AlarmDesk, RulesEngine
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.pipeline.follower import Follower
from ops_center.province.profile import Profile
from ops_center.settings import Settings
from ops_center.store.database import Database
from projections.registry import create_projections
from streams.bus import Bus
from streams.publisher import Publisher
from streams.sources import Source

#: Connections of the publisher's pool (reading the topics' states).
PUBLISHER_POOL: Final = 4


def thresholds(settings: Settings) -> Thresholds:
    """The alarm rules' thresholds from the settings ``alarm_*``."""
    return Thresholds(
        offline_grace=timedelta(seconds=settings.alarm_offline_grace_seconds),
        alert_hold=timedelta(seconds=settings.alarm_alert_hold_seconds),
        dossier_grace=timedelta(seconds=settings.alarm_dossier_grace_seconds),
    )


@dataclass
class Pipeline:
    """A running pipeline: its follower, publisher and the publisher's pool."""

    follower: Follower
    publisher: Publisher
    pool: asyncpg.Pool

    async def close(self) -> None:
        await self.publisher.stop()
        await self.follower.stop()
        await self.pool.close()


async def open_pipeline(
    settings: Settings, database: Database, profile: Profile, bus: Bus, desk: AlarmDesk
) -> Pipeline:
    """Create the projections' tables, then start the follower and the publisher."""
    rules = None
    if settings.alarm_rules:
        rules = RulesEngine(desk, thresholds(settings), profile.unit_of)
    follower = Follower(
        database,
        create_projections(),
        rules=rules,
        tick=settings.alarm_tick_seconds,
        gather=settings.pipeline_gather_ms / 1000,
    )
    await follower.setup()
    pool = await asyncpg.create_pool(**database.asyncpg_args(), min_size=1, max_size=PUBLISHER_POOL)
    publisher = Publisher(
        bus,
        Source(pool, profile),
        follower,
        interval=settings.stream_interval_ms / 1000,
        refresh=settings.stream_refresh_seconds,
    )
    try:
        follower.start()
        await publisher.start()
    except BaseException:
        await asyncio.shield(follower.stop())
        await pool.close()
        raise
    return Pipeline(follower, publisher, pool)
