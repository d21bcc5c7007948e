"""A live rate line on the terminal: how fast the server acknowledges what is sent.

On a terminal the line is rewritten in place (carriage return, erase to end of line)
twice a second; otherwise (a log file, a pipe) a new line is written every ten seconds.
`render` is pure, for tests and for the final summary.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final, TextIO

from ops_center.tools.sender import Tally

TTY_INTERVAL: Final = 0.5
LOG_INTERVAL: Final = 10.0
#: Seconds over which the current rate is measured.
WINDOW: Final = 3.0


def render(tally: Tally, *, now_rate: float, average: float, note: str = "") -> str:
    """``1,204/s now · 1,180/s avg · 70,800 acked (70,800 accepted, ...) · note``."""
    parts = [
        f"{now_rate:,.0f}/s now",
        f"{average:,.0f}/s avg",
        f"{tally.answered:,} answered ({tally.accepted:,} accepted, "
        f"{tally.duplicates:,} duplicates, {tally.rejected:,} rejected)",
    ]
    if tally.retries:
        parts.append(f"{tally.retries:,} retries")
    if note:
        parts.append(note)
    return " · ".join(parts)


class RateLine:
    """Shows the rate of a `Tally` on `stream` until stopped."""

    def __init__(
        self,
        tally: Tally,
        stream: TextIO,
        *,
        note: Callable[[], str] = lambda: "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tally = tally
        self.stream = stream
        self.note = note
        self.clock = clock
        self.tty = stream.isatty()
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def rates(self) -> tuple[float, float]:
        """(current rate over the last few seconds, average since the start)."""
        now, answered = self.clock(), self.tally.answered
        self._samples.append((now, answered))
        while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW:
            self._samples.popleft()
        since, before = self._samples[0]
        current = (answered - before) / (now - since) if now > since else 0.0
        elapsed = now - self.started
        return current, (answered / elapsed if elapsed > 0 else 0.0)

    def show(self) -> None:
        current, average = self.rates()
        text = render(self.tally, now_rate=current, average=average, note=self.note())
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the in-place line, so that other output starts on a clean line."""
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    async def run(self) -> None:
        """Show the line periodically until cancelled; ends the in-place line cleanly."""
        interval = TTY_INTERVAL if self.tty else LOG_INTERVAL
        try:
            while True:
                await asyncio.sleep(interval)
                self.show()
        finally:
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
