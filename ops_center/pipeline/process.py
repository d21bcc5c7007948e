"""The pipeline as a process of its own: ``ops-center pipeline``, and the child that
``ops-center serve`` starts beside its HTTP processes.

It connects to the configured database (``DATABASE_URL``; the embedded one of
``--data-dir`` otherwise), creates the alarm desk and the projections' tables, follows the
log (`ops_center.pipeline.follower`) and publishes the changes on the stream bus: Redis
(``REDIS_URL``) so that the HTTP processes' hubs, on this node or others, get them. Without
``REDIS_URL`` changes stay in this process and no screen gets them (a warning says so):
``ops-center serve`` always gives its pipeline a Redis, its own embedded one when none is
configured.

SIGTERM or SIGINT stops it cleanly: the current step finishes or rolls back, the alarm
rules save what they hold in memory, exit status 0. Its metrics go to the node's
``PROMETHEUS_MULTIPROC_DIR`` when set (an HTTP process's ``/metrics`` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Final

from prometheus_client.multiprocess import mark_process_dead

from ops_center.alarms.engine import AlarmDesk
from ops_center.embedded.default import database_url
from ops_center.metrics import Metrics, multiprocess_dir
from ops_center.pipeline.assembly import open_pipeline
from ops_center.pipeline.observe import watch
from ops_center.province.profile import load_profile
from ops_center.settings import Settings
from ops_center.store.database import Database
from streams.bus import Bus
from streams.memory import InMemoryBus
from streams.redis_bus import RedisBus

log = logging.getLogger(__name__)

#: Seconds between copies of the follower's state into the shared metrics.
METRICS_EVERY: Final = 1.0


async def run(settings: Settings, url: str, stop: asyncio.Event) -> None:
    """Follow the log of the database at `url` until `stop` is set."""
    database = Database.parse(url)
    profile = load_profile(settings.profile)
    log.info("pipeline: using PostgreSQL at %s", database.describe())
    desk = await asyncio.to_thread(AlarmDesk, database)
    bus: Bus
    if settings.redis_url is None:
        log.warning(
            "pipeline: no REDIS_URL: changes reach no screen outside this process "
            "(ops-center serve gives its pipeline a Redis)"
        )
        bus = InMemoryBus()
    else:
        bus = RedisBus(settings.redis_url, namespace=settings.redis_namespace)
    await bus.start()
    metrics = Metrics()
    try:
        pipeline = await open_pipeline(settings, database, profile, bus, desk)
        publish = watch(pipeline.follower, metrics)
        log.info("pipeline: following the event log")
        try:
            while not stop.is_set():
                if multiprocess_dir() is not None:
                    publish()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(METRICS_EVERY):
                        await stop.wait()
        finally:
            log.info("pipeline: stopping")
            await pipeline.close()
    finally:
        await bus.close()
        await asyncio.to_thread(desk.close)
        if multiprocess_dir() is not None:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def main(settings: Settings) -> int:
    """``ops-center pipeline``: run until SIGTERM or SIGINT; exit status 0."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with database_url(settings) as url:
            await run(settings, url, stop)

    asyncio.run(serve())
    return 0
