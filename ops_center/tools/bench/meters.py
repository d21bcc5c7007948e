"""The benchmarks' instruments: counts and positions in the database, CPU time by process.

* `Monitor`: a connection to the benchmark's database for counts, positions and the pids
  of PostgreSQL's processes serving it;
* `CpuReading` (``take``, then ``since``): CPU cores busy in a phase in this process
  (the client), the server process, PostgreSQL and the rest of the machine;
* `CpuMeter` (a context manager): the same for phases run in this process alone, with
  PostgreSQL's processes sampled in a thread (`PostgresCpu`: backends come and go, so one
  reading at each end would miss some);
* `catch_up`: wait until the pipeline (every projection and the alarm rules) applied a
  position; `LagSampler`: how far behind the log it was during a phase, sampled in a
  thread;
* `ProcessMemory` (`process_memory`, `reset_peaks`): resident memory of processes now and
  at their peak since the last reset.

CPU use is CPU seconds / wall seconds, i.e. average cores busy.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil  # type: ignore[import-untyped]
import psycopg
from psycopg import sql

from ops_center.store.database import Database
from ops_center.tools.bench.harness import BenchError
from ops_center.tools.bench.report import percentile

EVENTS_TABLE: Final = "ops_events"
#: Stored topics of the alarm rules' events (``LIKE`` pattern): the server's own events,
#: not counted with the acknowledged ones.
ALARM_TOPICS: Final = "ops_center.domain.alarm:%"
#: Seconds between samples of the CPU time of PostgreSQL's processes.
CPU_SAMPLE: Final = 0.25
#: Seconds between samples of the pipeline's lag.
LAG_SAMPLE: Final = 0.1
#: Most seconds the pipeline may take to catch up with a phase's events.
CATCH_UP_TIMEOUT: Final = 600.0


def is_local(database: Database) -> bool:
    """Whether the server of `database` runs on this machine (its processes can be read)."""
    host = database.get("host") or "localhost"
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("/")


class Monitor:
    """A connection to the benchmark database for counts, positions and backend pids."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        database = Database.parse(database_url)
        self.conn = psycopg.connect(database.conninfo, autocommit=True)
        self.local = is_local(database)

    def close(self) -> None:
        self.conn.close()

    def server_settings(self) -> tuple[str, str, str]:
        """The server's version and its ``fsync`` and ``synchronous_commit`` settings."""
        row = self.conn.execute(
            "SELECT current_setting('server_version'), current_setting('fsync'), "
            "current_setting('synchronous_commit')"
        ).fetchone()
        return (str(row[0]), str(row[1]), str(row[2])) if row else ("?", "?", "?")

    def scalar(self, query: sql.Composed | str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def position(self) -> int:
        return int(
            self.scalar(
                sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(
                    sql.Identifier(EVENTS_TABLE)
                )
            )
        )

    def slowest_follower(self) -> int:
        """The position of the projection or alarm-rules runner furthest behind."""
        return int(
            self.scalar(
                "SELECT least((SELECT min(position) FROM projection_positions), "
                "(SELECT min(position) FROM alarm_rules_position))"
            )
            or 0
        )

    def count(self, table: str) -> int:
        return int(self.scalar(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))))

    def count_ingested(self) -> int:
        """Events in the log that came from ingest (not the alarm rules' own events)."""
        return int(
            self.scalar(
                sql.SQL("SELECT count(*) FROM {} WHERE topic NOT LIKE %s").format(
                    sql.Identifier(EVENTS_TABLE)
                ),
                (ALARM_TOPICS,),
            )
        )

    def postgres_pids(self) -> list[int] | None:
        """Backends of this database and the server's background processes (local only)."""
        if not self.local:
            return None
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL"
        ).fetchall()
        return [int(r[0]) for r in rows]


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


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Average CPU cores busy during a phase (CPU seconds / wall seconds)."""

    client: float
    server: float | None
    postgres: float | None
    #: Every core of the machine, whoever used it.
    machine: float
    #: Cores used by other processes (other work on the machine skews the figures).
    other: float
    #: The wall seconds the averages are over.
    wall: float = 0.0
    #: The server's share by process role (``http``, ``pipeline``, ``supervisor``; the
    #: one-process server: ``server``), in cores.
    roles: dict[str, float] = field(default_factory=dict)

    def per_event_us(self, cores: float | None, count: int) -> float | None:
        """CPU microseconds per event (or request) of `cores` over this phase."""
        return None if cores is None or not count else cores * self.wall / count * 1e6


@dataclass(slots=True)
class CpuReading:
    wall: float
    client: float
    server: dict[str, dict[int, float]]
    postgres: dict[int, float] | None
    machine: float

    @classmethod
    def take(cls, roles: Mapping[str, Iterable[int]] | None, monitor: Monitor) -> CpuReading:
        """Now: this process, the server's processes by role (`roles`; None: no server),
        this database's PostgreSQL processes, the machine."""
        pids = monitor.postgres_pids()
        return cls(
            time.perf_counter(),
            time.process_time(),
            {role: process_cpu_seconds(p) for role, p in (roles or {}).items()},
            process_cpu_seconds(pids) if pids is not None else None,
            machine_busy_seconds(),
        )

    def since(self, before: CpuReading) -> CpuUse:
        wall = max(self.wall - before.wall, 1e-9)
        roles = {
            role: cpu_delta(before.server.get(role, {}), seconds) / wall
            for role, seconds in self.server.items()
        }
        server = sum(roles.values()) if roles else None
        postgres = (
            cpu_delta(before.postgres, self.postgres) / wall
            if self.postgres is not None and before.postgres is not None
            else None
        )
        client = (self.client - before.client) / wall
        machine = (self.machine - before.machine) / wall
        other = max(0.0, machine - client - (server or 0.0) - (postgres or 0.0))
        return CpuUse(client, server, postgres, machine, other, wall, roles)


