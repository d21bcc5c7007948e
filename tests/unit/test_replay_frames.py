"""Replay frames without a server: a fake history, a fast pacer; the outbox keeps replay
frames apart from live ones of the same topic."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams import topics
from streams.client import Screen
from streams.outbox import Frame, Outbox
from streams.pacing import Pacer
from streams.replay import Replay

T0 = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)


class FakeHistory:
    """Events at T0 + 10 s * i (i = 1..5) at position i; ``count`` is the position rounded
    down to even, so the odd events change nothing shown (and send no delta)."""

    def __init__(self) -> None:
        self.times = {i: T0 + timedelta(seconds=10 * i) for i in range(1, 6)}

    def at(self, moment: datetime) -> dict[str, Any]:
        position = max([i for i, t in self.times.items() if t <= moment], default=0)
        return {"position": position, "devices": {"count": position - position % 2}}

    async def replay_state(self, topic: str, scope: str | None, moment: datetime) -> Any:
        return self.at(moment)

    async def replay_step(self, topic: str, scope: str | None, after: int, moment: datetime) -> Any:
        state = self.at(moment)
        if state["position"] <= after:
            return None
        return self.times[state["position"]], state


async def test_frames_applied_equal_the_history_at_each_frame() -> None:
    history = FakeHistory()
    frames: list[Frame] = []
    done = asyncio.Event()

    def send(frame: Frame) -> None:
        frames.append(frame)
        if frame.op == "replay_end":
            done.set()

    pacer = Pacer(T0, T0 + timedelta(seconds=60), speed=1000, tick=0.002)
    replay = Replay(history, send, "overview", None, pacer)
    replay.start()
    await asyncio.wait_for(done.wait(), 5)
    screen = Screen()
    for frame in frames[:-1]:
        screen.handle(orjson.loads(frame.raw))
        moment = datetime.fromisoformat(screen.replay_time or "")
        assert screen.replay == history.at(moment)
    assert frames[-1].op == "replay_end"
    assert [f.op for f in frames] == ["snapshot", "delta", "delta", "replay_end"]
    assert screen.replay == {"position": 4, "devices": {"count": 4}}


def test_the_outbox_coalesces_replay_frames_apart_from_live_ones() -> None:
    outbox = Outbox(1)
    outbox.limit = 4
    live = Frame("snapshot", "overview", 10, {"position": 10, "a": 1}, epoch="e")
    past = Frame("snapshot", "overview", 3, {"position": 3, "a": 0}, time="t0", replay=True)
    later = Frame("delta", "overview", 5, {"position": 5, "a": 2}, time="t1", replay=True)
    live_delta = Frame("delta", "overview", 11, {"position": 11, "a": 5})
    for frame in (live, past, later, live_delta, Frame("replay_end", "overview", 5)):
        outbox.put(frame)
    outbox.put(Frame("delta", "overview", 12, {"position": 12, "a": 6}))
    waiting = list(outbox._frames)
    replayed = [f for f in waiting if f.replay]
    assert len(replayed) == 1
    assert replayed[0].op == "snapshot"
    assert replayed[0].data == topics.apply(topics.OVERVIEW, past.data or {}, later.data or {})
    assert b'"time":"t1"' in replayed[0].raw
    live_frames = [f for f in waiting if not f.replay and f.op != "replay_end"]
    assert [(f.op, f.position) for f in live_frames] == [("snapshot", 11), ("delta", 12)]
    assert live_frames[0].data == {"position": 11, "a": 5}
    assert b'"epoch":"e"' in live_frames[0].raw
    outbox.discard("overview")
    assert [f.replay for f in outbox._frames if f.op != "replay_end"] == [True]
    outbox.discard_replay()
    assert all(not f.replay for f in outbox._frames)
