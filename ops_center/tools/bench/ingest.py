"""``ops-center bench ingest``: HTTP ingest beside the library used naively and raw COPY.

One run, one machine, one PostgreSQL server, one fresh database (``ops_bench_<hex>``,
dropped at the end), four measurements:

1. **HTTP batched**: ``POST /api/v1/events`` with ``application/cloudevents-batch+json``
   over several keep-alive connections, each sending its next batch when the previous
   one is acknowledged (acknowledgements are durable: the server answers after commit).
2. **HTTP single**: ``application/cloudevents+json``, one event per request, many
   clients with one request in flight each (closed loop); requests/s and latency.
3. **eventsourcing, naive**: an `Application` subclass with a small aggregate, loaded,
   changed and saved once per event (the library's documented pattern, no cache, no
   snapshots), in the same database under its own table (``naivebench_events``).
4. **PostgreSQL COPY**: the very rows the batched phase stored (id, version, topic,
   state bytes), copied with psycopg's binary ``COPY`` into a table with the events
   table's columns and indexes, in one transaction.

The server runs as a separate process (`ops_center.tools.bench.server`, i.e. ``ops-center
serve`` plus a statistics route) on a free port, so that the load generator (this
process, with a minimal HTTP client) does not share its event loop. Every request body is
built before the clock starts. The workload registers cameras and radio stations from the
demo profile first, then sends a realistic mix of status changes, alerts, broadcasts,
cluster faults and dossiers received and completed; every event must be accepted, and
the stored rows are counted at the end. Anything else stops the run with an error.

Also reported, per HTTP phase: CPU cores used by the client, the server and PostgreSQL
(CPU seconds / wall seconds; PostgreSQL only when it runs on this machine), and the
group-commit writer's transactions and busy share, to show where the limit is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from ops_center.embedded.postgres import free_port
from ops_center.province.profile import load_profile
from ops_center.settings import Settings
from ops_center.store.database import Database, DatabaseConfigError
from ops_center.store.recorder import RECEIPTS_TABLE
from ops_center.tools.bench import DEFAULT_DATA_DIR
from ops_center.tools.bench.client import Connection, HttpError, Reply, build_request
from ops_center.tools.bench.options import IngestOptions, options_from_args
from ops_center.tools.bench.report import (
    Machine,
    Progress,
    as_plain,
    cpu_delta,
    describe_machine,
    format_table,
    machine_busy_seconds,
    note,
    percentile,
    process_cpu_seconds,
    rate,
    thousands,
)
from ops_center.tools.bench.server import STATS_PATH
from ops_center.tools.bench.workload import CAMERA_SOURCES, MIX, VIETNAM, Workload, split

HOST: Final = "127.0.0.1"
EVENTS_TABLE: Final = "ops_events"
#: Stored topics of the alarm rules' events (``LIKE`` pattern): the server's own events,
#: not counted with the acknowledged ones.
ALARM_TOPICS: Final = "ops_center.domain.alarm:%"
COPY_TABLE: Final = "bench_copy"
KEY_NAME: Final = "bench-ingest"
KEY_SCOPES: Final = ("camera.*", "radio.*", "dossier.*")
BATCH: Final = "application/cloudevents-batch+json"
STRUCTURED: Final = "application/cloudevents+json"
SERVER_START_TIMEOUT: Final = 90.0
#: Cores used by other processes above which the report warns that figures are skewed.
BUSY_MACHINE_CORES: Final = 0.2

# Budgets from docs/DESIGN.md §4.
BATCHED_MIN_EVENTS_PER_S: Final = 20_000.0
BATCHED_MIN_COPY_RATIO: Final = 0.1
SINGLE_MIN_REQUESTS_PER_S: Final = 3_000.0
SINGLE_MAX_P99_MS: Final = 50.0


class BenchError(Exception):
    """The benchmark cannot go on (an event was refused, the server failed, ...)."""


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    """Request latencies (send to complete response), in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        mean = sum(ms) / len(ms) if ms else float("nan")
        return cls(
            percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), max(ms, default=0), mean
        )


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