class PostgresCpu:
    """CPU seconds of every PostgreSQL process on this machine, or of one server's
    (`postmaster`: its pid; its backends and background processes are its children),
    sampled in a thread (backends come and go, so one reading at each end would miss
    some)."""

    def __init__(self, postmaster: int | None = None) -> None:
        self.postmaster = postmaster
        self._seen: dict[int, tuple[float, float]] = {}  # pid -> (first, last) CPU seconds
        #: CPU seconds of the sampling thread itself (known once it stopped): reading every
        #: process's times costs this process CPU that is not the work measured.
        self.own = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PostgresCpu:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(CPU_SAMPLE):
            self._sample()
        self.own = time.thread_time() - started

    def _processes(self) -> Iterable[Any]:
        if self.postmaster is None:
            return (
                p
                for p in psutil.process_iter(["name"])
                if (p.info["name"] or "").startswith("postgres")
            )
        try:
            server = psutil.Process(self.postmaster)
            return [server, *server.children()]
        except psutil.Error:
            return []

    def _sample(self) -> None:
        for process in self._processes():
            try:
                times = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            used = float(times.user + times.system)
            first = self._seen.get(process.pid, (used, used))[0]
            self._seen[process.pid] = (first, used)

    def seconds(self) -> float:
        return sum(last - first for first, last in self._seen.values())


@dataclass(frozen=True, slots=True)
class LocalCpu:
    """Average cores busy during a phase run in this process (no server process)."""

    client: float
    postgres: float
    #: Cores used by other processes (other work on the machine skews the figures).
    other: float


def postmaster_of(database_url: str) -> int | None:
    """The pid of the PostgreSQL server of `database_url` when it runs on this machine
    (the parent of a backend), else None."""
    database = Database.parse(database_url)
    if not is_local(database):
        return None
    with psycopg.connect(database.conninfo) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        return int(psutil.Process(int(row[0])).ppid()) if row else None
    except psutil.Error:
        return None


