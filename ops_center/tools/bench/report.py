"""Helpers shared by the benchmarks: progress line, percentiles, tables, machine, CPU use.

Nothing here talks to the product: these are the measuring instruments. The progress
line goes to stderr (updated in place on a terminal, one line every few seconds
otherwise) so that stdout carries only the report.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import psutil  # type: ignore[import-untyped]

#: Seconds between progress updates on a terminal, and otherwise.
TTY_INTERVAL = 0.2
LOG_INTERVAL = 5.0


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between closest ranks.

    Returns NaN for an empty sequence. The values need not be sorted.
    """
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("a percentile is between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def thousands(value: float) -> str:
    """An integer with thousands separators: ``200,000``."""
    return f"{round(value):,}"


def rate(value: float) -> str:
    """A rate with thousands separators, or one decimal below 100."""
    if math.isnan(value):
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


class Progress:
    """A one-line progress display: done/total, average rate and the rate right now.

    `update` is cheap enough to call after every unit of work: it writes only when the
    display interval has passed. `finish` writes the final line and a newline.
    """

    def __init__(self, label: str, total: int, unit: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._interval = TTY_INTERVAL if self._tty else LOG_INTERVAL
        self._started = time.perf_counter()
        self._last_time = self._started
        self._last_done = 0
        self._next = self._started + self._interval
        self._width = 0

    def restart(self) -> None:
        """Start the clock again (call right before the measured work begins)."""
        self._started = self._last_time = time.perf_counter()
        self._last_done = 0
        self._next = self._started + self._interval

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now < self._next:
            return
        self._next = now + self._interval
        current = (done - self._last_done) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_done = now, done
        self._write(done, now, f" (now {rate(current)}/s)")

    def finish(self, done: int) -> None:
        self._write(done, time.perf_counter(), "", final=True)

    def _write(self, done: int, now: float, extra: str, *, final: bool = False) -> None:
        elapsed = now - self._started
        average = done / elapsed if elapsed > 0 else 0.0
        line = (
            f"  {self.label}: {thousands(done)}/{thousands(self.total)} {self.unit}"
            f"  {rate(average)} {self.unit}/s{extra}  {elapsed:.1f} s"
        )
        if self._tty:
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            self._stream.write("\r" + line + padding + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def note(message: str, *, stream: TextIO | None = None) -> None:
    """A line of narration on stderr (what the benchmark is doing now)."""
    out = stream if stream is not None else sys.stderr
    out.write(f"{message}\n")
    out.flush()


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A plain-text table; `align` has one letter per column, ``l`` or ``r`` (default r,
    the first column l)."""
    body = [list(row) for row in rows]
    columns = len(headers)
    aligns = align or ("l" + "r" * (columns - 1))
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.ljust(widths[i]) if aligns[i] == "l" else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in body)])


@dataclass(frozen=True, slots=True)
class Machine:
    """What the figures were measured on."""

    cpus: int
    cpu_model: str
    memory_gib: float
    system: str
    python: str
    load_average: tuple[float, float, float]

    def describe(self) -> str:
        load = ", ".join(f"{x:.2f}" for x in self.load_average)
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), {self.memory_gib:.1f} GiB RAM, "
            f"{self.system}, Python {self.python}; load average at start {load}"
        )


def describe_machine() -> Machine:
    """Cores, CPU model (from /proc/cpuinfo where available), memory and load average."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for raw in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = raw.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
                break
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover - not on POSIX
        load = (math.nan, math.nan, math.nan)
    return Machine(
        cpus=os.cpu_count() or 1,
        cpu_model=model,
        memory_gib=psutil.virtual_memory().total / 2**30,
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        load_average=(load[0], load[1], load[2]),
    )


def process_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (all its threads) that can be read.

    Processes that are gone or not ours to inspect are left out.
    """
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        seconds[pid] = float(times.user + times.system)
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have spent busy (not idle, not waiting on I/O)
    since boot, whoever used them."""
    times = psutil.cpu_times()
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return float(sum(times)) - idle


def cpu_delta(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds used between two `process_cpu_seconds` readings (new processes count
    fully; processes gone before the second reading are not counted)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def as_plain(value: Any) -> Any:
    """A JSON-ready copy: NaN and infinities become None, tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
