"""``ops-center bench projections``: projection rebuild and leaders' queries at scale.

One run, one machine, one PostgreSQL server, one fresh database (``ops_bench_<hex>``,
dropped at the end):

1. **Fill**: N synthetic events (`ops_center.tools.bench.logfill.synthetic`: device status, alerts,
   broadcasts, cluster faults, dossiers, KPI reports) are recorded exactly as ingest would
   record them, only faster: the same validation (`ops_center.tools.testing.submissions`), the
   same decisions (`ops_center.ingest.decisions.decide`) and the application's own mapper make
   the stored events, which are then COPYed into ``ops_events`` and ``ingest_receipts`` in
   position order (`LogFiller`; tests compare it with `OpsCenter.ingest`).
2. **Rebuild**: the rate (log events per second) of rebuilding all projections together,
   and each alone, beside the baseline of reading the same log with a plain asyncpg
   ``SELECT ... ORDER BY notification_id`` scan.
3. **Queries**: p50/p99 of every leaders' query (the `projections.read` functions that the
   HTTP routes call, in the same read-only REPEATABLE READ transaction, answers encoded as
   JSON), beside the baseline of a ``SELECT 1`` round trip in the same transaction shape.

Budgets (docs/DESIGN.md §4): rebuild at least 50,000 events/s for all
projections together; every query p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson
import psutil  # type: ignore[import-untyped]
import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from psycopg import sql

from ops_center.domain.errors import Rejection
from ops_center.ingest.decisions import aggregate_id, decide
from ops_center.province.profile import Profile, load_profile
from ops_center.settings import Settings
from ops_center.store.application import OpsCenter
from ops_center.store.database import Database
from ops_center.store.recorder import RECEIPTS_TABLE, Receipt
from ops_center.tools.bench import (
    DEFAULT_DATA_DIR,
    PROJECTIONS_EVENTS,
    PROJECTIONS_ROUNDS,
    PROJECTIONS_SEED,
)
from ops_center.tools.bench.ingest import (
    BenchError,
    Budget,
    redact,
    scratch_database,
)
from ops_center.tools.bench.report import (
    Machine,
    Progress,
    as_plain,
    describe_machine,
    format_table,
    machine_busy_seconds,
    note,
    percentile,
    rate,
    thousands,
)

EVENTS_TABLE: Final = "ops_events"
#: Events validated and decided per COPY.
FILL_BATCH: Final = 5_000
#: Aggregates kept in memory while filling (others are loaded from the store again).
FILL_CACHE: Final = 300_000
#: Rows per fetch of the baseline scan.
SCAN_PREFETCH: Final = 10_000
#: Untimed runs of each query before its timed rounds.
WARMUP: Final = 5
#: Seconds between samples of the CPU time of PostgreSQL's processes.
CPU_SAMPLE: Final = 0.25

# Budgets from docs/DESIGN.md §4.
REBUILD_MIN_EVENTS_PER_S: Final = 50_000.0
QUERY_MAX_P99_MS: Final = 20.0


@dataclass(frozen=True, slots=True)
class ProjectionsOptions:
    """What to measure; the defaults are the documented benchmark."""

    events: int = PROJECTIONS_EVENTS
    rounds: int = PROJECTIONS_ROUNDS
    seed: int = PROJECTIONS_SEED
    json_path: Path | None = None
    check: bool = False

    def __post_init__(self) -> None:
        if self.events < 1_000:
            raise ValueError("--events must be at least 1,000")
        if self.rounds < 1:
            raise ValueError("--rounds must be at least 1")


# -- filling the log -------------------------------------------------------------------


class LogFiller:
    """Records CloudEvents as `OpsCenter.ingest` does, in bulk, into an empty store.

    Every event goes through the same validation, decision and mapping as ingest, so the
    stored rows are those ingest would store (bar the recording times); they are written
    with binary COPY, one COPY per `FILL_BATCH` events, instead of one transaction per
    batch with receipt look-ups. Events that ingest would reject are left out and
    counted. Aggregates stay in memory (bounded, like the application's cache); one that
    fell out is reloaded from the store after the pending rows are written.
    """

    def __init__(
        self, database_url: str, profile: Profile | None = None, *, key: str = "bench"
    ) -> None:
        self.app = OpsCenter(database_url)  # creates the events and receipts tables
        self.profile = profile or load_profile()
        self.key = key
        self.conn = psycopg.connect(Database.parse(database_url).conninfo)
        self.cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self.known: set[UUID] = set()
        self.events: list[tuple[Any, int, str, bytes]] = []
        self.receipts: list[Receipt] = []
        self.stored = 0
        self.rejected = 0

    def close(self) -> None:
        self.conn.close()
        self.app.close()

    def __enter__(self) -> LogFiller:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def record(self, raws: Iterable[dict[str, Any]]) -> int:
        """Validate, decide and buffer these CloudEvents; write when enough are pending.
        Returns how many were accepted."""
        from ops_center.tools.testing import submissions

        accepted = 0
        mapper = self.app.mapper
        for sub in submissions(list(raws), self.profile, key=self.key):
            agg_id = aggregate_id(sub.kind, sub.event.subject)
            current = self._load(agg_id)
            try:
                aggregate = decide(sub.kind, current, sub.event.subject, sub.data, sub.meta)
            except Rejection:
                self.rejected += 1
                continue
            (new_event,) = aggregate.collect_events()
            stored = mapper.to_stored_event(new_event)
            self.events.append(
                (stored.originator_id, stored.originator_version, stored.topic, stored.state)
            )
            self.receipts.append(
                Receipt(
                    sub.event.source,
                    sub.event.id,
                    sub.event.digest,
                    aggregate.id,
                    new_event.originator_version,
                )
            )
            self._remember(aggregate)
            accepted += 1
        if len(self.events) >= FILL_BATCH:
            self.flush()
        return accepted

    def flush(self) -> None:
        """COPY the pending events (in decision order: their positions) and receipts."""
        if not self.events:
            return
        with self.conn.cursor() as cursor:
            statement = sql.SQL(
                "COPY {} (originator_id, originator_version, topic, state) "
                "FROM STDIN (FORMAT BINARY)"
            ).format(sql.Identifier(EVENTS_TABLE))
            with cursor.copy(statement) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for row in self.events:
                    copy.write_row(row)
            statement = sql.SQL(
                "COPY {} (source, event_id, digest, originator_id, originator_version) "
                "FROM STDIN (FORMAT BINARY)"
            ).format(sql.Identifier(RECEIPTS_TABLE))
            with cursor.copy(statement) as copy:
                copy.set_types(["text", "text", "bytea", "uuid", "int8"])
                for receipt in self.receipts:
                    copy.write_row(receipt)
        self.conn.commit()
        self.stored += len(self.events)
        self.events.clear()
        self.receipts.clear()

    def _load(self, agg_id: UUID) -> Aggregate | None:
        cached = self.cache.get(agg_id)
        if cached is not None:
            self.cache.move_to_end(agg_id)
            return cached
        if agg_id not in self.known:
            return None
        self.flush()  # the store must hold everything decided so far
        try:
            aggregate: Aggregate = self.app.repository.get(agg_id)
        except AggregateNotFoundError:  # pragma: no cover - known ids are stored
            return None
        return aggregate

    def _remember(self, aggregate: Aggregate) -> None:
        self.known.add(aggregate.id)
        self.cache[aggregate.id] = aggregate
        self.cache.move_to_end(aggregate.id)
        while len(self.cache) > FILL_CACHE:
            self.cache.popitem(last=False)


def fill_log(
    database_url: str, count: int, *, seed: int = 7, progress: bool = True
) -> tuple[int, int, float]:
    """Record exactly `count` synthetic events into the (empty) store at `database_url`.

    Returns (stored, rejected along the way, seconds).
    """
    from ops_center.province.calendar import TZ, now
    from ops_center.tools.bench.logfill import synthetic

    shown = Progress("filling the log", count, "events") if progress else None
    started = time.perf_counter()
    with LogFiller(database_url) as filler:
        # The generator may propose events that would be refused (they are left out), so
        # it may be asked for a few more than `count`; CloudEvent times end about now.
        start = now().astimezone(TZ) - timedelta(seconds=count / 3)
        stream = synthetic(count + count // 10 + 100, seed=seed, start=start)
        accepted = 0
        while accepted < count:
            chunk = list(itertools.islice(stream, min(FILL_BATCH, count - accepted)))
            if not chunk:  # pragma: no cover - the generator yields more than needed
                raise BenchError("the synthetic workload ran out of events")
            accepted += filler.record(chunk)
            if shown is not None:
                shown.update(accepted)
        filler.flush()
        stored, rejected = filler.stored, filler.rejected
    seconds = time.perf_counter() - started
    if shown is not None:
        shown.finish(stored)
    return stored, rejected, seconds


# -- CPU use ------------------------------------------------------------------------------


class PostgresCpu:
    """CPU seconds of every PostgreSQL process on this machine, sampled in a thread (its
    backends come and go, so one reading at each end would miss some)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[float, float]] = {}  # pid -> (first, last) CPU seconds
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
        while not self._stop.wait(CPU_SAMPLE):
            self._sample()

    def _sample(self) -> None:
        for process in psutil.process_iter(["name"]):
            try:
                if not (process.info["name"] or "").startswith("postgres"):
                    continue
                times = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            used = float(times.user + times.system)
            first = self._seen.get(process.pid, (used, used))[0]
            self._seen[process.pid] = (first, used)

    def seconds(self) -> float:
        return sum(last - first for first, last in self._seen.values())


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Average cores busy during a phase (CPU seconds / wall seconds)."""

    client: float
    postgres: float
    #: Cores used by other processes (other work on the machine skews the figures).
    other: float


class CpuMeter:
    """This process, PostgreSQL and the whole machine over one phase."""

    def __enter__(self) -> CpuMeter:
        self._postgres = PostgresCpu().__enter__()
        self._wall = time.perf_counter()
        self._client = time.process_time()
        self._machine = machine_busy_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        client = (time.process_time() - self._client) / wall
        machine = (machine_busy_seconds() - self._machine) / wall
        self._postgres.__exit__()
        postgres = self._postgres.seconds() / wall
        self.use = CpuUse(client, postgres, max(0.0, machine - client - postgres))


# -- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scan:
    """The baseline: reading the whole log in position order with a plain cursor."""

    events: int
    seconds: float
    per_s: float
    cpu: CpuUse


async def scan_log(database_url: str) -> Scan:
    """``SELECT ... FROM ops_events ORDER BY notification_id`` through an asyncpg cursor."""
    conn = await asyncpg.connect(**Database.parse(database_url).asyncpg_args())
    try:
        total = await conn.fetchval(f"SELECT count(*) FROM {EVENTS_TABLE}")
        progress = Progress("baseline: plain scan of the log", total, "events")
        count = 0
        with CpuMeter() as meter:
            started = time.perf_counter()
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                async for _ in conn.cursor(
                    "SELECT notification_id, originator_id, originator_version, topic, state "
                    f"FROM {EVENTS_TABLE} ORDER BY notification_id",
                    prefetch=SCAN_PREFETCH,
                ):
                    count += 1
                    if not count % SCAN_PREFETCH:
                        progress.update(count)
            seconds = time.perf_counter() - started
        progress.finish(count)
    finally:
        await conn.close()
    return Scan(count, seconds, count / seconds, meter.use)


@dataclass(frozen=True, slots=True)
class Rebuild:
    """A rebuild from position 0: which projections, how fast, and where the time went."""

    label: str
    projections: list[str]
    events: int
    applied: int
    seconds: float
    per_s: float
    cpu: CpuUse


async def rebuild_rate(database_url: str, names: list[str] | None, label: str) -> Rebuild:
    """Rebuild the named projections (all when None) together; log events per second."""
    from ops_center.pipeline.rebuild import rebuild

    note(f"  rebuilding {label}")
    with CpuMeter() as meter:
        started = time.perf_counter()
        results = await rebuild(database_url, names, out=sys.stderr)
        seconds = time.perf_counter() - started
    events = min(r.position for r in results)
    return Rebuild(
        label,
        [r.name for r in results],
        events,
        sum(r.applied for r in results),
        seconds,
        events / seconds,
        meter.use,
    )


@dataclass(frozen=True, slots=True)
class QueryTiming:
    """Latency of one leaders' query (or of the baseline), in milliseconds."""

    name: str
    what: str
    rounds: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bytes: int