@dataclass(frozen=True, slots=True)
class WriterUse:
    """The group-commit writer during a phase (from the server's counters)."""

    transactions: int
    events: int
    mean_events: float
    max_events: int
    commit_seconds: float
    #: Share of the phase's wall time during which a transaction was being recorded.
    busy: float


@dataclass(frozen=True, slots=True)
class HttpResult:
    label: str
    content_type: str
    connections: int
    events: int
    requests: int
    accepted: int
    seconds: float
    events_per_s: float
    requests_per_s: float
    latency: Latency
    cpu: CpuUse
    writer: WriterUse
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class BaselineResult:
    label: str
    count: int
    seconds: float
    per_s: float
    mean_bytes: float
    cpu: CpuUse


@dataclass(frozen=True, slots=True)
class Setup:
    database: str
    server_version: str
    fsync: str
    synchronous_commit: str
    scratch_database: str
    registrations: int
    registration_seconds: float
    generation_seconds: float
    stored_events: int
    stored_receipts: int
    total_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    target: str
    measured: str
    passed: bool


@dataclass(frozen=True, slots=True)
class IngestResults:
    """Everything one run measured (what ``--json`` writes)."""

    machine: Machine
    options: IngestOptions
    setup: Setup
    batched: HttpResult
    single: HttpResult
    naive: BaselineResult
    copy: BaselineResult
    ratios: dict[str, float]
    budgets: list[Budget]

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.budgets)

    def as_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = as_plain(asdict(self))
        plain["passed"] = self.passed
        return plain


@dataclass(slots=True)
class Plan:
    """The pre-built requests of one phase: a list of (request bytes, events) per lane."""

    label: str
    content_type: str
    lanes: list[list[tuple[bytes, int]]]

    @property
    def events(self) -> int:
        return sum(n for lane in self.lanes for _, n in lane)

    @property
    def requests(self) -> int:
        return sum(len(lane) for lane in self.lanes)


def batch_plan(
    label: str, lanes: Sequence[Sequence[dict[str, Any]]], size: int, port: int, token: str
) -> Plan:
    built: list[list[tuple[bytes, int]]] = []
    for events in lanes:
        requests = []
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            body = orjson.dumps(chunk)
            request = build_request(
                "POST", HOST, port, "/api/v1/events", token=token, content_type=BATCH, body=body
            )
            requests.append((request, len(chunk)))
        if requests:
            built.append(requests)
    return Plan(label, BATCH, built)


def single_plan(
    label: str, lanes: Sequence[Sequence[dict[str, Any]]], port: int, token: str
) -> Plan:
    built: list[list[tuple[bytes, int]]] = []
    for events in lanes:
        requests = [
            (
                build_request(
                    "POST",
                    HOST,
                    port,
                    "/api/v1/events",
                    token=token,
                    content_type=STRUCTURED,
                    body=orjson.dumps(e),
                ),
                1,
            )
            for e in events
        ]
        if requests:
            built.append(requests)
    return Plan(label, STRUCTURED, built)


# -- the server process ----------------------------------------------------------------


