"""Pauses that grow after each failure: the one backoff of every retry loop.

`Backoff.next()` gives the pause to take now (`first`, then doubling, capped at
`largest`); `reset()` after a success starts again from `first`; `sleep()` takes the next
pause (at most `cap` seconds when given, e.g. the time left before a deadline).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """A capped exponential backoff (see the module docstring)."""

    first: float
    largest: float
    factor: float = 2.0
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.largest:
            raise ValueError("a backoff needs 0 < first <= largest")
        self._next = self.first

    def next(self) -> float:
        """The pause to take now; the following one is `factor` times longer (capped)."""
        pause = self._next
        self._next = min(pause * self.factor, self.largest)
        return pause

    def peek(self) -> float:
        """The pause `next` would give, without moving on."""
        return self._next

    def reset(self) -> None:
        """Start again from `first` (after a success)."""
        self._next = self.first

    async def sleep(self, cap: float | None = None) -> float:
        """Sleep for the next pause (no longer than `cap`); the seconds slept."""
        pause = self.next() if cap is None else min(self.next(), cap)
        await asyncio.sleep(pause)
        return pause
