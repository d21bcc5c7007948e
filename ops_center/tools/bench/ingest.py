"""``ops-center bench ingest``: HTTP ingest beside the library used naively and raw COPY.

One run, one machine, one PostgreSQL server, one fresh database (``ops_bench_<hex>``,
dropped at the end), four measurements:

1. **HTTP batched**: ``POST /api/v1/events`` with ``application/cloudevents-batch+json``
   over several keep-alive connections, each sending its next batch when the previous
   one is acknowledged (acknowledgements are durable: the server answers after commit).
2. **HTTP single**: ``application/cloudevents+json``, one event per request, many
   clients with one request in flight each (closed loop); requests/s and latency.
3. **eventsourcing, naive** and 4. **PostgreSQL COPY**: the baselines
   (`ops_center.tools.bench.baselines`).

The server runs as a separate process (`ops_center.tools.bench.harness.BenchServer`) on a
free port, so that the load generator (this process, with the minimal HTTP client of
`ops_center.tools.bench.client`) does not share its event loop. Every request body is
built before the clock starts. The workload is the simulated province
(`ops_center.tools.simulator.traffic.Traffic`), sized to the options: its cameras and
radio stations are registered first, then its events follow in time order (status
changes, alerts, broadcasts, cluster faults, dossiers, indicators), split into one lane
per connection by subject; every event must be accepted, and the stored rows are counted
at the end. Anything else stops the run with an error.

Also reported, per HTTP phase: CPU cores used by the client, the server and PostgreSQL
(CPU seconds / wall seconds; PostgreSQL only when it runs on this machine), and the
group-commit writer's transactions and busy share, to show where the limit is
(`ops_center.tools.bench.ingest_results`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import orjson

from ops_center.runtime.progress import Progress
from ops_center.settings import Settings
from ops_center.store.database import Database
from ops_center.store.recorder import RECEIPTS_TABLE
from ops_center.tools.bench.baselines import run_copy, run_naive
from ops_center.tools.bench.client import Connection, HttpError, Reply, build_request
from ops_center.tools.bench.harness import (
    HOST,
    BenchError,
    BenchServer,
    Profiler,
    bench_settings,
    running_server,
    scratch_database,
)
from ops_center.tools.bench.ingest_results import (
    HttpResult,
    IngestResults,
    Latency,
    Setup,
    WriterUse,
    WrkResult,
    format_report,
    judge,
)
from ops_center.tools.bench.meters import CpuReading, Monitor, catch_up
from ops_center.tools.bench.options import IngestOptions, ingest_options
from ops_center.tools.bench.report import describe_machine, note, publish, thousands
from ops_center.tools.bench.server import STATS_PATH
from ops_center.tools.bench.wrk import WRK_MAX_SECONDS, WrkError, WrkRun, wrk_executable
from ops_center.tools.simulator import SCOPES
from ops_center.tools.simulator.traffic import Traffic, by_subject

KEY_NAME: Final = "bench-ingest"
BATCH: Final = "application/cloudevents-batch+json"
STRUCTURED: Final = "application/cloudevents+json"
#: Connections of the wrk phase (as many as the Python client's single-event clients).
WRK_CONNECTIONS: Final = 64
#: The event types the wrk phase sends (see `_order_free`).
WRK_TYPES: Final = frozenset({"camera.status", "camera.alert", "radio.station.status"})
#: The wrk phase lasts about this share of the time the Python client would need for its
#: events at its own rate, so that they do not run out (wrk runs for a fixed time).
WRK_TIME_SHARE: Final = 0.7


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
            progress.show(done)

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
            progress.show(done, final=True)
            raise failures.exceptions[0] from None
        seconds = time.perf_counter() - started
        progress.show(done, final=True)
    finally:
        for connection in connections:
            await connection.close()
    return seconds, latencies


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
    """Run one HTTP phase and gather its figures, CPU use and writer counters.

    With a node (``--workers``), the phase's CPU is read once its pipeline has caught up
    with the events of the phase, so that the pipeline's work for them is counted; the
    group-commit writer's counters are those of the one-process server only."""
    writer = server.workers == 0
    before_stats = await _writer_stats(server.port, token, since=0) if writer else None
    if profiler.start(server.pid, phase, subprocesses=bool(server.workers)):
        await asyncio.sleep(1.0)  # let py-spy attach before the clock starts
    unit = "events" if plan.content_type == BATCH else "requests"
    progress = Progress(plan.events, sys.stderr, label=f"  {plan.label}", unit=unit)
    roles = server.roles()
    before = CpuReading.take(roles, monitor)
    seconds, latencies = await drive(plan, server.port, progress)
    caught_up = await catch_up(monitor, monitor.position())
    after = CpuReading.take(roles, monitor)
    profile = profiler.stop()
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
        writer=await _writer_use(server, token, before_stats, seconds),
        profile=profile,
        catch_up_seconds=caught_up,
    )


