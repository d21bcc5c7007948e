"""The follower: one reader of the event log feeds every projection and the alarm rules.

One follower is active per database (a session-level advisory lock, `FOLLOWER_LOCK`;
the others stand by and try again every `lock_interval` seconds, so a follower that dies
is replaced within that time plus the server noticing the dead connection). The active
one LISTENs on the events table's channel (the library NOTIFYs on every insert), polls
every `poll` seconds as a fallback, and in each step

1. reads the next chunk of the log once (at most `batch` events: under load chunks grow
   by themselves up to that limit; at rest a lone event is read as soon as it is
   notified, and after a step that read all there was the next waits `gather` seconds so
   that a trickle of commits is read a few at a time), decodes it once, and hands each
   consumer the events after its own position that it follows;
2. applies the projections in ONE transaction (asyncpg, ``synchronous_commit = off``:
   read models are derived data recorded with their positions, so a crash can only lose
   chunks together with their positions) that first locks their position rows (an
   operator's `reset` waits for it, and a reset seen there makes the projection start
   again from 0) and ends with one statement recording every position;
3. meanwhile hands the same chunk to the alarm rules (`RulesEngine.apply`, in a thread:
   the library is synchronous), which keep their state in memory and save it with the
   alarm events they write.

Each consumer keeps its own position. Consumers at the front of the log are fed together;
one that is behind (rebuilt, added, or recovering from a failure) is fed from its own
position in larger chunks (`rebuild_batch`) between the front's steps, until it catches up
and joins them. A projection that raises is rolled back alone: the step is done again
without it, its error is recorded (``projection_positions.last_error``, `status`,
metrics) and it is retried after a backoff, while the others carry on. Exactly once
holds: a projection's rows and its position always commit together.

Listeners of `on_commit` are called with ``(name, position)`` after each commit that
moved a consumer (the stream publisher, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

import asyncpg

from ops_center.alarms.engine import RulesEngine
from ops_center.province.calendar import now
from ops_center.runtime.backoff import Backoff
from ops_center.store.database import Database, as_database
from ops_center.store.log import EVENTS_TABLE, Event, decode
from projections.projection import (
    POSITIONS_TABLE,
    REBUILD_BATCH,
    RESET_CHANNEL,
    Connection,
    Projection,
    ensure_schema,
    forget_staged,
)

log = logging.getLogger(__name__)

#: The advisory-lock key that elects the active follower of a database.
FOLLOWER_LOCK: Final = int.from_bytes(
    hashlib.blake2b(b"ops-center:follower", digest_size=8).digest(), "big", signed=True
)
#: The name the alarm rules go by in status pages, metrics and `/readyz`.
RULES: Final = "alarm_rules"

# Limits
#: Most events in one step at the front of the log (chunks grow to this under load).
DEFAULT_BATCH: Final = 5_000
#: Seconds between polls when no notification arrives.
DEFAULT_POLL: Final = 1.0
#: Seconds the follower lets the log fill after a step that read every event there was:
#: commits arriving meanwhile make one step instead of one each (a step's own cost, its
#: transaction, position rows and the rules' hand-off, was most of the pipeline's CPU per
#: single-event request: docs/BENCHMARKS.md). A lone event after a quiet moment is read
#: at once; under a trickle of commits each waits at most this long more.
DEFAULT_GATHER: Final = 0.02  # OPS_CENTER_PIPELINE_GATHER_MS
#: Seconds between attempts to become the active follower.
DEFAULT_LOCK_INTERVAL: Final = 1.0
#: Seconds between evaluations of the alarm rules' clock without new events.
DEFAULT_TICK: Final = 5.0
#: First and largest pause before a failed consumer is tried again, in seconds.
MIN_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0

_READ: Final = (
    f"SELECT notification_id, originator_id, originator_version, topic, state "
    f"FROM {EVENTS_TABLE} WHERE notification_id > $1 AND notification_id <= $2 "
    f"ORDER BY notification_id LIMIT $3"
)
_LOCK_POSITIONS: Final = (
    f"SELECT name, position FROM {POSITIONS_TABLE} WHERE name = ANY($1::text[]) FOR UPDATE"
)
_READ_FRONT: Final = (
    f"SELECT notification_id, originator_id, originator_version, topic, state "
    f"FROM {EVENTS_TABLE} WHERE notification_id > $1 ORDER BY notification_id LIMIT $2"
)
_ADVANCE: Final = (
    f"UPDATE {POSITIONS_TABLE} SET position = $2, updated_at = now(), last_error = NULL, "
    f"error_at = NULL, rebuilding = rebuilding AND NOT $3 WHERE name = ANY($1::text[])"
)
_RECORD_ERROR: Final = (
    f"UPDATE {POSITIONS_TABLE} SET last_error = $2, error_at = now() WHERE name = $1"
)
_POSITIONS: Final = f"SELECT name, position, rebuilding FROM {POSITIONS_TABLE}"

TrackState = Literal["starting", "standby", "following", "catching_up", "failed", "paused"]
FollowerState = Literal["starting", "standby", "active", "failed", "stopped"]
CommitListener = Callable[[str, int], None]


@dataclass(eq=False)
class Track:
    """The follower's view of one consumer: its position and health."""

    name: str
    projection: Projection | None
    #: The position committed (what survives a restart).
    position: int = 0
    #: The position applied: ahead of `position` only for the alarm rules, which hold
    #: applied changes in memory until they save them.
    cursor: int = 0
    state: TrackState = "starting"
    rebuilding: bool = False
    errors: int = 0
    last_error: str | None = None
    applied: int = 0
    retry_at: float = 0.0
    paused: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(MIN_BACKOFF, MAX_BACKOFF))

    def follows(self, event: Event) -> bool:
        names = self.projection.events if self.projection is not None else None
        return names is None or event.name in names

    def status(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "position": self.position,
            "rebuilding": self.rebuilding,
            "errors": self.errors,
            "last_error": self.last_error,
        }


