"""CPU seconds by process kind over a phase, and of the whole machine.

A `CpuAccount` is given, per kind (``"http"``, ``"pipeline"``, ``"postgres"``,
``"client"``...), the pids of the processes at the root of that kind. `sample` reads,
for each root, the CPU (user + system) of its whole process tree:

* the root's own CPU and what its finished children used (the kernel adds a child's CPU,
  with that of the descendants it waited for, to its parent when the parent reaps it:
  ``children_user``/``children_system``), and
* the same for every live descendant.

The sum only grows, so the difference of two samples is what the tree used in between,
counting processes started during the phase and those that ended (once reaped; the
PostgreSQL postmaster reaps its backends at once). Give PostgreSQL as its postmaster
(`postmaster_pid`): its backends come and go with connections.

A descendant that is itself the root of another kind is left to that kind, with its
subtree. Limits: a child of another kind that ended and was reaped by a root counts for
that root (the kernel no longer says whose it was); a process that ends between the
listing of a tree and the reading of its times may be missed once; a root that is gone
at either sample makes its kind's figure NaN (and the kind is in `CpuPhase.missing`):
short-lived processes, such as the `http` workers that exit when done, report their own
usage instead.

`CpuPhase` has the seconds per kind, the machine's busy CPU over the same time
(``psutil.cpu_times``: everything but idle and I/O wait) and what no kind accounts for
(`others_s`: other processes, interrupts, and this process unless it is a root).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def machine_busy_s() -> float:
    """CPU seconds all cores have been busy since boot (user, nice, system, irq,
    softirq, steal; guest time is already inside user)."""
    fields = psutil.cpu_times()._asdict()
    for name in ("idle", "iowait", "guest", "guest_nice"):
        fields.pop(name, None)
    return float(sum(fields.values()))


def _own(process: psutil.Process) -> float:
    t = process.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def tree_cpu_s(pid: int, exclude: Iterable[int] = ()) -> float | None:
    """CPU seconds of `pid`'s tree (see the module docstring), leaving out the subtrees
    of the pids in `exclude`; None when `pid` is gone."""
    try:
        root = psutil.Process(pid)
        total = _own(root)
        descendants = root.children(recursive=True)
    except _GONE:
        return None
    excluded = {p for p in exclude if p != pid}
    parents: dict[int, int] = {}
    for d in descendants:
        try:
            parents[d.pid] = d.ppid()
        except _GONE:
            continue
    for d in descendants:
        if d.pid not in parents or _under(d.pid, parents, excluded, pid):
            continue
        try:
            total += _own(d)
        except _GONE:
            continue
    return total


def _under(pid: int, parents: Mapping[int, int], excluded: set[int], root: int) -> bool:
    """True when `pid` or one of its ancestors below `root` is excluded."""
    current = pid
    while current != root:
        if current in excluded:
            return True
        parent = parents.get(current)
        if parent is None:
            return False
        current = parent
    return False


def postmaster_pid(data_dir: str | Path) -> int:
    """The postmaster's pid from ``postmaster.pid`` in a PostgreSQL data folder."""
    first = Path(data_dir, "postmaster.pid").read_text().split("\n", 1)[0]
    return int(first.strip())


def postmaster_of(backend_pid: int) -> int:
    """The postmaster of a backend (``SELECT pg_backend_pid()``): its parent process."""
    return int(psutil.Process(backend_pid).ppid())


@dataclass(frozen=True, slots=True)
class CpuSample:
    at: float
    kinds: dict[str, float]
    #: Kinds with a root that could not be read.
    missing: frozenset[str]
    machine_busy_s: float


@dataclass(frozen=True, slots=True)
class CpuPhase:
    """CPU used between two samples."""

    seconds: float
    kinds: dict[str, float]
    machine_busy_s: float
    missing: frozenset[str] = field(default_factory=frozenset)

    @property
    def accounted_s(self) -> float:
        """CPU of the kinds that could be read throughout."""
        return sum(v for v in self.kinds.values() if not math.isnan(v))

    @property
    def others_s(self) -> float:
        """Busy CPU of the machine that no kind accounts for (may be slightly negative:
        the two sources are read at slightly different moments)."""
        return self.machine_busy_s - self.accounted_s

    def cores(self, kind: str) -> float:
        """A kind's CPU as cores busy on average over the phase."""
        return self.kinds[kind] / self.seconds if self.seconds else float("nan")

    def us_per_event(self, kind: str, events: int) -> float:
        return self.kinds[kind] * 1e6 / events if events else float("nan")

    def as_json(self, events: int | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "seconds": self.seconds,
            "cpu_s": dict(self.kinds),
            "machine_busy_s": self.machine_busy_s,
            "machine_cores": psutil.cpu_count() or 1,
            "others_s": self.others_s,
            "missing": sorted(self.missing),
        }
        if events:
            body["us_per_event"] = {k: self.us_per_event(k, events) for k in self.kinds}
            body["us_per_event_machine"] = self.machine_busy_s * 1e6 / events
        return body


class CpuAccount:
    """CPU of process trees by kind: ``{"postgres": [postmaster], "http": [pid, ...]}``."""

    def __init__(self, kinds: Mapping[str, Iterable[int]]) -> None:
        self.kinds = {name: list(pids) for name, pids in kinds.items()}
        self._roots = {pid for pids in self.kinds.values() for pid in pids}

    def sample(self) -> CpuSample:
        values: dict[str, float] = {}
        missing: set[str] = set()
        for name, pids in self.kinds.items():
            total = 0.0
            for pid in pids:
                seconds = tree_cpu_s(pid, exclude=self._roots)
                if seconds is None:
                    missing.add(name)
                else:
                    total += seconds
            values[name] = total
        return CpuSample(time.monotonic(), values, frozenset(missing), machine_busy_s())

    @staticmethod
    def between(start: CpuSample, end: CpuSample) -> CpuPhase:
        """What was used from `start` to `end`; NaN for a kind with a root missing in
        either sample."""
        missing = start.missing | end.missing
        return CpuPhase(
            seconds=end.at - start.at,
            kinds={
                k: math.nan if k in missing else end.kinds[k] - start.kinds.get(k, 0.0)
                for k in end.kinds
            },
            machine_busy_s=end.machine_busy_s - start.machine_busy_s,
            missing=missing,
        )

    def phase(self) -> Phase:
        """``with account.phase() as p: ...``; then ``p.result`` is the `CpuPhase`."""
        return Phase(self)


class Phase:
    """A context manager sampling at entry and exit."""

    def __init__(self, account: CpuAccount) -> None:
        self.account = account
        self._start: CpuSample | None = None
        self.result: CpuPhase | None = None

    def __enter__(self) -> Phase:
        self._start = self.account.sample()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        self.result = CpuAccount.between(self._start, self.account.sample())