class CpuMeter:
    """This process, PostgreSQL and the whole machine over one phase (`use` after it).
    `postmaster`: count only that PostgreSQL server's processes (`postmaster_of`)."""

    def __init__(self, postmaster: int | None = None) -> None:
        self.postmaster = postmaster

    def __enter__(self) -> CpuMeter:
        self._postgres = PostgresCpu(self.postmaster).__enter__()
        self._wall = time.perf_counter()
        self._client = time.process_time()
        self._machine = machine_busy_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        self._postgres.__exit__()
        client = (time.process_time() - self._client - self._postgres.own) / wall
        machine = (machine_busy_seconds() - self._machine) / wall
        postgres = self._postgres.seconds() / wall
        self.use = LocalCpu(client, postgres, max(0.0, machine - client - postgres))


async def catch_up(monitor: Monitor, position: int) -> float:
    """Seconds until every projection and the alarm rules have applied `position`."""
    started = time.perf_counter()
    deadline = started + CATCH_UP_TIMEOUT
    while (behind := monitor.slowest_follower()) < position:
        if time.perf_counter() > deadline:
            raise BenchError(
                f"the pipeline is still at position {behind:,} of {position:,} after "
                f"{CATCH_UP_TIMEOUT:.0f} s"
            )
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Lag:
    """How far the pipeline's slowest follower was behind the log during a phase: in
    events (the log's last position minus the follower's), and in milliseconds (how long
    the oldest acknowledged event it had not applied had been acknowledged)."""

    samples: int
    p50_events: float
    p99_events: float
    max_events: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class LagSampler:
    """The log's position and the slowest follower's, every `LAG_SAMPLE` seconds in a
    thread with a connection of its own (``with LagSampler(url) as lag: ...``; then
    `lag.figures(positions, ack_ns)`)."""

    def __init__(self, database_url: str) -> None:
        self._monitor = Monitor(database_url)
        #: (monotonic_ns, log position, slowest follower) per sample.
        self.samples: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._monitor.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self._monitor.conn.execute(
                sql.SQL(
                    "SELECT (SELECT coalesce(max(notification_id), 0) FROM {}), least("
                    "(SELECT min(position) FROM projection_positions), "
                    "(SELECT min(position) FROM alarm_rules_position))"
                ).format(sql.Identifier(EVENTS_TABLE))
            ).fetchone()
            if row is not None:
                self.samples.append((time.monotonic_ns(), int(row[0]), int(row[1] or 0)))
            self._stop.wait(LAG_SAMPLE)

    def figures(self, positions: Sequence[int], ack_ns: Sequence[int]) -> Lag:
        """The lag's distribution; `positions` (sorted) and `ack_ns`: when each
        acknowledged position was acknowledged (``monotonic_ns``)."""
        events: list[float] = []
        waited: list[float] = []
        for at, head, follower in self.samples:
            events.append(float(max(0, head - follower)))
            i = bisect.bisect_right(positions, follower)
            acked = ack_ns[i] if i < len(positions) and follower < head else at
            waited.append(max(0, at - acked) / 1e6)
        return Lag(
            samples=len(self.samples),
            p50_events=percentile(events, 50),
            p99_events=percentile(events, 99),
            max_events=int(max(events, default=0)),
            p50_ms=percentile(waited, 50),
            p99_ms=percentile(waited, 99),
            max_ms=max(waited, default=float("nan")),
        )


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """One process's resident memory (MB): now, and at its peak since `reset_peaks`."""

    role: str
    pid: int
    name: str
    rss_mb: float
    peak_mb: float


def process_memory(roles: Mapping[str, Iterable[int]]) -> list[ProcessMemory]:
    """Resident memory of each process of `roles` that can still be read (VmRSS, VmHWM)."""
    found = []
    for role, pids in roles.items():
        for pid in pids:
            values: dict[str, float] = {}
            try:
                name = psutil.Process(pid).name()
                status = Path(f"/proc/{pid}/status").read_text()
            except (OSError, psutil.Error):
                continue
            for line in status.splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
            rss = values.get("VmRSS", float("nan"))
            found.append(ProcessMemory(role, pid, name, rss, values.get("VmHWM", rss)))
    return found


def reset_peaks(pids: Iterable[int]) -> None:
    """Start each process's peak resident memory again from now (``clear_refs`` 5; a
    process that cannot be reset keeps its peak since it started)."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            continue
