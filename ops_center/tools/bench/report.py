"""What the benchmarks' reports are made of: percentiles, numbers, tables, the machine,
budgets, narration.

Nothing here talks to the product. Narration (`note`) and progress
(`ops_center.runtime.progress`) go to stderr, so that stdout carries only the report.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
import psutil  # type: ignore[import-untyped]


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


@dataclass(frozen=True, slots=True)
class Budget:
    """A performance budget of docs/DESIGN.md §4 and whether the run met it."""

    name: str
    target: str
    measured: str
    passed: bool


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


class Judged:
    """What every benchmark's results share (mixed into their frozen dataclasses, which
    declare `budgets`): the run passed when every budget did; `as_json` for ``--json``."""

    __slots__ = ()
    budgets: list[Budget]

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.budgets)

    def as_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = as_plain(asdict(self))  # type: ignore[call-overload]
        plain["passed"] = self.passed
        return plain


def publish(results: Judged, report: str, json_path: Path | None, check: bool) -> int:
    """The end of every benchmark: `report` on stdout, `results` as JSON at `json_path`
    when asked; the exit status (1 when `check` is on and a budget was missed)."""
    print(report, flush=True)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
    return 1 if check and not results.passed else 0