class BenchServer:
    """``python -m ops_center.tools.bench.server`` on a free port, logging to a file."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": self.database_url}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ops_center.tools.bench.server", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    async def wait_ready(self, token: str) -> None:
        """Wait until ``/healthz`` answers 200; raise `BenchError` if the server died."""
        assert self._process is not None
        request = build_request("GET", HOST, self.port, "/healthz", token=token)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BenchError(
                    f"the server exited with status {self._process.returncode}:\n{self.log_tail()}"
                )
            connection = Connection(HOST, self.port)
            try:
                reply = await connection.send(request)
            except HttpError:
                reply = None
            finally:
                await connection.close()
            if reply is not None and reply.status == 200:
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"the server did not start in {SERVER_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM: the writer commits what it holds), then SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


class Profiler:
    """py-spy recording the server process during one phase at a time (optional)."""

    SUFFIXES: Final = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}

    def __init__(self, directory: Path | None, fmt: str) -> None:
        self.directory = directory
        self.format = fmt
        self._process: subprocess.Popen[bytes] | None = None
        self._output: Path | None = None
        self.executable: str | None = None
        if directory is not None:
            beside = Path(sys.executable).parent / "py-spy"
            self.executable = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
            if self.executable is None:
                raise BenchError("--profile needs py-spy on PATH (pip install py-spy)")
            directory.mkdir(parents=True, exist_ok=True)

    def start(self, pid: int, phase: str) -> bool:
        """Start recording `pid`; False when profiling is off."""
        if self.directory is None or self.executable is None:
            return False
        self._output = self.directory / f"server-{phase}.{self.SUFFIXES[self.format]}"
        self._process = subprocess.Popen(
            [
                self.executable,
                "record",
                "--pid",
                str(pid),
                "--output",
                str(self._output),
                "--format",
                self.format,
                "--rate",
                "250",
                "--threads",
                "--idle",
                "--nonblocking",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return True

    def stop(self) -> str | None:
        process, self._process = self._process, None
        if process is None:
            return None
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return str(self._output) if self._output and self._output.exists() else None


# -- measuring -------------------------------------------------------------------------


def _check_reply(reply: Reply, expected: int, label: str) -> None:
    if reply.status != 200:
        raise BenchError(
            f"{label}: the server answered HTTP {reply.status}: "
            f"{reply.body[:1000].decode(errors='replace')}"
        )
    answer = orjson.loads(reply.body)
    if answer.get("accepted") != expected or answer.get("rejected") or answer.get("duplicates"):
        refused = [r for r in answer.get("results", []) if r.get("status") != "accepted"]
        raise BenchError(
            f"{label}: {answer.get('accepted')} of {expected} events accepted, "
            f"{answer.get('duplicates')} duplicates, {answer.get('rejected')} rejected; "
            f"first refused: {orjson.dumps(refused[:3]).decode()}"
        )


async def drive(plan: Plan, port: int, progress: Progress) -> tuple[float, list[float]]:
    """Send every lane of `plan` on its own connection; return seconds and latencies."""
    connections = [Connection(HOST, port) for _ in plan.lanes]
    latencies: list[float] = []
    done = 0

    async def lane(connection: Connection, requests: list[tuple[bytes, int]]) -> None:
        nonlocal done
        clock = time.perf_counter
        for request, count in requests:
            started = clock()
            reply = await connection.send(request)
            latencies.append(clock() - started)
            _check_reply(reply, count, plan.label)
            done += count
            progress.update(done)

    try:
        for connection in connections:
            await connection.open()
        progress.restart()
        started = time.perf_counter()
        try:
            async with asyncio.TaskGroup() as group:
                for connection, requests in zip(connections, plan.lanes, strict=True):
                    group.create_task(lane(connection, requests))
        except ExceptionGroup as failures:
            progress.finish(done)
            raise failures.exceptions[0] from None
        seconds = time.perf_counter() - started
        progress.finish(done)
    finally:
        for connection in connections:
            await connection.close()
    return seconds, latencies


class Monitor:
    """A connection to the benchmark database for counts, positions and backend pids."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        database = Database.parse(database_url)
        self.conn = psycopg.connect(database.conninfo, autocommit=True)
        host = database.get("host") or "localhost"
        self.local = host in ("127.0.0.1", "localhost", "::1") or host.startswith("/")

    def close(self) -> None:
        self.conn.close()

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


@dataclass(slots=True)
class CpuReading:
    wall: float
    client: float
    server: dict[int, float]
    postgres: dict[int, float] | None
    machine: float

    @classmethod
    def take(cls, server_pid: int | None, monitor: Monitor) -> CpuReading:
        pids = monitor.postgres_pids()
        return cls(
            time.perf_counter(),
            time.process_time(),
            process_cpu_seconds([server_pid]) if server_pid is not None else {},
            process_cpu_seconds(pids) if pids is not None else None,
            machine_busy_seconds(),
        )

    def since(self, before: CpuReading) -> CpuUse:
        wall = max(self.wall - before.wall, 1e-9)
        server = cpu_delta(before.server, self.server) / wall if self.server else None
        postgres = (
            cpu_delta(before.postgres, self.postgres) / wall
            if self.postgres is not None and before.postgres is not None
            else None
        )
        client = (self.client - before.client) / wall
        machine = (self.machine - before.machine) / wall
        other = max(0.0, machine - client - (server or 0.0) - (postgres or 0.0))
        return CpuUse(client, server, postgres, machine, other)


