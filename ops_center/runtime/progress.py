"""One progress display for long runs: how much is done of a total, how fast, how long left.

``Progress(total, out)``; ``show(done)`` after any amount of work (cheap: it writes only
when its interval has passed) and ``show(done, final=True)`` once at the end. On a
terminal the line is rewritten in place (carriage return, erase to the end of the line)
at most every `TTY_EVERY` seconds and ended by the final showing; elsewhere (a log file,
a pipe) a whole line is written at most every `LOG_EVERY` seconds, and the final one
always. With a total the line gives a bar, the share done, the count, the average rate,
the rate over the last `WINDOW` seconds, the time so far and the time left (ETA);
without one (``total=None``: open-ended runs such as the demo and the load generator) it
gives the rate now and on average, and `detail` says what the count is made of.
`follow` shows a count periodically from an asyncio task; `text` is the line itself,
for tests and final summaries. The clock is injectable; the default is monotonic time.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Final, TextIO

#: Seconds between two showings on a terminal, and elsewhere.
TTY_EVERY: Final = 0.25
LOG_EVERY: Final = 5.0
#: Seconds over which the rate "now" is measured.
WINDOW: Final = 3.0
#: Characters of the bar (when there is a total).
BAR: Final = 20


def rate_text(value: float) -> str:
    """A rate with thousands separators, or one decimal below 100 (``-`` if unknown)."""
    if math.isnan(value):
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def duration_text(seconds: float) -> str:
    """``0:42``, ``12:05`` or ``1:02:05`` (``-`` when not known)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A progress line on `out` (stderr by default); see the module."""

    def __init__(
        self,
        total: int | None = None,
        out: TextIO | None = None,
        *,
        label: str = "",
        unit: str = "events",
        detail: Callable[[int], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.out = out if out is not None else sys.stderr
        self.label = label
        self.unit = unit
        self.detail = detail
        self.clock = clock
        self.tty = self.out.isatty()
        self.every = TTY_EVERY if self.tty else LOG_EVERY
        self.restart()

    def restart(self) -> None:
        """Start the clock again (call right before the measured work begins)."""
        self.started = self.clock()
        self._due = self.started + self.every
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self._open = False  # an in-place line is on the terminal

    def rates(self, done: int) -> tuple[float, float]:
        """(the rate over the last `WINDOW` seconds, the average since the start)."""
        now = self.clock()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW:
            self._samples.popleft()
        since, before = self._samples[0]
        current = (done - before) / (now - since) if now > since else 0.0
        elapsed = now - self.started
        return current, (done / elapsed if elapsed > 0 else 0.0)

    def text(self, done: int) -> str:
        """The line for `done` now."""
        current, average = self.rates(done)
        elapsed = self.clock() - self.started
        head = f"{self.label}: " if self.label else ""
        what = self.detail(done) if self.detail is not None else f"{done:,} {self.unit}"
        if self.total is None:
            return (
                f"{head}{rate_text(current)}/s now · {rate_text(average)}/s avg · {what} · "
                f"{duration_text(elapsed)}"
            )
        share = min(done / self.total, 1.0) if self.total > 0 else 1.0
        filled = int(share * BAR)
        left = (self.total - done) / average if average > 0 else math.inf
        return (
            f"{head}[{'#' * filled}{'-' * (BAR - filled)}] {share:6.1%} "
            f"{done:,}/{self.total:,} {self.unit} · {rate_text(average)} {self.unit}/s "
            f"(now {rate_text(current)}/s) · {duration_text(elapsed)} · "
            f"ETA {duration_text(0.0 if done >= self.total else left)}"
        )

    def show(self, done: int, *, final: bool = False) -> None:
        """Show `done` if the interval has passed (always when `final`)."""
        now = self.clock()
        if not final and now < self._due:
            return
        self._due = now + self.every
        self._write(self.text(done), final=final)

    def clear(self) -> None:
        """Erase the in-place line, so that other output starts on a clean line."""
        if self.tty and self._open:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._open = False

    def end(self) -> None:
        """End the in-place line (a new line), if one is shown."""
        if self.tty and self._open:
            self.out.write("\n")
            self.out.flush()
            self._open = False

    async def follow(self, done: Callable[[], int]) -> None:
        """Show `done()` every interval until cancelled; then end the line."""
        try:
            while True:
                await asyncio.sleep(self.every)
                self._write(self.text(done()), final=False)
        finally:
            self.end()

    def _write(self, line: str, *, final: bool) -> None:
        if self.tty:
            self.out.write(f"\r{line}\x1b[K")
            self._open = True
            if final:
                self.end()
        else:
            self.out.write(line + "\n")
        self.out.flush()
