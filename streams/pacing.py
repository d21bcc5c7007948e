"""The clock of a replay: which moment of the past a replay shows at a given wall time.

A replay walks replay time from `Pacer.start` to `Pacer.end` at `Pacer.speed` times real
time. The pacer only does arithmetic on the wall times it is given (seconds of a monotonic
clock), so the pacing is tested with a fake clock and the I/O part (`streams.replay`) stays
a thin loop: ask `wait` how long to sleep, then show `moment`.

A pacer starts paused (its moment is `start`); `play` starts its clock, `pause` stops it
where it is, `seek` moves to another moment (playing on if it was playing). The moment never
passes `end`; `finished` says it reached it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

# Limits
#: Replay speeds accepted (times real time): from real time to an hour a second.
MIN_SPEED: Final = 1.0
MAX_SPEED: Final = 3600.0
#: Wall seconds between two steps of a playing replay: at most one delta frame a tick, so a
#: replay costs one read of the state a tick, however many events the step covers.
TICK: Final = 0.5


class Pacer:
    """Replay time from `start` to `end` at `speed` times real time; see the module
    docstring. Callers check `MIN_SPEED` <= `speed` <= `MAX_SPEED` and `start` <= `end`."""

    def __init__(self, start: datetime, end: datetime, speed: float, tick: float = TICK) -> None:
        if not start <= end:
            raise ValueError("a replay starts before it ends")
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}")
        self.start = start
        self.end = end
        self.speed = speed
        self.tick = tick
        #: The moment shown when the clock last started or stopped, and the wall time it
        #: started (None: paused).
        self._base = start
        self._since: float | None = None

    @property
    def playing(self) -> bool:
        return self._since is not None

    def moment(self, wall: float) -> datetime:
        """The moment of the past shown at wall time `wall` (never past `end`)."""
        if self._since is None:
            return self._base
        elapsed = max(0.0, wall - self._since) * self.speed
        if self._base + timedelta(seconds=elapsed) >= self.end:
            return self.end
        return self._base + timedelta(seconds=elapsed)

    def finished(self, wall: float) -> bool:
        return self.moment(wall) >= self.end

    def play(self, wall: float) -> None:
        """Start (or restart) the clock from the moment shown now."""
        if self._since is None:
            self._since = wall

    def pause(self, wall: float) -> None:
        """Stop the clock at the moment it shows at `wall`."""
        if self._since is not None:
            self._base = self.moment(wall)
            self._since = None

    def seek(self, at: datetime, wall: float) -> None:
        """Show `at` (kept within start..end) from `wall` on, playing on if playing."""
        self._base = min(max(at, self.start), self.end)
        if self._since is not None:
            self._since = wall

    def wait(self, wall: float) -> float | None:
        """Wall seconds until the next step: a `tick`, or less when `end` comes sooner;
        0 once finished; None while paused (no step is due)."""
        if self._since is None:
            return None
        left = (self.end - self.moment(wall)).total_seconds() / self.speed
        return max(0.0, min(self.tick, left))