async def _writer_stats(port: int, token: str, since: int) -> dict[str, Any]:
    connection = Connection(HOST, port)
    try:
        reply = await connection.send(
            build_request("GET", HOST, port, f"{STATS_PATH}?since={since}", token=token)
        )
    finally:
        await connection.close()
    if reply.status != 200:
        raise BenchError(f"writer statistics: HTTP {reply.status}")
    stats: dict[str, Any] = orjson.loads(reply.body)
    return stats


async def measure(
    plan: Plan,
    server: BenchServer,
    token: str,
    monitor: Monitor,
    profiler: Profiler,
    phase: str,
) -> HttpResult:
    """Run one HTTP phase and gather its figures, CPU use and writer counters."""
    before_stats = await _writer_stats(server.port, token, since=0)
    if profiler.start(server.pid, phase):
        await asyncio.sleep(1.0)  # let py-spy attach before the clock starts
    unit = "events" if plan.content_type == BATCH else "requests"
    progress = Progress(plan.label, plan.events, unit)
    before = CpuReading.take(server.pid, monitor)
    seconds, latencies = await drive(plan, server.port, progress)
    after = CpuReading.take(server.pid, monitor)
    profile = profiler.stop()
    after_stats = await _writer_stats(server.port, token, since=int(before_stats["batches"]))
    sizes: list[int] = after_stats["batch_sizes"]
    transactions = int(after_stats["batches"]) - int(before_stats["batches"])
    written = int(after_stats["events"]) - int(before_stats["events"])
    commit = float(after_stats["commit_seconds"]) - float(before_stats["commit_seconds"])
    return HttpResult(
        label=plan.label,
        content_type=plan.content_type,
        connections=len(plan.lanes),
        events=plan.events,
        requests=plan.requests,
        accepted=plan.events,
        seconds=seconds,
        events_per_s=plan.events / seconds,
        requests_per_s=plan.requests / seconds,
        latency=Latency.of(latencies),
        cpu=after.since(before),
        writer=WriterUse(
            transactions=transactions,
            events=written,
            mean_events=written / transactions if transactions else 0.0,
            max_events=max(sizes, default=0),
            commit_seconds=commit,
            busy=commit / seconds,
        ),
        profile=profile,
    )


# -- baselines -------------------------------------------------------------------------


class BenchDevice(Aggregate):
    """The naive baseline's aggregate: a device with a status."""

    @event("Registered")
    def __init__(self, code: str, unit: str, meta: dict[str, str]) -> None:
        self.code = code
        self.unit = unit
        self.status: str | None = None

    @event("StatusReported")
    def report_status(self, status: str, meta: dict[str, str]) -> None:
        self.status = status


class NaiveBench(Application[UUID]):
    """The library used the obvious way (events table ``naivebench_events``)."""

    name = "NaiveBench"


def naive_env(database_url: str) -> dict[str, str]:
    """The library's PostgreSQL settings for this URL, everything else left at defaults."""
    database = Database.parse(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": database.dbname,
        "POSTGRES_HOST": database.get("host") or "127.0.0.1",
        "POSTGRES_PORT": database.get("port") or "5432",
        "POSTGRES_USER": database.get("user") or "postgres",
        "POSTGRES_PASSWORD": database.get("password") or "",
    }