Call = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Workbench:
    """The parameters of the queries, picked from the filled log."""

    clock: datetime
    district: str
    units: frozenset[str]
    owners: frozenset[str]
    agency: str
    as_of: dict[str, datetime] = field(default_factory=dict)


async def _recorded_at(conn: Any, position: int) -> datetime:
    state = await conn.fetchval(
        f"SELECT state FROM {EVENTS_TABLE} WHERE notification_id >= $1 "
        "ORDER BY notification_id LIMIT 1",
        position,
    )
    return datetime.fromisoformat(orjson.loads(state)["timestamp"])


async def workbench(conn: Any, clock: datetime) -> Workbench:

    profile = load_profile()
    district = next(u.code for u in profile.units.values() if u.level == "district")
    units = profile.descendants(district)
    head = await conn.fetchval(f"SELECT max(notification_id) FROM {EVENTS_TABLE}")
    as_of = {
        "recent": await _recorded_at(conn, max(1, head * 95 // 100)),
        "old": await _recorded_at(conn, max(1, head // 10)),
    }
    return Workbench(clock, district, units, profile.owners_within(units), "SYT", as_of)


def leader_queries(w: Workbench) -> list[tuple[str, str, Call]]:
    """(name, HTTP equivalent, call) of every leaders' query measured."""
    from ops_center.province.calendar import TZ
    from projections import read

    clock = w.clock
    today = datetime.combine(clock.astimezone(TZ).date(), datetime.min.time(), TZ)
    month_ago = today - timedelta(days=29)
    year = datetime(today.year, 1, 1, tzinfo=TZ)
    unit = f"unit={w.district}"
    agency = f"agency={w.agency}"

    def stats(start: datetime, end: datetime, bucket: Any, **f: Any) -> Call:
        return lambda c: read.service_stats(
            c, start=start, end=end, bucket=bucket, clock=clock, **f
        )

    def shape(bucket: str, span: str, *filters: str) -> str:
        query = "&".join((f"from={span}", f"bucket={bucket}", *filters))
        return f"/api/v1/services/stats?{query}"

    return [
        ("overview", "/api/v1/overview", lambda c: read.overview(c, read.Scope(), clock=clock)),
        (
            "overview, unit",
            f"/api/v1/overview?{unit}",
            lambda c: read.overview(c, read.Scope(w.units, w.owners), clock=clock),
        ),
        (
            "overview, as_of recent",
            "/api/v1/overview?as_of=(recorded time at 95% of the log)",
            lambda c: read.overview(c, read.Scope(), clock=clock, as_of=w.as_of["recent"]),
        ),
        (
            "overview, as_of old",
            "/api/v1/overview?as_of=(recorded time at 10% of the log)",
            lambda c: read.overview(c, read.Scope(), clock=clock, as_of=w.as_of["old"]),
        ),
        (
            "devices",
            "/api/v1/devices?kind=camera&status=offline",
            lambda c: read.device_list(
                c, kind="camera", status="offline", units=None, limit=100, offset=0
            ),
        ),
        (
            "devices, unit",
            f"/api/v1/devices?kind=radio&{unit}",
            lambda c: read.device_list(
                c, kind="radio", status=None, units=w.units, limit=100, offset=0
            ),
        ),
        ("device", "/api/v1/devices/CAM-00042", lambda c: read.device_detail(c, "CAM-00042", None)),
        (
            "stats hour x 24",
            shape("hour", "today"),
            stats(today, today + timedelta(days=1), "hour"),
        ),
        (
            "stats hour x 24, unit",
            shape("hour", "today", unit),
            stats(today, today + timedelta(days=1), "hour", units=w.units),
        ),
        (
            "stats day x 30",
            shape("day", "30 days to tomorrow"),
            stats(month_ago, today + timedelta(days=1), "day"),
        ),
        (
            "stats day x 30, agency",
            shape("day", "30 days to tomorrow", agency),
            stats(month_ago, today + timedelta(days=1), "day", agency=w.agency),
        ),
        (
            "stats day x 30, agency+unit",
            shape("day", "30 days to tomorrow", agency, unit),
            stats(month_ago, today + timedelta(days=1), "day", agency=w.agency, units=w.units),
        ),
        (
            "stats month x 12",
            shape("month", "this year"),
            stats(year, year.replace(year=year.year + 1), "month"),
        ),
        (
            "stats month x 12, unit",
            shape("month", "this year", unit),
            stats(year, year.replace(year=year.year + 1), "month", units=w.units),
        ),
        (
            "overdue",
            "/api/v1/services/overdue",
            lambda c: read.overdue_list(
                c, clock=clock, agency=None, units=None, limit=100, offset=0
            ),
        ),
        ("kpis", "/api/v1/kpis", lambda c: read.kpi_list(c, clock=clock)),
        ("kpi history", "/api/v1/kpis/KPI-007/history", lambda c: read.kpi_history(c, "KPI-007")),
        ("feed", "/api/v1/feed", lambda c: read.feed(c, limit=50, before=None, units=None)),
    ]


async def time_queries(database_url: str, rounds: int, clock: datetime) -> list[QueryTiming]:
    """Each query `rounds` times (after `WARMUP` untimed runs), as the HTTP handlers run
    them: a pooled connection, a read-only REPEATABLE READ transaction, the answer encoded
    as JSON. The baseline is ``SELECT 1`` in the same transaction."""
    pool = await asyncpg.create_pool(
        **Database.parse(database_url).asyncpg_args(), min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn:
            bench = await workbench(conn, clock)
        calls: list[tuple[str, str, Call]] = [
            ("baseline: SELECT 1", "(round trip)", lambda c: c.fetchval("SELECT 1")),
            *leader_queries(bench),
        ]
        out = []
        progress = Progress("timing queries", len(calls) * rounds, "queries")
        done = 0
        for name, what, call in calls:
            timings = []
            size = 0
            for i in range(WARMUP + rounds):
                started = time.perf_counter()
                async with (
                    pool.acquire() as conn,
                    conn.transaction(isolation="repeatable_read", readonly=True),
                ):
                    answer = await call(conn)
                size = len(orjson.dumps(answer))
                elapsed = (time.perf_counter() - started) * 1000
                if i >= WARMUP:
                    timings.append(elapsed)
                    done += 1
                    progress.update(done)
            out.append(
                QueryTiming(
                    name,
                    what,
                    rounds,
                    percentile(timings, 50),
                    percentile(timings, 90),
                    percentile(timings, 99),
                    max(timings),
                    size,
                )
            )
        progress.finish(done)
        return out
    finally:
        await pool.close()


async def vacuum(database_url: str, tables: Iterable[str]) -> float:
    """VACUUM (ANALYZE) tables, as autovacuum would in a running system; seconds."""
    conn = await asyncpg.connect(**Database.parse(database_url).asyncpg_args())
    try:
        started = time.perf_counter()
        for table in tables:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        return time.perf_counter() - started
    finally:
        await conn.close()


# -- the run ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    database: str
    server_version: str
    scratch_database: str
    events: int
    rejected: int
    fill_seconds: float
    dossiers: int
    vacuum_seconds: float
    total_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ProjectionsResults:
    """Everything one run measured (what ``--json`` writes)."""

    machine: Machine
    options: ProjectionsOptions
    setup: Setup
    scan: Scan
    together: Rebuild
    alone: list[Rebuild]
    queries: list[QueryTiming]
    budgets: list[Budget]

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.budgets)

    def as_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = as_plain(asdict(self))
        plain["passed"] = self.passed
        return plain


def run(options: ProjectionsOptions, server_url: str, *, where: str) -> ProjectionsResults:
    """The whole benchmark in a scratch database on the server of `server_url`."""
    from ops_center.province.calendar import now
    from projections.registry import PROJECTIONS, create_projections

    machine = describe_machine()
    started = time.perf_counter()
    with scratch_database(server_url) as url:
        dbname = Database.parse(url).dbname
        note(f"ops-center bench projections: scratch database {dbname} ({where})")
        stored, rejected, fill_seconds = fill_log(url, options.events, seed=options.seed)
        if stored != options.events:  # pragma: no cover - fill_log stores exactly that
            raise BenchError(f"{stored} events stored of {options.events}")
        clock = now()
        vacuumed = asyncio.run(vacuum(url, [EVENTS_TABLE]))
        scan = asyncio.run(scan_log(url))
        together = asyncio.run(rebuild_rate(url, None, "all projections together"))
        alone = [asyncio.run(rebuild_rate(url, [name], name)) for name in PROJECTIONS]
        tables = [t for p in create_projections() for t in p.tables]
        note("  vacuuming the read models (as autovacuum would after a rebuild)")
        vacuumed += asyncio.run(vacuum(url, tables))
        queries = asyncio.run(time_queries(url, options.rounds, clock))
        with psycopg.connect(Database.parse(url).conninfo) as conn:
            version_row = conn.execute("SELECT current_setting('server_version')").fetchone()
            dossiers_row = conn.execute("SELECT count(*) FROM rm_dossiers").fetchone()
        version = str(version_row[0]) if version_row else "?"
        dossiers = int(dossiers_row[0]) if dossiers_row else 0
    setup = Setup(
        database=where,
        server_version=version,
        scratch_database=dbname,
        events=stored,
        rejected=rejected,
        fill_seconds=fill_seconds,
        dossiers=dossiers,
        vacuum_seconds=vacuumed,
        total_seconds=time.perf_counter() - started,
    )
    return results(machine, options, setup, scan, together, alone, queries)


def results(
    machine: Machine,
    options: ProjectionsOptions,
    setup: Setup,
    scan: Scan,
    together: Rebuild,
    alone: list[Rebuild],
    queries: list[QueryTiming],
) -> ProjectionsResults:
    budgets = [
        Budget(
            "rebuild, all projections together",
            f">= {thousands(REBUILD_MIN_EVENTS_PER_S)} events/s",
            f"{thousands(together.per_s)} events/s",
            together.per_s >= REBUILD_MIN_EVENTS_PER_S,
        ),
        *(
            Budget(
                f"p99 {q.name}",
                f"< {QUERY_MAX_P99_MS:.0f} ms",
                f"{q.p99_ms:.1f} ms",
                q.p99_ms < QUERY_MAX_P99_MS,
            )
            for q in queries
            if not q.name.startswith("baseline")
        ),
    ]
    return ProjectionsResults(machine, options, setup, scan, together, alone, queries, budgets)


# -- the report ---------------------------------------------------------------------------


def format_report(r: ProjectionsResults) -> str:
    """The report printed at the end of a run."""
    s = r.setup
    head = [
        "ops-center bench projections",
        f"machine:   {r.machine.describe()}",
        f"database:  PostgreSQL {s.server_version}, {s.database}; scratch database "
        f"{s.scratch_database} (dropped)",
        f"log:       {thousands(s.events)} synthetic events ({thousands(s.dossiers)} dossiers), "
        f"recorded as ingest records them in {s.fill_seconds:.0f} s; whole run "
        f"{s.total_seconds:.0f} s",
    ]
    baseline = r.scan.per_s

    def row(x: Rebuild) -> list[str]:
        return [
            x.label,
            thousands(x.events),
            thousands(x.applied),
            f"{x.seconds:.1f}",
            f"{rate(x.per_s)}",
            f"{x.per_s / baseline:.3f}x",
            f"{x.cpu.client:.2f}",
            f"{x.cpu.postgres:.2f}",
            f"{x.cpu.other:.2f}",
        ]

    rebuilds = format_table(
        [
            "rebuild (log events/s)",
            "log",
            "applied",
            "seconds",
            "events/s",
            "/ scan",
            "client",
            "postgres",
            "others",
        ],
        [
            [
                "baseline: plain scan",
                thousands(r.scan.events),
                "",
                f"{r.scan.seconds:.1f}",
                rate(r.scan.per_s),
                "1.000x",
                f"{r.scan.cpu.client:.2f}",
                f"{r.scan.cpu.postgres:.2f}",
                f"{r.scan.cpu.other:.2f}",
            ],
            row(r.together),
            *(row(x) for x in r.alone),
        ],
    )
    select1 = next(q for q in r.queries if q.name.startswith("baseline"))
    queries = format_table(
        ["query", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50 / SELECT 1", "bytes", "as HTTP"],
        [
            [
                q.name,
                f"{q.p50_ms:.2f}",
                f"{q.p90_ms:.2f}",
                f"{q.p99_ms:.2f}",
                f"{q.max_ms:.2f}",
                f"{q.p50_ms / select1.p50_ms:.1f}x",
                thousands(q.bytes),
                q.what,
            ]
            for q in r.queries
        ],
        align="lrrrrrrl",
    )
    budgets = format_table(
        ["budget", "target", "measured", "result"],
        [[b.name, b.target, b.measured, "PASS" if b.passed else "FAIL"] for b in r.budgets],
    )
    phases: list[Scan | Rebuild] = [r.scan, r.together, *r.alone]
    busy = [x for x in phases if x.cpu.other > 0.2]
    warning = (
        [
            f"warning: other processes used part of this {r.machine.cpus}-CPU machine during "
            f"{len(busy)} of the rebuild phases (see 'others'); the figures are lower than a "
            "quiet machine would give"
        ]
        if busy
        else []
    )
    return "\n\n".join(
        [
            "\n".join(head),
            "CPU: cores busy on average (CPU seconds / wall seconds) in this process (client: "
            "the projections' Python),\nPostgreSQL (all its processes) and other processes\n"
            + rebuilds,
            f"queries: {r.options.rounds} timed runs each (after {WARMUP} untimed), a read-only "
            "REPEATABLE READ transaction\nper run as the HTTP handlers use, answer encoded as "
            "JSON; times from this process (no HTTP)\n" + queries,
            budgets,
            *warning,
        ]
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench projections``: run, print the report, write JSON if asked."""
    from ops_center.embedded.default import database_url

    try:
        options = ProjectionsOptions(
            events=args.events,
            rounds=args.rounds,
            seed=args.seed,
            json_path=args.json_path,
            check=args.check,
        )
    except ValueError as exc:
        print(f"ops-center bench projections: {exc}", file=sys.stderr)
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
            outcome = run(options, server_url, where=where)
    except BenchError as exc:
        print(f"\nops-center bench projections: {exc}", file=sys.stderr)
        return 1
    print(format_report(outcome), flush=True)
    if options.json_path is not None:
        options.json_path.write_bytes(
            orjson.dumps(outcome.as_json(), option=orjson.OPT_INDENT_2) + b"\n"
        )
    return 1 if options.check and not outcome.passed else 0
