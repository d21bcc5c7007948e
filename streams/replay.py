"""A replay of one topic's past on one connection (docs/CONTRACT.md §6, ``op: replay``).

The replay sends the topic's state as of `Pacer.start` (a snapshot), then on every tick of
its `Pacer` the state as of the last event recorded by the moment reached, as the delta
from the state sent before (`streams.topics.diff`; empty deltas are skipped). Every state
is read by the topic's own ``as_of`` reader (`History`), at the recorded time of that
event, and the frame carries that position and time: the frames applied by
`streams.topics.apply` are, by construction, what ``as_of=<time>`` answers at each frame's
position. The cost is one read per tick, however many events a tick covers.

Pause cancels the running step (nothing more is sent) and stops the clock; resume starts
it again; seek sends a fresh snapshot at the new moment. `replay_end` follows the step
that reaches `Pacer.end`. One replay per connection: a new one replaces the old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ops_center.province.calendar import iso
from streams import topics
from streams.outbox import Frame
from streams.pacing import Pacer

log = logging.getLogger(__name__)

Json = dict[str, Any]


class History(Protocol):
    """Reads a topic's past (`streams.sources.Source` does)."""

    async def replay_state(self, topic: str, scope: str | None, moment: datetime) -> Json:
        """The topic's state as of `moment` (with its ``position``)."""

    async def replay_step(
        self, topic: str, scope: str | None, after: int, moment: datetime
    ) -> tuple[datetime, Json] | None:
        """The recorded time of the last event by `moment` and the state as of then, or
        None when that event is not after position `after`."""


class Replay:
    """One connection's replay; `send` puts a frame in the connection's outbox."""

    def __init__(
        self,
        history: History,
        send: Callable[[Frame], None],
        topic: str,
        scope: str | None,
        pacer: Pacer,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.history = history
        self.send = send
        self.topic = topics.TOPICS[topic]
        self.scope = scope
        self.pacer = pacer
        self.clock = clock or asyncio.get_running_loop().time
        #: The state sent last (what the client holds), its position and time.
        self.state: Json | None = None
        self.position: int | None = None
        self.time: datetime | None = None
        self.ended = False
        self._task: asyncio.Task[None] | None = None

    # -- the client's ops -----------------------------------------------------------------

    def start(self) -> None:
        self._run(fresh=True, play=True)

    def pause(self) -> None:
        self._cancel()
        self.pacer.pause(self.clock())
        self._frame("replay_paused", at=self.pacer.moment(self.clock()))

    def resume(self) -> None:
        if self.ended or self.pacer.playing:
            return
        # paused before its snapshot was sent: the snapshot first
        self._run(fresh=self.state is None, play=True)

    def seek(self, at: datetime) -> None:
        self._cancel()
        self.ended = False
        playing = self.pacer.playing
        self.pacer.pause(self.clock())
        self.pacer.seek(at, self.clock())
        self._run(fresh=True, play=playing)

    def stop(self) -> None:
        self._cancel()
        self.pacer.pause(self.clock())

    # -- the loop ---------------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _run(self, fresh: bool, play: bool) -> None:
        self._cancel()
        self._task = asyncio.create_task(self._loop(fresh, play), name=f"replay:{self.topic.name}")

    async def _loop(self, fresh: bool, play: bool) -> None:
        """A snapshot at the (paused) pacer's moment when `fresh`, then, when `play`, the
        steps: the clock starts once the snapshot is sent, so the snapshot is exactly at
        the moment asked for and reading it takes no replay time."""
        try:
            if fresh:
                moment = self.pacer.moment(self.clock())
                data = await self.history.replay_state(self.topic.name, self.scope, moment)
                self.state, self.position, self.time = data, data["position"], moment
                self._frame("snapshot", data)
            if play:
                self.pacer.play(self.clock())
            while self.pacer.playing:
                moment = self.pacer.moment(self.clock())
                await self._step(moment)
                if moment >= self.pacer.end:
                    self.ended = True
                    self._frame("replay_end")
                    return
                await asyncio.sleep(self.pacer.wait(self.clock()) or 0.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("replay of %s failed: %s", self.topic.name, exc)
            self.pacer.pause(self.clock())
            self.send(
                Frame.error(
                    "replay_failed",
                    f"the replay of {self.topic.name} cannot be read now: {exc}",
                    topic=self.topic.name,
                )
            )

    async def _step(self, moment: datetime) -> None:
        assert self.state is not None
        assert self.position is not None
        found = await self.history.replay_step(self.topic.name, self.scope, self.position, moment)
        if found is None:
            return
        at, data = found
        if data["position"] <= self.position:
            return
        delta = topics.diff(self.topic, self.state, data)
        if not delta.keys() - {"position"}:
            return
        delta["position"] = data["position"]
        self.state, self.position, self.time = data, data["position"], at
        self._frame("delta", delta)

    def _frame(self, op: Any, data: Json | None = None, at: datetime | None = None) -> None:
        fields: Json = {"time": iso(at or self.time), "replay": True}
        if op == "replay_end":
            fields = {}
        self.send(Frame(op, self.topic.name, self.position, data, **fields))


def close(replay: Replay | None) -> None:
    """Stop a replay, if any (the connection closed or a new replay replaces it)."""
    if replay is not None:
        with contextlib.suppress(Exception):
            replay.stop()
