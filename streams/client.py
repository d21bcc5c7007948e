"""The client side of ``/ws``: what a screen holds, frame after frame (no I/O).

`Screen.handle` takes each server frame (decoded JSON) and keeps, per topic, the state
(the snapshot with every delta applied, by the rules of `streams.topics`) and its
position. It checks docs/CONTRACT.md §6 as it goes: a delta needs a snapshot before it and a
position greater than the state's. `ops-center watch` and the tests use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams import topics


class ProtocolViolation(AssertionError):
    """A frame the contract does not allow here."""


@dataclass
class Screen:
    """The states of a client's subscriptions, built from the frames it received."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    #: Every frame received, in order, and the error frames among them.
    frames: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, int] = field(default_factory=dict)
    deltas: dict[str, int] = field(default_factory=dict)
    #: The replay's state, position and time (frames with ``"replay": true``), apart from
    #: the live states; `replay_frames` are its snapshots and deltas, `replay_ended` its
    #: ``replay_end`` frames.
    replay: dict[str, Any] | None = None
    replay_position: int | None = None
    replay_time: str | None = None
    replay_frames: list[dict[str, Any]] = field(default_factory=list)
    replay_ended: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, frame: dict[str, Any]) -> None:
        """Apply one frame; ProtocolViolation when it breaks the contract."""
        self.frames.append(frame)
        op = frame.get("op")
        if op == "error":
            self.errors.append(frame)
            return
        name = frame.get("topic")
        if name not in topics.TOPICS:
            raise ProtocolViolation(f"frame of unknown topic: {frame!r}")
        if op in ("replay_end", "replay_paused") or frame.get("replay") is True:
            self._replay(name, frame)
            return
        position = frame["position"]
        if op == "snapshot":
            self.states[name] = frame["data"]
            self.positions[name] = position
            self.snapshots[name] = self.snapshots.get(name, 0) + 1
        elif op == "delta":
            if name not in self.states:
                raise ProtocolViolation(f"delta before any snapshot: {frame!r}")
            if position <= self.positions[name]:
                raise ProtocolViolation(
                    f"delta at position {position} after position {self.positions[name]}"
                )
            self.states[name] = topics.apply(topics.TOPICS[name], self.states[name], frame["data"])
            self.positions[name] = position
            self.deltas[name] = self.deltas.get(name, 0) + 1
        else:
            raise ProtocolViolation(f"unknown op: {frame!r}")

    def _replay(self, name: str, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "replay_end":
            self.replay_ended.append(frame)
            return
        if op == "replay_paused":
            return
        position = frame["position"]
        if op == "snapshot":
            self.replay = frame["data"]
        elif op == "delta":
            if self.replay is None or self.replay_position is None:
                raise ProtocolViolation(f"replay delta before its snapshot: {frame!r}")
            if position <= self.replay_position:
                raise ProtocolViolation(
                    f"replay delta at position {position} after {self.replay_position}"
                )
            self.replay = topics.apply(topics.TOPICS[name], self.replay, frame["data"])
        else:
            raise ProtocolViolation(f"unknown op: {frame!r}")
        self.replay_position = position
        self.replay_time = frame["time"]
        self.replay_frames.append(frame)

    def forget(self, name: str) -> None:
        """Drop a topic's state (after unsubscribing)."""
        self.states.pop(name, None)
        self.positions.pop(name, None)