async def _writer_use(
    server: BenchServer, token: str, before: dict[str, Any] | None, seconds: float
) -> WriterUse | None:
    if before is None:
        return None
    after = await _writer_stats(server.port, token, since=int(before["batches"]))
    sizes: list[int] = after["batch_sizes"]
    transactions = int(after["batches"]) - int(before["batches"])
    written = int(after["events"]) - int(before["events"])
    commit = float(after["commit_seconds"]) - float(before["commit_seconds"])
    return WriterUse(
        transactions=transactions,
        events=written,
        mean_events=written / transactions if transactions else 0.0,
        max_events=max(sizes, default=0),
        commit_seconds=commit,
        busy=commit / seconds,
    )


@dataclass(slots=True)
class _Plans:
    registrations: Plan
    batched: Plan
    single: Plan
    #: The events the wrk phase sends, one per request (empty: no wrk phase).
    wrk: list[dict[str, Any]]
    #: Events of each type in the measured phases.
    mix: dict[str, int]


def _order_free(traffic: Traffic, count: int) -> list[dict[str, Any]]:
    """The next `count` status reports and alerts of the registered devices: ``wrk`` sends
    on its connections in no order per subject, and only these are accepted in any order
    (a late report never overwrites a newer state); a dossier's completion sent before
    its receipt would be refused."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        found.extend(e for e in traffic.take(1_000) if e["type"] in WRK_TYPES)
    return found[:count]


def _plans(options: IngestOptions, port: int, token: str) -> _Plans:
    """Every request of the run, built before any clock starts."""
    traffic = Traffic(
        cameras=options.cameras,
        stations=options.stations,
        events=options.events + options.single_requests + options.wrk_requests,
        seed=options.seed,
    )
    # The opening (devices registered with their first status, the indicators) is
    # spread over the connections by subject too, and acknowledged before the measured
    # phases start: those refer to the registered devices.
    opening = by_subject(traffic.opening(), options.connections)
    batched = traffic.lanes(options.events, options.connections)
    single = traffic.lanes(options.single_requests, options.single_clients)
    wrk = _order_free(traffic, options.wrk_requests)
    mix = Counter(e["type"] for lane in (*batched, *single, wrk) for e in lane)
    return _Plans(
        registrations=batch_plan("registering devices", opening, options.batch_size, port, token),
        batched=batch_plan(
            f"HTTP batched ({options.batch_size}/request)",
            batched,
            options.batch_size,
            port,
            token,
        ),
        single=single_plan("HTTP single", single, port, token),
        wrk=wrk,
        mix=dict(sorted(mix.items())),
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
        token = create_key(url, KEY_NAME, "integration", scopes=SCOPES)
        with (
            running_server(url, "ops-bench-", profiler, workers=options.workers) as server,
            closing(Monitor(url)) as monitor,
        ):
            started = time.perf_counter()
            plans = _plans(options, server.port, token)
            generation = time.perf_counter() - started
            generated = plans.batched.events + plans.single.events
            note(f"  {thousands(generated)} events generated in {generation:.1f} s")
            registration_seconds, batched, single, first, last = asyncio.run(
                _http_phases(server, token, monitor, profiler, plans)
            )
            wrk = _wrk_phase(
                plans.wrk, server, token, monitor, server.log_path.parent, single.requests_per_s
            )
            server.stop()
            stored_events = monitor.count_ingested()
            stored_receipts = monitor.count(RECEIPTS_TABLE)
            expected = plans.registrations.events + batched.events + single.events
            if wrk is not None:
                # wrk counts the requests it saw answered; those in flight when its time ran
                # out are stored too, and a request it built for a connection it then had
                # to open again is never sent: up to one per connection either way
                stored_wrk = stored_events - expected
                low, high = wrk.events - WRK_CONNECTIONS, wrk.events + WRK_CONNECTIONS
                if not max(low, 1) <= stored_wrk <= min(high, len(plans.wrk)):
                    raise BenchError(
                        f"wrk: {wrk.events:,} events were acknowledged but "
                        f"{stored_wrk:,} are stored"
                    )
                wrk = replace(wrk, events=stored_wrk)
                expected = stored_events
            if stored_events != expected or stored_receipts != expected:
                raise BenchError(
                    f"{expected} events were acknowledged but {stored_events} are stored "
                    f"with {stored_receipts} receipts"
                )
            naive = run_naive(url, options.naive_events, monitor, options.seed, KEY_NAME)
            copy = run_copy(monitor, first, last)
            version, fsync, synchronous_commit = monitor.server_settings()
    setup = Setup(
        database=where,
        server_version=version,
        fsync=fsync,
        synchronous_commit=synchronous_commit,
        scratch_database=dbname,
        registrations=plans.registrations.events,
        registration_seconds=registration_seconds,
        generation_seconds=generation,
        stored_events=stored_events,
        stored_receipts=stored_receipts,
        total_seconds=time.perf_counter() - run_started,
        mix=plans.mix,
    )
    return judge(machine, options, setup, batched, single, naive, copy, wrk)


def _wrk_phase(
    events: list[dict[str, Any]],
    server: BenchServer,
    token: str,
    monitor: Monitor,
    directory: Path,
    single_rate: float,
) -> WrkResult | None:
    """The single-event phase again, from ``wrk``; None without events or without wrk."""
    if not events:
        return None
    executable = wrk_executable()
    if executable is None:
        note("  wrk single: skipped, wrk is not installed (Debian: apt-get install wrk)")
        return None
    run = WrkRun(executable, directory, events, token, connections=WRK_CONNECTIONS)
    seconds = max(2, min(WRK_MAX_SECONDS, round(WRK_TIME_SHARE * len(events) / single_rate)))
    note(f"  wrk single: {seconds} s over {WRK_CONNECTIONS} connections")
    roles = server.roles()
    before = CpuReading.take(roles, monitor)
    try:
        report = run.run(f"http://{HOST}:{server.port}", seconds)
    except WrkError as exc:
        raise BenchError(str(exc)) from None
    caught_up = asyncio.run(catch_up(monitor, monitor.position()))
    after = CpuReading.take(roles, monitor)
    answered = min(report.requests, len(events))
    return WrkResult(WRK_CONNECTIONS, answered, report, after.since(before), caught_up)


async def _http_phases(
    server: BenchServer, token: str, monitor: Monitor, profiler: Profiler, plans: _Plans
) -> tuple[float, HttpResult, HttpResult, int, int]:
    """Registrations, then the two measured phases; also the batched phase's positions."""
    await server.wait_ready()
    progress = Progress(
        plans.registrations.events, sys.stderr, label=f"  {plans.registrations.label}"
    )
    registration_seconds, _ = await drive(plans.registrations, server.port, progress)
    # the pipeline has started and applied the opening before any phase is measured
    await catch_up(monitor, monitor.position())
    first = monitor.position()
    batched = await measure(plans.batched, server, token, monitor, profiler, "batched")
    last = monitor.position()
    single = await measure(plans.single, server, token, monitor, profiler, "single")
    return registration_seconds, batched, single, first, last


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench ingest``: run, print the report, write JSON if asked."""
    from ops_center.embedded.default import database_url

    try:
        options = ingest_options(args)
    except ValueError as exc:
        print(f"ops-center bench ingest: {exc}", file=sys.stderr)
        return 2
    settings, where = bench_settings(args, settings)
    try:
        with database_url(settings) as server_url:
            results = run(options, server_url, where=where)
    except (BenchError, HttpError) as exc:
        print(f"\nops-center bench ingest: {exc}", file=sys.stderr)
        return 1
    return publish(results, format_report(results), options.json_path, options.check)
