"""Runs the alarm rules in the background: one active runner across nodes.

The runner holds a PostgreSQL advisory lock (the others stand by and retry every
`lock_interval` seconds), LISTENs on the events table's channel to wake when events are
stored, and steps at least every `tick` seconds without events (the clock raises
dossiers past due and devices past their grace period), at most once every
`min_interval` seconds while events keep coming. Each step runs in a thread (the
library is synchronous) and commits alone (`RulesEngine.step`); after a failure the
runner logs it, backs off and carries on from the last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

import asyncpg
from eventsourcing.persistence import IntegrityError

from ops_center.alarms.engine import RulesEngine, RulesMoved
from ops_center.province.calendar import now
from ops_center.runtime.backoff import Backoff
from ops_center.store.database import Database, as_database
from ops_center.store.log import EVENTS_TABLE

log = logging.getLogger(__name__)

# Limits
#: Seconds between steps without any new event (the clock's resolution for alarms).
DEFAULT_TICK: Final = 5.0
#: Fewest seconds between two steps while events keep coming (one step then covers many
#: commits: under load the rules cost a few steps a second, not one per commit).
DEFAULT_MIN_INTERVAL: Final = 0.25
#: Seconds between attempts to become the active runner.
DEFAULT_LOCK_INTERVAL: Final = 5.0
#: First and largest pause after a failure, in seconds.
MIN_BACKOFF: Final = 0.2
MAX_BACKOFF: Final = 30.0

LOCK_KEY: Final = int.from_bytes(
    hashlib.blake2b(b"ops-center:alarm-rules", digest_size=8).digest(), "big", signed=True
)

RunnerState = Literal["starting", "standby", "active", "failed", "stopped"]


class RulesRunner:
    """Keeps the alarm rules up to date with the log and the clock.

    `start` runs it as a task; `stop` cancels and awaits it. `clock` gives the time used
    by each step (tests move it). `position` is the last committed position seen.
    """

    def __init__(
        self,
        database: Database | str,
        engine: RulesEngine,
        *,
        tick: float = DEFAULT_TICK,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        lock_interval: float = DEFAULT_LOCK_INTERVAL,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.database = as_database(database)
        self.engine = engine
        self.tick = tick
        self.min_interval = min_interval
        self.lock_interval = lock_interval
        self.clock = clock
        self.state: RunnerState = "starting"
        self.position = 0
        self.steps = 0
        self.errors = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._moved = asyncio.Condition()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="alarm-rules")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state = "stopped"

    def wake(self) -> None:
        """Step now (e.g. after an operator's action, or a test moved the clock)."""
        self._wake.set()

    async def wait_for(self, position: int) -> None:
        """Wait until the rules have applied `position` (bound it with asyncio.timeout)."""
        async with self._moved:
            await self._moved.wait_for(lambda: self.position >= position)

    def status(self) -> dict[str, object]:
        return {
            "name": "alarm-rules",
            "state": self.state,
            "position": self.position,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        backoff = Backoff(MIN_BACKOFF, MAX_BACKOFF)
        while True:
            try:
                await self._session(backoff.reset)
            except asyncio.CancelledError:
                self.state = "stopped"
                raise
            except Exception as exc:
                self.state = "failed"
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("alarm rules failed; retrying in %.1f s: %s", backoff.peek(), exc)
                await backoff.sleep()

    async def _session(self, backoff_reset: Callable[[], None]) -> None:
        conn = await asyncpg.connect(**self.database.asyncpg_args())
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                self.state = "standby"
                await asyncio.sleep(self.lock_interval)
            self.state = "active"

            def notified(*_: object) -> None:
                self._wake.set()

            await conn.add_listener(EVENTS_TABLE, notified)
            while True:
                self._wake.clear()
                started = time.monotonic()
                try:
                    result = await asyncio.to_thread(self.engine.step, self.clock())
                except (RulesMoved, IntegrityError) as exc:
                    # another writer changed what this step read (an operator's action
                    # on the same alarm, or an overlapping runner): nothing was saved
                    log.info("alarm rules step refused (%s); stepping again", exc)
                    await asyncio.sleep(MIN_BACKOFF)
                    continue
                self.steps += 1
                backoff_reset()
                self.last_error = None
                if result.alarm_events:
                    log.info(
                        "alarm rules wrote %d alarm events up to position %d",
                        result.alarm_events,
                        result.position,
                    )
                async with self._moved:
                    self.position = result.position
                    self._moved.notify_all()
                if result.caught_up:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.tick):
                            await self._wake.wait()
                    pause = self.min_interval - (time.monotonic() - started)
                    if pause > 0:
                        await asyncio.sleep(pause)
        finally:
            conn.terminate()