class _Failed(Exception):
    """A projection raised inside the shared transaction (which is rolled back)."""

    def __init__(self, track: Track, error: BaseException) -> None:
        super().__init__(track.name)
        self.track = track
        self.error = error


class _Moved(Exception):
    """A position row changed under the follower (an operator reset a projection)."""


#: Errors of the connection itself: the session restarts (they are not a consumer's fault).
_CONNECTION_ERRORS: Final = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
)


class Follower:
    """Feeds projections and the alarm rules from one reading of the log; see the module
    docstring. `start` runs it as a task, `stop` cancels it and waits; `wait_for`,
    `status`, `is_active` and `on_commit` serve the rest of the node."""

    def __init__(
        self,
        database: Database | str,
        projections: Iterable[Projection],
        *,
        rules: RulesEngine | None = None,
        batch: int = DEFAULT_BATCH,
        rebuild_batch: int = REBUILD_BATCH,
        poll: float = DEFAULT_POLL,
        gather: float = DEFAULT_GATHER,
        lock_interval: float = DEFAULT_LOCK_INTERVAL,
        tick: float = DEFAULT_TICK,
        clock: Callable[[], datetime] = now,
        min_backoff: float = MIN_BACKOFF,
    ) -> None:
        self.database = as_database(database)
        self.projections = list(projections)
        self.rules = rules
        self.batch = batch
        self.rebuild_batch = rebuild_batch
        self.poll = poll
        self.gather = gather
        #: The last step read the front to its end: the next one waits `gather`.
        self._trickle = False
        self.lock_interval = lock_interval
        self.tick = tick
        self.clock = clock

        def backoff() -> Backoff:
            return Backoff(min_backoff, max(MAX_BACKOFF, min_backoff))

        self.tracks: dict[str, Track] = {
            p.name: Track(p.name, p, backoff=backoff()) for p in self.projections
        }
        if rules is not None:
            self.tracks[RULES] = Track(RULES, None, backoff=backoff())
        self.state: FollowerState = "starting"
        self.head = 0
        self.steps = 0
        self.errors = 0
        self.last_error: str | None = None
        self.on_commit: list[CommitListener] = []
        #: Called after each step with (events read, seconds taken, seconds since the
        #: oldest of them was recorded, or None without events).
        self.on_step: list[Callable[[int, float, float | None], None]] = []
        #: Called with a consumer's name each time it fails a step.
        self.on_failure: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reread = False
        self._moved = asyncio.Condition()
        self._next_tick = 0.0

    # -- the node's view ------------------------------------------------------------------

    @property
    def runners(self) -> dict[str, Track]:
        """The consumers by name (projections, then the alarm rules)."""
        return self.tracks

    def __getitem__(self, name: str) -> Track:
        return self.tracks[name]

    def is_active(self, name: str) -> bool:
        """Whether this node follows the log for consumer `name` now."""
        track = self.tracks.get(name)
        return self.state == "active" and track is not None and track.state != "paused"

    def status(self) -> list[dict[str, object]]:
        return [t.status() for t in self.tracks.values()]

    def _listener(self, *_: object) -> None:
        self._wake.set()

    def _reset_listener(self, *_: object) -> None:
        self._reread = True
        self._wake.set()

    def wake(self) -> None:
        """Step now (new events, an operator's action, a test that moved the clock)."""
        self._next_tick = 0.0
        self._wake.set()

    def pause(self, name: str) -> None:
        """Stop feeding one consumer (it falls behind; `resume` lets it catch up)."""
        self.tracks[name].paused = True
        self.tracks[name].state = "paused"

    def resume(self, name: str) -> None:
        self.tracks[name].paused = False
        self.tracks[name].state = "catching_up"
        self.wake()

    async def wait_for(self, position: int, names: Iterable[str] | None = None) -> None:
        """Wait until every consumer (or those named) has reached `position` on this node
        (bound the wait with `asyncio.timeout`)."""
        chosen = list(self.tracks) if names is None else list(names)
        async with self._moved:
            await self._moved.wait_for(
                lambda: all(self.tracks[n].position >= position for n in chosen)
            )

    # -- life cycle -----------------------------------------------------------------------

    async def setup(self) -> None:
        """Create every projection's tables (queries can be served before following)."""
        conn = await asyncpg.connect(**self.database.asyncpg_args())
        try:
            await ensure_schema(conn, self.projections)
        finally:
            await conn.close()

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="follower")
        return self._task

    async def stop(self) -> None:
        """Cancel the task and wait for it (an unfinished step rolls back); the alarm
        rules save what they hold in memory."""
        task, self._task = self._task, None
        if task is not None:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state = "stopped"

    async def run(self) -> None:
        """Follow the log forever: reconnect and back off after failures."""
        backoff = Backoff(MIN_BACKOFF, MAX_BACKOFF)
        while True:
            try:
                await self._session(backoff)
            except asyncio.CancelledError:
                self.state = "stopped"
                raise
            except Exception as exc:
                self.state = "failed"
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("follower failed; retrying in %.1f s", backoff.peek(), exc_info=exc)
                await backoff.sleep()

    async def _session(self, backoff: Backoff) -> None:
        conn = await asyncpg.connect(**self.database.asyncpg_args({"synchronous_commit": "off"}))
        try:
            await ensure_schema(conn, self.projections)
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", FOLLOWER_LOCK):
                self.state = "standby"
                await self._observe(conn)
                await asyncio.sleep(self.lock_interval)
            await self._activate(conn)
            backoff.reset()
            while True:
                self._wake.clear()
                if await self._step(conn):
                    if self._trickle and self.gather > 0:
                        await asyncio.sleep(self.gather)
                    continue
                await self._flush_rules()
                timeout = min(self.poll, self._until_retry(), self._until_tick())
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                    # a cancellation that races with the event it waits for.
                    async with asyncio.timeout(max(timeout, 0.0)):
                        await self._wake.wait()
                except TimeoutError:
                    self._reread = True  # a reset's notification may have been missed
        finally:
            if self.rules is not None and self.state == "active":
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.rules.flush)
            # terminate, not close: the connection may be mid-transaction after a
            # cancellation; the server rolls back and releases the advisory lock.
            conn.terminate()

    async def _observe(self, conn: Connection) -> None:
        """On standby: follow the active follower's committed positions."""
        positions = {row[0]: (int(row[1]), bool(row[2])) for row in await conn.fetch(_POSITIONS)}
        if self.rules is not None:
            position, _ = await asyncio.to_thread(self.rules.position)
            positions[RULES] = (position, False)
        for name, track in self.tracks.items():
            track.state = "standby"
            if name in positions:
                track.position, track.rebuilding = positions[name]
                track.cursor = track.position
        await self._notify_moved()

    async def _activate(self, conn: Connection) -> None:
        self.state = "active"
        await conn.add_listener(EVENTS_TABLE, self._listener)
        await conn.add_listener(RESET_CHANNEL, self._reset_listener)
        positions = {row[0]: (int(row[1]), bool(row[2])) for row in await conn.fetch(_POSITIONS)}
        for name, track in self.tracks.items():
            if track.projection is not None:
                track.position, track.rebuilding = positions.get(name, (0, False))
                track.cursor = track.position
                track.state = "catching_up"
        if self.rules is not None:
            track = self.tracks[RULES]
            track.position = track.cursor = await asyncio.to_thread(self.rules.reset)
            track.state = "catching_up"
        self._next_tick = 0.0
        log.info("follower active: %s", ", ".join(f"{t.name}@{t.position}" for t in self._ready()))
        await self._notify_moved()

    async def catch_up(
        self, conn: Connection, until: int, report: Callable[[int], None] | None = None
    ) -> None:
        """On `conn`, which holds `FOLLOWER_LOCK`: step until every consumer has reached
        `until` (a rebuild at rest); `report` gets the smallest position after each step."""
        await self._activate(conn)
        try:
            while min(t.cursor for t in self.tracks.values()) < until:
                if not await self._step(conn):
                    break
                if report is not None:
                    report(min(t.cursor for t in self.tracks.values()))
        finally:
            self.state = "stopped"
            await conn.remove_listener(EVENTS_TABLE, self._listener)
            await conn.remove_listener(RESET_CHANNEL, self._reset_listener)

    # -- one step -------------------------------------------------------------------------

    def _ready(self) -> list[Track]:
        moment = time.monotonic()
        return [t for t in self.tracks.values() if not t.paused and t.retry_at <= moment]

    def _until_retry(self) -> float:
        waiting = [t.retry_at for t in self.tracks.values() if t.retry_at and not t.paused]
        return min(waiting) - time.monotonic() if waiting else self.poll

    def _until_tick(self) -> float:
        return self._next_tick - time.monotonic() if self.rules is not None else self.poll

    async def _step(self, conn: Connection) -> bool:
        """One step at the front of the log, and one for consumers behind; whether there
        was anything to do."""
        if self._reread:
            self._reread = False
            await self._reread_positions(conn)
        ready = self._ready()
        if not ready:
            return False
        started = time.monotonic()
        lead = max(t.cursor for t in ready)
        front = [t for t in ready if t.cursor == lead]
        behind = [t for t in ready if t.cursor < lead]
        tick = self.rules is not None and time.monotonic() >= self._next_tick
        rows = await conn.fetch(_READ_FRONT, lead, self.batch)
        worked = bool(rows)
        # fewer rows than asked: the front has read every event visible now
        front_end = len(rows) < self.batch
        self._trickle = bool(rows) and front_end
        if rows or tick:
            events = [decode(row) for row in rows]
            upto = int(rows[-1][0]) if rows else lead
            self.head = max(self.head, upto)
            await self._apply(conn, front, events, lead, upto, tick=tick, end=front_end)
            self._report(events, started)
        if behind:
            low = min(t.cursor for t in behind)
            rows = await conn.fetch(_READ, low, lead, self.rebuild_batch)
            upto = int(rows[-1][0]) if len(rows) >= self.rebuild_batch else lead
            events = [decode(row) for row in rows]
            joined = upto >= lead and front_end  # caught up with a front at the end
            await self._apply(conn, behind, events, low, upto, tick=False, end=joined)
            worked = True
            self._report(events, started)
        return worked

    async def _reread_positions(self, conn: Connection) -> None:
        """Take the positions of projections reset by an operator (``rebuilding``)."""
        for row in await conn.fetch(_POSITIONS):
            track = self.tracks.get(row[0])
            if track is None or track.projection is None:
                continue
            if int(row[1]) != track.position:
                track.position = track.cursor = int(row[1])
                track.rebuilding = bool(row[2])
                track.state = "catching_up"

    def _report(self, events: Sequence[Event], started: float) -> None:
        self.steps += 1
        if not self.on_step:
            return
        elapsed = time.monotonic() - started
        delay = (self.clock() - events[0].recorded).total_seconds() if events else None
        for listener in self.on_step:
            try:
                listener(len(events), elapsed, delay)
            except Exception:
                log.exception("a step listener failed")

    def _count_failure(self, name: str) -> None:
        for listener in self.on_failure:
            try:
                listener(name)
            except Exception:
                log.exception("a failure listener failed")

    async def _apply(
        self,
        conn: Connection,
        tracks: Sequence[Track],
        events: Sequence[Event],
        low: int,
        upto: int,
        *,
        tick: bool,
        end: bool,
    ) -> None:
        """Apply ``(low, upto]`` to the tracks; `end`: that is the end of the visible log."""
        projections = [t for t in tracks if t.projection is not None]
        rules = next((t for t in tracks if t.projection is None), None)
        rules_task: asyncio.Task[None] | None = None
        if rules is not None and (upto > rules.cursor or tick):
            if tick:
                self._next_tick = time.monotonic() + self.tick
            rules_task = asyncio.create_task(self._apply_rules(rules, events, upto, tick, end))
        try:
            if projections and upto > low:
                await self._apply_projections(conn, projections, events, upto, end)
        finally:
            if rules_task is not None:
                await rules_task
        await self._notify_moved()

    async def _apply_projections(
        self,
        conn: Connection,
        tracks: Sequence[Track],
        events: Sequence[Event],
        upto: int,
        end: bool,
    ) -> None:
        pending = [t for t in tracks if t.position < upto]
        while pending:
            try:
                async with conn.transaction():
                    expected = {t.name: t.position for t in pending}
                    rows = await conn.fetch(_LOCK_POSITIONS, list(expected))
                    found = {row[0]: int(row[1]) for row in rows}
                    if found != expected:
                        for track in pending:
                            if found.get(track.name, 0) != track.position:
                                track.position = track.cursor = found.get(track.name, 0)
                                track.rebuilding = True
                        raise _Moved
                    for track in pending:
                        mine = [
                            e for e in events if e.position > track.position and track.follows(e)
                        ]
                        if not mine:
                            continue
                        assert track.projection is not None
                        try:
                            await track.projection.apply(conn, mine)
                        except _CONNECTION_ERRORS:
                            raise
                        except Exception as exc:
                            raise _Failed(track, exc) from exc
                        track.applied += len(mine)
                    await conn.execute(_ADVANCE, list(expected), upto, end)
            except _Moved:
                forget_staged(conn)
                log.info("a projection was reset meanwhile; stepping again")
                return
            except _Failed as failed:
                forget_staged(conn)
                await self._failed(conn, failed.track, failed.error)
                pending = [t for t in pending if t is not failed.track]
                continue
            break
        for track in pending:
            track.position = track.cursor = upto
            track.rebuilding = track.rebuilding and not end
            track.state = "following" if end else "catching_up"
            track.backoff.reset()
            track.retry_at = 0.0
            track.last_error = None
            self._committed(track.name, upto)

    async def _failed(self, conn: Connection, track: Track, error: BaseException) -> None:
        self._count_failure(track.name)
        track.errors += 1
        track.state = "failed"
        track.last_error = f"{type(error).__name__}: {error}"
        pause = track.backoff.next()
        track.retry_at = time.monotonic() + pause
        log.error(
            "projection %s failed at position %d; the others go on; retrying it in %.1f s",
            track.name,
            track.position,
            pause,
            exc_info=error,
        )
        try:
            await conn.execute(_RECORD_ERROR, track.name, track.last_error[:2000])
        except _CONNECTION_ERRORS:
            raise
        except Exception:
            log.debug("could not record the error of %s", track.name, exc_info=True)

    async def _apply_rules(
        self, track: Track, events: Sequence[Event], upto: int, tick: bool, end: bool
    ) -> None:
        rules = self.rules
        assert rules is not None
        mine = [e for e in events if e.position > track.cursor]
        clock = self.clock()
        try:
            await asyncio.to_thread(rules.apply, mine, upto, clock, tick=tick)
        except Exception as exc:
            self._count_failure(track.name)
            track.errors += 1
            track.state = "failed"
            track.last_error = f"{type(exc).__name__}: {exc}"
            pause = track.backoff.next()
            track.retry_at = time.monotonic() + pause
            log.warning("alarm rules step refused (%s); again in %.1f s", exc, pause)
            with contextlib.suppress(Exception):
                track.position = track.cursor = await asyncio.to_thread(rules.reset)
            return
        track.applied += len(mine)
        track.cursor = rules.applied
        track.position = rules.committed or 0
        track.state = "following" if end else "catching_up"
        track.backoff.reset()
        track.retry_at = 0.0
        track.last_error = None
        self._committed(RULES, track.position)

    async def _flush_rules(self) -> None:
        """At rest, save what the alarm rules hold in memory (their committed position
        then equals what they have applied)."""
        rules = self.rules
        if rules is None or not rules.dirty or rules.committed is None:
            return
        track = self.tracks[RULES]
        try:
            await asyncio.to_thread(rules.flush)
        except Exception as exc:
            log.warning("alarm rules could not save their state (%s); starting again", exc)
            track.position = track.cursor = await asyncio.to_thread(rules.reset)
            return
        track.position = rules.committed or 0
        self._committed(RULES, track.position)
        await self._notify_moved()

    def _committed(self, name: str, position: int) -> None:
        for listener in list(self.on_commit):
            try:
                listener(name, position)
            except Exception:
                log.exception("commit listener of %s failed", name)

    async def _notify_moved(self) -> None:
        async with self._moved:
            self._moved.notify_all()
