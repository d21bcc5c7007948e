"""Frames and the bounded, coalescing queue of one WebSocket connection.

A `Frame` is serialised once (orjson) and framed once (RFC 6455) the first time it is
sent, and the same object is shared by every connection it goes to. An `Outbox` holds a
connection's frames waiting to be sent; when it reaches its limit, the waiting frames of
each topic are coalesced into one (a snapshot followed by deltas becomes the snapshot
with the deltas applied; deltas become one merged delta), so a client that reads slowly
gets the latest state in few frames instead of an ever-growing queue, and never holds up
other connections. While nothing waits and the connection's write buffer is small, a
frame is written at once (`Outbox.write_now`), without waking the connection's writer
task: fanning a change out to thousands of screens costs one buffered socket write each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from functools import cached_property
from typing import Any, Final, Literal

import orjson

from streams import topics

# Limits
#: Error frames kept while a client does not read (older ones are dropped first).
MAX_ERRORS: Final = 8

Op = Literal["snapshot", "delta", "error", "replay_paused", "replay_end"]


class Frame:
    """One server-to-client message of docs/CONTRACT.md §6."""

    def __init__(
        self,
        op: Op,
        topic: str | None = None,
        position: int | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        self.op = op
        self.topic = topic
        self.position = position
        self.data = data
        self._fields = fields

    @classmethod
    def error(cls, code: str, detail: str, **fields: Any) -> Frame:
        return cls("error", code=code, detail=detail, **fields)

    @cached_property
    def raw(self) -> bytes:
        """The JSON text of the frame, serialised once."""
        body: dict[str, Any] = {"op": self.op}
        if self.topic is not None:
            body["topic"] = self.topic
        if self.position is not None:
            body["position"] = self.position
        body.update(self._fields)
        if self.data is not None:
            body["data"] = self.data
        return orjson.dumps(body)

    @cached_property
    def wire(self) -> bytes:
        """The frame as a WebSocket text frame from a server (RFC 6455: FIN, opcode 1,
        unmasked), built once and written as is to every connection."""
        size = len(self.raw)
        if size < 126:
            header = bytes((0x81, size))
        elif size < 1 << 16:
            header = bytes((0x81, 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x81, 127)) + size.to_bytes(8, "big")
        return header + self.raw

    @property
    def coalescible(self) -> bool:
        return self.op in ("snapshot", "delta") and self.topic is not None

    @property
    def replay(self) -> bool:
        """A frame of a replay (``"replay": true``), not of a live subscription."""
        return self._fields.get("replay") is True

    @property
    def stream(self) -> tuple[str | None, bool]:
        """What the frame's state belongs to: a topic's live subscription or its replay
        (the two are coalesced apart)."""
        return (self.topic, self.replay)

    def then(self, newer: Frame) -> Frame:
        """One frame with the effect of this one followed by `newer` (same stream); the
        newer frame's fields (a replay's ``time``) win."""
        if newer.op == "snapshot" or self.data is None or newer.data is None:
            return newer
        topic = topics.TOPICS[newer.topic or ""]
        if self.op == "snapshot":
            data = topics.apply(topic, self.data, newer.data)
            fields = {**self._fields, **newer._fields}
            return Frame("snapshot", newer.topic, newer.position, data, **fields)
        data = topics.merge(topic, self.data, newer.data)
        return Frame("delta", newer.topic, newer.position, data, **newer._fields)

    def __repr__(self) -> str:
        return f"Frame({self.op!r}, {self.topic!r}, {self.position!r})"


class Outbox:
    """The frames waiting to be sent on one connection: at most `limit` (at least 2 per
    topic plus `MAX_ERRORS`); see the module docstring."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 2 * len(topics.TOPICS) + MAX_ERRORS)
        #: Writes a frame at once when the connection can take it (False: it cannot);
        #: set by the web layer. Only used while nothing waits, so order is kept.
        self.write_now: Callable[[Frame], bool] | None = None
        self._frames: deque[Frame] = deque()
        self._ready = asyncio.Event()
        #: How many times the queue was coalesced (a measure of a client's slowness).
        self.coalesced = 0
        #: The most frames ever waiting at once.
        self.high_water = 0
        #: Error frames dropped while coalescing (only the latest `MAX_ERRORS` are kept).
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: Frame) -> None:
        if not self._frames and self.write_now is not None and self.write_now(frame):
            return
        if len(self._frames) >= self.limit:
            self._coalesce()
        self._frames.append(frame)
        self.high_water = max(self.high_water, len(self._frames))
        self._ready.set()

    def discard(self, topic: str) -> None:
        """Drop the waiting frames of a topic's live subscription (after an unsubscribe)."""
        self._frames = deque(
            f for f in self._frames if f.topic != topic or f.op == "error" or f.replay
        )

    def discard_replay(self) -> None:
        """Drop the waiting frames of a replay (replaced or stopped)."""
        self._frames = deque(f for f in self._frames if not f.replay)

    async def get(self) -> Frame:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def _coalesce(self) -> None:
        self.coalesced += 1
        merged: dict[object, Frame] = {}
        last: dict[object, int] = {}
        for index, frame in enumerate(self._frames):
            group: object = frame.stream if frame.coalescible else index
            previous = merged.get(group)
            merged[group] = frame if previous is None else previous.then(frame)
            last[group] = index
        ordered = [merged[g] for g in sorted(merged, key=last.__getitem__)]
        errors = [f for f in ordered if f.op == "error"]
        if len(errors) > MAX_ERRORS:
            dropped = {id(f) for f in errors[: len(errors) - MAX_ERRORS]}
            self.dropped += len(dropped)
            ordered = [f for f in ordered if id(f) not in dropped]
        self._frames = deque(ordered)