def run_naive(database_url: str, count: int, monitor: Monitor, seed: int) -> BaselineResult:
    """Load, change and save one aggregate per event; a tenth of the events create one."""
    rng = random.Random(seed)
    devices = max(1, count // 10)
    clock = datetime.now(VIETNAM)
    metas = [
        {
            "source": rng.choice(CAMERA_SOURCES),
            "id": str(UUID(int=rng.getrandbits(128), version=4)),
            "time": (clock + timedelta(milliseconds=i)).isoformat(timespec="milliseconds"),
            "received_at": clock.isoformat(),
            "key": KEY_NAME,
        }
        for i in range(count)
    ]
    statuses = [rng.choice(("online", "offline", "degraded")) for _ in range(count)]
    app = NaiveBench(env=naive_env(database_url))
    try:
        ids: list[UUID] = []
        progress = Progress("eventsourcing naive", count, "events")
        before = CpuReading.take(None, monitor)
        started = time.perf_counter()
        for i in range(count):
            if i < devices:
                device = BenchDevice(code=f"CAM-{i:05d}", unit="MS", meta=metas[i])
                ids.append(device.id)
            else:
                device = app.repository.get(ids[i % devices])
                device.report_status(statuses[i], metas[i])
            app.save(device)
            progress.update(i + 1)
        seconds = time.perf_counter() - started
        cpu = CpuReading.take(None, monitor).since(before)
        progress.finish(count)
    finally:
        app.close()
    mean_bytes = float(
        monitor.scalar("SELECT coalesce(avg(length(state)), 0) FROM naivebench_events")
    )
    return BaselineResult("eventsourcing naive", count, seconds, count / seconds, mean_bytes, cpu)


def run_copy(monitor: Monitor, first: int, last: int) -> BaselineResult:
    """COPY the events stored between two positions into a table shaped like the log."""
    events = sql.Identifier(EVENTS_TABLE)
    table = sql.Identifier(COPY_TABLE)
    sequence = sql.Identifier(f"{COPY_TABLE}_notification_id_seq")
    with psycopg.connect(Database.parse(monitor.database_url).conninfo) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {} "
                "WHERE notification_id > %s AND notification_id <= %s AND topic NOT LIKE %s "
                "ORDER BY notification_id"
            ).format(events),
            (first, last, ALARM_TOPICS),
            binary=True,
        ).fetchall()
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(table, events))
        conn.execute(
            sql.SQL("CREATE SEQUENCE {} OWNED BY {}.notification_id").format(sequence, table)
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN notification_id SET DEFAULT nextval({})").format(
                table, sql.Literal(f"{COPY_TABLE}_notification_id_seq")
            )
        )
        conn.commit()
        progress = Progress("PostgreSQL COPY", len(rows), "rows")
        before = CpuReading.take(None, monitor)
        started = time.perf_counter()
        statement = sql.SQL(
            "COPY {} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(table)
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for i, row in enumerate(rows, start=1):
                copy.write_row(row)
                if not i % 1024:
                    progress.update(i)
        conn.commit()
        seconds = time.perf_counter() - started
        cpu = CpuReading.take(None, monitor).since(before)
        progress.finish(len(rows))
    copied = monitor.count(COPY_TABLE)
    if copied != len(rows):
        raise BenchError(f"COPY stored {copied} rows of {len(rows)}")
    mean_bytes = sum(len(r[3]) for r in rows) / len(rows) if rows else 0.0
    return BaselineResult(
        "PostgreSQL COPY", len(rows), seconds, len(rows) / seconds, mean_bytes, cpu
    )


# -- the run ---------------------------------------------------------------------------


def redact(url: str) -> str:
    """Where the URL connects, without its password."""
    return Database.parse(url).describe()


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new database ``ops_bench_<hex>`` on the server of `server_url`, dropped after."""
    try:
        server = Database.parse(server_url)
    except DatabaseConfigError as exc:
        raise BenchError(str(exc)) from None
    name = f"ops_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.with_dbname(name).url
    finally:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _lanes(workload: Workload, prefix: str, total: int, parts: int) -> list[list[dict[str, Any]]]:
    return [workload.lane(f"{prefix}{i}", n) for i, n in enumerate(split(total, parts)) if n]


@dataclass(slots=True)
class _Plans:
    registrations: Plan
    batched: Plan
    single: Plan


def _plans(options: IngestOptions, port: int, token: str) -> _Plans:
    """Every request of the run, built before any clock starts."""
    workload = Workload(
        load_profile(None), cameras=options.cameras, stations=options.stations, seed=options.seed
    )
    registrations = workload.registrations()
    # Registrations are spread over the connections too, but all are acknowledged before
    # the measured phases start: those refer to the registered devices.
    registration_lanes = [
        registrations[i :: options.connections]
        for i in range(min(options.connections, len(registrations)))
    ]
    return _Plans(
        registrations=batch_plan(
            "registering devices", registration_lanes, options.batch_size, port, token
        ),
        batched=batch_plan(
            f"HTTP batched ({options.batch_size}/request)",
            _lanes(workload, "b", options.events, options.connections),
            options.batch_size,
            port,
            token,
        ),
        single=single_plan(
            "HTTP single",
            _lanes(workload, "s", options.single_requests, options.single_clients),
            port,
            token,
        ),
    )


def run(options: IngestOptions, server_url: str, *, where: str) -> IngestResults:
    """Run the whole benchmark in a scratch database on the server of `server_url`.

    `where` says which server it is, for the report. Raises `BenchError` when an event is
    refused, the server fails, or the stored rows do not match what was acknowledged.
    """
    from ops_center.access.keystore import create_key

    machine = describe_machine()
    profiler = Profiler(options.profile_dir, options.profile_format)
    run_started = time.perf_counter()
    with scratch_database(server_url) as url:
        dbname = Database.parse(url).dbname
        note(f"ops-center bench ingest: scratch database {dbname} ({where})")
        token = create_key(url, KEY_NAME, "integration", scopes=KEY_SCOPES)
        log_dir = Path(tempfile.mkdtemp(prefix="ops-bench-"))
        server = BenchServer(url, log_dir / "server.log")
        server.start()
        note(f"  server pid {server.pid} on port {server.port}, log {server.log_path}")
        monitor = Monitor(url)
        failed = True
        try:
            started = time.perf_counter()
            plans = _plans(options, server.port, token)
            generation = time.perf_counter() - started
            generated = plans.batched.events + plans.single.events
            note(f"  {thousands(generated)} events generated in {generation:.1f} s")
            registration_seconds, batched, single, first, last = asyncio.run(
                _http_phases(server, token, monitor, profiler, plans)
            )
            server.stop()
            stored_events = monitor.count_ingested()
            stored_receipts = monitor.count(RECEIPTS_TABLE)
            expected = plans.registrations.events + batched.events + single.events
            if stored_events != expected or stored_receipts != expected:
                raise BenchError(
                    f"{expected} events were acknowledged but {stored_events} are stored "
                    f"with {stored_receipts} receipts"
                )
            naive = run_naive(url, options.naive_events, monitor, options.seed)
            copy = run_copy(monitor, first, last)
            version, fsync, synchronous_commit = monitor.conn.execute(
                "SELECT current_setting('server_version'), current_setting('fsync'), "
                "current_setting('synchronous_commit')"
            ).fetchone() or ("?", "?", "?")
            failed = False
        finally:
            profiler.stop()
            server.stop()
            monitor.close()
            if failed:
                note(f"\n  the server's log is kept in {server.log_path}; its tail:")
                note(server.log_tail())
            else:
                shutil.rmtree(log_dir, ignore_errors=True)
    setup = Setup(
        database=where,
        server_version=str(version),
        fsync=str(fsync),
        synchronous_commit=str(synchronous_commit),
        scratch_database=dbname,
        registrations=plans.registrations.events,
        registration_seconds=registration_seconds,
        generation_seconds=generation,
        stored_events=stored_events,
        stored_receipts=stored_receipts,
        total_seconds=time.perf_counter() - run_started,
    )
    return _results(machine, options, setup, batched, single, naive, copy)


async def _http_phases(
    server: BenchServer, token: str, monitor: Monitor, profiler: Profiler, plans: _Plans
) -> tuple[float, HttpResult, HttpResult, int, int]:
    """Registrations, then the two measured phases; also the batched phase's positions."""
    await server.wait_ready(token)
    progress = Progress(plans.registrations.label, plans.registrations.events, "events")
    registration_seconds, _ = await drive(plans.registrations, server.port, progress)
    first = monitor.position()
    batched = await measure(plans.batched, server, token, monitor, profiler, "batched")
    last = monitor.position()
    single = await measure(plans.single, server, token, monitor, profiler, "single")
    return registration_seconds, batched, single, first, last


def _results(
    machine: Machine,
    options: IngestOptions,
    setup: Setup,
    batched: HttpResult,
    single: HttpResult,
    naive: BaselineResult,
    copy: BaselineResult,
) -> IngestResults:
    to_naive = batched.events_per_s / naive.per_s
    to_copy = batched.events_per_s / copy.per_s
    budgets = [
        Budget(
            "HTTP batched, events/s",
            f">= {thousands(BATCHED_MIN_EVENTS_PER_S)}",
            thousands(batched.events_per_s),
            batched.events_per_s >= BATCHED_MIN_EVENTS_PER_S,
        ),
        Budget(
            "HTTP batched / COPY",
            f">= {BATCHED_MIN_COPY_RATIO:.2f}x",
            f"{to_copy:.3f}x",
            to_copy >= BATCHED_MIN_COPY_RATIO,
        ),
        Budget(
            "HTTP single, requests/s",
            f">= {thousands(SINGLE_MIN_REQUESTS_PER_S)}",
            thousands(single.requests_per_s),
            single.requests_per_s >= SINGLE_MIN_REQUESTS_PER_S,
        ),
        Budget(
            "HTTP single, p99 acknowledgement",
            f"< {SINGLE_MAX_P99_MS:.0f} ms",
            f"{single.latency.p99_ms:.1f} ms",
            single.latency.p99_ms < SINGLE_MAX_P99_MS,
        ),
    ]
    return IngestResults(
        machine=machine,
        options=options,
        setup=setup,
        batched=batched,
        single=single,
        naive=naive,
        copy=copy,
        ratios={"batched_to_naive": to_naive, "batched_to_copy": to_copy},
        budgets=budgets,
    )


# -- the report ------------------------------------------------------------------------


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(results: IngestResults) -> str:
    """The report printed at the end of a run."""
    r = results
    s = r.setup
    mix = ", ".join(f"{name} {weight}%" for name, weight in MIX)
    head = [
        "ops-center bench ingest",
        f"machine:   {r.machine.describe()}",
        f"database:  PostgreSQL {s.server_version}, {s.database}; fsync={s.fsync}, "
        f"synchronous_commit={s.synchronous_commit}; scratch database {s.scratch_database} "
        "(dropped)",
        f"workload:  {thousands(r.options.cameras)} cameras and {thousands(r.options.stations)} "
        f"radio stations registered first ({thousands(s.registrations)} events, "
        f"{s.registration_seconds:.1f} s), then: {mix}",
        f"checked:   every event accepted; {thousands(s.stored_events)} events and "
        f"{thousands(s.stored_receipts)} receipts stored; whole run {s.total_seconds:.0f} s",
    ]
    b, one, naive, copy = r.batched, r.single, r.naive, r.copy
    measurements = format_table(
        ["measurement", "count", "requests", "seconds", "rate", "p50 ms", "p99 ms", "bytes/ev"],
        [
            [
                f"HTTP batched ({r.options.batch_size}/request, {b.connections} connections)",
                thousands(b.events),
                thousands(b.requests),
                f"{b.seconds:.2f}",
                f"{rate(b.events_per_s)} events/s",
                f"{b.latency.p50_ms:.1f}",
                f"{b.latency.p99_ms:.1f}",
                "",
            ],
            [
                f"HTTP single ({one.connections} clients in flight)",
                thousands(one.events),
                thousands(one.requests),
                f"{one.seconds:.2f}",
                f"{rate(one.requests_per_s)} requests/s",
                f"{one.latency.p50_ms:.1f}",
                f"{one.latency.p99_ms:.1f}",
                "",
            ],
            [
                "eventsourcing naive (load + save per event)",
                thousands(naive.count),
                "",
                f"{naive.seconds:.2f}",
                f"{rate(naive.per_s)} events/s",
                "",
                "",
                f"{naive.mean_bytes:.0f}",
            ],
            [
                "PostgreSQL COPY binary (batched phase's rows)",
                thousands(copy.count),
                "",
                f"{copy.seconds:.2f}",
                f"{rate(copy.per_s)} rows/s",
                "",
                "",
                f"{copy.mean_bytes:.0f}",
            ],
        ],
    )
    ratios = format_table(
        ["ratio", "value"],
        [
            ["HTTP batched / eventsourcing naive", f"{r.ratios['batched_to_naive']:.1f}x"],
            ["HTTP batched / PostgreSQL COPY", f"{r.ratios['batched_to_copy']:.3f}x"],
        ],
    )
    budgets = format_table(
        ["budget", "target", "measured", "result"],
        [[x.name, x.target, x.measured, "PASS" if x.passed else "FAIL"] for x in r.budgets],
    )

    def per_event(cores: float | None, seconds: float, count: int) -> str:
        return "-" if cores is None else f"{cores * seconds / count * 1e6:.0f}"

    where = format_table(
        [
            "phase",
            "client",
            "server",
            "postgres",
            "others",
            "server us/ev",
            "pg us/ev",
            "transactions",
            "events/txn",
            "writer busy",
        ],
        [
            [
                h.label,
                _cores(h.cpu.client),
                _cores(h.cpu.server),
                _cores(h.cpu.postgres),
                _cores(h.cpu.other),
                per_event(h.cpu.server, h.seconds, h.events),
                per_event(h.cpu.postgres, h.seconds, h.events),
                thousands(h.writer.transactions),
                f"{h.writer.mean_events:.1f}",
                f"{h.writer.busy:.0%}",
            ]
            for h in (b, one)
        ]
        + [
            [
                x.label,
                _cores(x.cpu.client),
                "",
                _cores(x.cpu.postgres),
                _cores(x.cpu.other),
                "",
                per_event(x.cpu.postgres, x.seconds, x.count),
                "",
                "",
                "",
            ]
            for x in (naive, copy)
        ],
    )
    busy = [
        f"{x.label}: {x.cpu.other:.2f}"
        for x in (b, one, naive, copy)
        if x.cpu.other > BUSY_MACHINE_CORES
    ]
    warning = (
        [
            f"warning: other processes used part of this {r.machine.cpus}-CPU machine during "
            f"the run (cores on average: {'; '.join(busy)});\nthe figures are lower than a "
            "quiet machine would give"
        ]
        if busy
        else []
    )
    profiles = [f"server profile ({h.label}): {h.profile}" for h in (b, one) if h.profile]
    return "\n\n".join(
        [
            "\n".join(head),
            measurements,
            ratios,
            budgets,
            "where the time went: CPU cores busy on average (CPU seconds / wall seconds) in the\n"
            "client (this process), the server process, PostgreSQL (this database's backends and\n"
            "the server's background processes) and others (other processes, kernel threads); CPU\n"
            "time per event in microseconds; writer busy = share of the phase spent recording\n"
            "transactions\n" + where,
            *warning,
            *(["\n".join(profiles)] if profiles else []),
        ]
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench ingest``: run, print the report, write JSON if asked."""
    from ops_center.embedded.default import database_url

    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"ops-center bench ingest: {exc}", file=sys.stderr)
        return 2
    data_dir: Path = getattr(args, "data_dir", None) or DEFAULT_DATA_DIR
    settings = settings.replace(data_dir=data_dir)
    where = (
        f"DATABASE_URL {redact(settings.database_url)}"
        if settings.database_url
        else f"embedded in {data_dir}"
    )
    try:
        with database_url(settings) as server_url:
            results = run(options, server_url, where=where)
    except (BenchError, HttpError) as exc:
        print(f"\nops-center bench ingest: {exc}", file=sys.stderr)
        return 1
    print(format_report(results), flush=True)
    if options.json_path is not None:
        options.json_path.write_bytes(
            orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2) + b"\n"
        )
    return 1 if options.check and not results.passed else 0
