"""``ops-center bench streams``: live streams measured from acknowledgement to screen.

The server runs as a deployment does (`harness.BenchServer`): ``ops-center serve
--workers N`` (default: the cores), its HTTP processes on one port fanning out to their
screens, the pipeline process publishing the changes through the node's embedded Redis;
``--workers 0`` runs the one-process server of before (the pipeline and an in-process
stream bus inside it), for the figure beside it. The screens are the lean ones of
`ops_center.tools.loadclients.screens` and the sender the lean HTTP client of
`ops_center.tools.loadclients.http`, each in processes of their own, so that this
process only orchestrates and the figures are the server's (their CPU is reported
beside it).

The events are the simulated province's (`ops_center.tools.simulator.traffic.Traffic`,
sized by ``--cameras`` and ``--stations``): its devices are registered first, then each
phase offers its next events in batches of `batch` at a steady rate (open loop), split
by subject into `LANES` lanes, each lane on one connection in order. Two phases:

* **latency**: `screens` screens, `probes` of them recording every frame (half on the
  feed, half on the overview; the rest on the overview), `rate` events/s offered. The
  figure is, for every acknowledged request and every probe, the time from the
  acknowledgement to the first frame reaching its last event. Budget (feed probes, every
  event enters the feed): p50 under 15 ms, p99 under 100 ms. The overview's frames also
  wait for the projections behind it, and come only when a figure changes.
* **fan-out**: `fanout_screens` screens on the overview, all recording, `fanout_rate`
  events/s. Budget: p99 under 250 ms, and the server's processes together under 500 MB
  of resident memory.

Each phase's CPU is read by process role (HTTP processes, pipeline, supervisor with its
Redis, or the one process; PostgreSQL; the screens; the sender) once the pipeline has
applied the phase's events and the screens have them; the pipeline's lag is sampled
throughout (`meters.LagSampler`). Progress goes to stderr, the report to stdout.

Run with ``ops-center bench streams`` (options: ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ops_center.settings import Settings
from ops_center.store.database import Database
from ops_center.tools.bench.harness import (
    HOST,
    BenchError,
    BenchServer,
    Profiler,
    bench_settings,
    running_server,
    scratch_database,
)
from ops_center.tools.bench.meters import (
    CpuReading,
    LagSampler,
    Monitor,
    catch_up,
    process_memory,
    reset_peaks,
)
from ops_center.tools.bench.options import StreamsOptions, streams_options
from ops_center.tools.bench.report import describe_machine, note, publish, thousands
from ops_center.tools.bench.streams_results import (
    PhaseResult,
    StreamsResults,
    StreamsSetup,
    TopicFigures,
    format_report,
    judge,
)
from ops_center.tools.loadclients.http import BATCH, HttpLoad, HttpResult
from ops_center.tools.loadclients.screens import Screens, ScreensResult
from ops_center.tools.loadclients.workers import LoadClientError, raise_file_limit
from ops_center.tools.simulator import SCOPES
from ops_center.tools.simulator.traffic import Traffic

#: Sender connections (each sends its lane of events in order).
LANES: Final = 8
#: Worker processes of the screens that are not probes.
SCREEN_PROCESSES: Final = 2
#: Events per request while registering the devices.
OPENING_BATCH: Final = 500
#: Seconds to wait for the last frames once the pipeline applied a phase's events.
DRAIN_SECONDS: Final = 10.0
#: The screens are settled when no frame arrived for this long.
QUIET_SECONDS: Final = 0.5


@dataclass(frozen=True, slots=True)
class ScreenGroup:
    """Screens of one `Screens` (its worker processes): their topics, how many record."""

    topics: tuple[str, ...]
    screens: int
    processes: int
    record: int

    def start(self, url: str, key: str) -> Screens:
        screens = Screens(
            url,
            key,
            topics=self.topics,
            screens=self.screens,
            processes=self.processes,
            record=self.record,
        )
        ready = screens.start()
        if ready.failed or ready.snapshots < self.screens:
            result = screens.stop()
            samples = [s for w in result.workers for s in w.samples]
            raise BenchError(
                f"{ready.failed} of {self.screens} screens failed to connect, "
                f"{ready.snapshots} got their snapshot: {samples[:2]}"
            )
        return screens


def phase_events(rate: float, seconds: float, batch: int) -> int:
    """Events of a phase: `rate` for `seconds`, rounded up to whole batches on every
    lane (so that the lanes take turns evenly: see `interleaved`)."""
    step = LANES * batch
    return max(1, math.ceil(rate * seconds / step)) * step


def interleaved(lanes: Sequence[Sequence[dict[str, Any]]], batch: int) -> list[bytes]:
    """Batch bodies in turns of the lanes: body ``k`` is lane ``k % LANES``'s, so that a
    pinned sender with `LANES` connections sends each lane on one connection, in order."""
    batched = [
        [orjson.dumps(list(lane[i : i + batch])) for i in range(0, len(lane), batch)]
        for lane in lanes
    ]
    if len(batched) != LANES or len({len(b) for b in batched}) != 1:
        raise BenchError("the lanes of a phase must hold the same number of batches")
    return [body for turn in zip(*batched, strict=True) for body in turn]


def _screens_cpu(groups: Sequence[Screens]) -> float:
    return sum(group.status().cpu_s for group in groups)


def _settle(groups: Sequence[Screens], position: int) -> None:
    """Wait (bounded) until the feed's screens reached `position` and no screen has had
    a frame for `QUIET_SECONDS` (the overview's last change may come before `position`)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    for group in groups:
        if "feed" in group.config.topics:
            group.wait_reached(position, max(0.0, deadline - time.monotonic()), "feed")
    frames = -1
    while time.monotonic() < deadline:
        now = sum(group.status().frames for group in groups)
        if now == frames:
            return
        frames = now
        time.sleep(QUIET_SECONDS)


def merged(results: Sequence[ScreensResult]) -> ScreensResult:
    """The results of several `Screens` as one (their tables and records side by side)."""
    topics = tuple(dict.fromkeys(t for r in results for t in r.topics))
    return ScreensResult(
        topics=topics,
        workers=[w for r in results for w in r.workers],
        arrivals={t: [a for r in results for a in r.arrivals.get(t, [])] for t in topics},
        records=sorted((x for r in results for x in r.records), key=lambda x: x.index),
    )


@dataclass(slots=True)
class Bench:
    """One run's server, its keys and instruments."""

    options: StreamsOptions
    server: BenchServer
    monitor: Monitor
    database_url: str
    viewer: str
    writer: str
    profiler: Profiler

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.port}"

    def register(self, opening: list[dict[str, Any]]) -> float:
        """Send the opening on one connection, in order; seconds it took."""
        bodies = [
            orjson.dumps(opening[i : i + OPENING_BATCH])
            for i in range(0, len(opening), OPENING_BATCH)
        ]
        started = time.perf_counter()
        sent = HttpLoad(self.url, self.writer, bodies, content_type=BATCH, connections=1).run()
        if sent.events != len(opening):
            raise BenchError(
                f"registering devices: {sent.events} of {len(opening)} events acknowledged "
                f"({dict(sent.statuses)}): {sent.summary()['samples'][:2]}"
            )
        asyncio.run(catch_up(self.monitor, self.monitor.position()))
        return time.perf_counter() - started

    def phase(
        self,
        name: str,
        bodies: list[bytes],
        events: int,
        groups: Sequence[ScreenGroup],
        *,
        rate: float,
        batch: int,
    ) -> PhaseResult:
        screens_total = sum(g.screens for g in groups)
        note(f"{name}: connecting {thousands(screens_total)} screens")
        started = time.monotonic()
        opened: list[Screens] = []
        try:
            for group in groups:
                opened.append(group.start(self.url, self.viewer))
            connect_s = time.monotonic() - started
            note(f"{name}: connected in {connect_s:.1f} s; offering {thousands(rate)} events/s")
            return self._measure(name, bodies, events, groups, opened, rate, batch, connect_s)
        finally:
            for screens in opened:
                screens.stop()

    def _measure(
        self,
        name: str,
        bodies: list[bytes],
        events: int,
        groups: Sequence[ScreenGroup],
        opened: list[Screens],
        rate: float,
        batch: int,
        connect_s: float,
    ) -> PhaseResult:
        roles = self.server.roles()
        reset_peaks(pid for pids in roles.values() for pid in pids)
        if self.profiler.start(self.server.pid, name, subprocesses=bool(self.server.workers)):
            time.sleep(1.0)  # let py-spy attach before the clock starts
        load = HttpLoad(
            self.url,
            self.writer,
            bodies,
            content_type=BATCH,
            connections=LANES,
            rate=rate / batch,
            pinned=True,
        )
        load.start()
        screens_before = _screens_cpu(opened)
        before = CpuReading.take(roles, self.monitor)
        with LagSampler(self.database_url) as lag:
            sent = load.run()
            acks = sent.ack_times()
            top = acks.positions[-1] if len(acks) else self.monitor.position()
            caught_up = asyncio.run(catch_up(self.monitor, top))
            _settle(opened, top)
        after = CpuReading.take(roles, self.monitor)
        screens_cpu = _screens_cpu(opened) - screens_before
        profile = self.profiler.stop()
        memory = process_memory(roles)
        seen = merged([screens.stop() for screens in opened])
        return PhaseResult(
            name=name,
            screens=sum(g.screens for g in groups),
            offered_per_s=rate,
            events=events,
            acked_events=sent.events,
            requests=sent.count,
            failed_requests=sent.count - sent.ok,
            seconds=sent.seconds,
            acked_per_s=sent.events_per_s,
            connect_s=connect_s,
            topics=_topics(seen, groups, sent),
            cpu=after.since(before),
            screens_cpu_s=screens_cpu,
            sender_cpu_s=sent.sending_cpu_s,
            frames=seen.total("frames"),
            lost=seen.total("lost"),
            error_frames=seen.total("errors"),
            memory=memory,
            lag=lag.figures(acks.positions, acks.ack_ns),
            catch_up_seconds=caught_up,
            profile=profile,
        )


def _topics(
    seen: ScreensResult, groups: Sequence[ScreenGroup], sent: HttpResult
) -> list[TopicFigures]:
    acks = sent.ack_times()
    counts: Counter[str] = Counter()
    recorded: Counter[str] = Counter()
    for group in groups:
        for i in range(group.screens):
            topic = group.topics[i % len(group.topics)]
            counts[topic] += 1
            recorded[topic] += i < group.record
    return [
        TopicFigures(
            topic=topic,
            screens=counts[topic],
            recorded=recorded[topic],
            reach=seen.reach_latency(acks, topic),
            frames=seen.frame_latency(acks, topic),
            spread=seen.spread(topic),
        )
        for topic in seen.topics
    ]


def latency_groups(options: StreamsOptions) -> list[ScreenGroup]:
    """The probes (half feed, half overview, one process) and the overview's crowd."""
    probes = min(options.probes, options.screens)
    groups = [ScreenGroup(("feed", "overview"), probes, 1, probes)]
    if options.screens > probes:
        groups.append(ScreenGroup(("overview",), options.screens - probes, SCREEN_PROCESSES, 0))
    return groups


def run(options: StreamsOptions, server_url: str, *, where: str) -> StreamsResults:
    """Both phases in a scratch database on the server of `server_url`."""
    from ops_center.access.keystore import create_key

    machine = describe_machine()
    profiler = Profiler(options.profile_dir, options.profile_format)
    run_started = time.perf_counter()
    latency_events = (
        phase_events(options.rate, options.seconds, options.batch)
        if "latency" in options.phases
        else 0
    )
    fanout_batch = max(1, options.fanout_rate // 10)
    fanout_events = (
        phase_events(options.fanout_rate, options.fanout_seconds, fanout_batch)
        if "fanout" in options.phases
        else 0
    )
    traffic = Traffic(
        cameras=options.cameras,
        stations=options.stations,
        events=latency_events + fanout_events,
        seed=options.seed,
    )
    # every request is built before the server starts
    opening = traffic.opening()
    latency_lanes = traffic.lanes(latency_events, LANES) if latency_events else []
    fanout_lanes = traffic.lanes(fanout_events, LANES) if fanout_events else []
    mix = Counter(e["type"] for lane in (*latency_lanes, *fanout_lanes) for e in lane)
    latency_bodies = interleaved(latency_lanes, options.batch) if latency_events else []
    fanout_bodies = interleaved(fanout_lanes, fanout_batch) if fanout_events else []
    with scratch_database(server_url) as url:
        dbname = Database.parse(url).dbname
        note(f"ops-center bench streams: scratch database {dbname} ({where})")
        viewer = create_key(url, f"bench-viewer-{secrets.token_hex(4)}", "viewer")
        writer = create_key(
            url, f"bench-writer-{secrets.token_hex(4)}", "integration", scopes=SCOPES
        )
        phases: list[PhaseResult] = []
        with (
            # workers 0: the one-process server's in-process bus (the node brings its Redis)
            running_server(
                url,
                "ops-bench-streams-",
                profiler,
                {"REDIS_URL": None},
                workers=options.workers,
            ) as server,
            closing(Monitor(url)) as monitor,
        ):
            bench = Bench(options, server, monitor, url, viewer, writer, profiler)
            asyncio.run(server.wait_ready())
            note(
                f"  registering {options.cameras + options.stations} devices "
                f"({len(opening)} events)"
            )
            registration_seconds = bench.register(opening)
            if latency_events:
                phases.append(
                    bench.phase(
                        "latency",
                        latency_bodies,
                        latency_events,
                        latency_groups(options),
                        rate=options.rate,
                        batch=options.batch,
                    )
                )
            if fanout_events:
                everyone = options.fanout_screens
                phases.append(
                    bench.phase(
                        "fan-out",
                        fanout_bodies,
                        fanout_events,
                        [ScreenGroup(("overview",), everyone, SCREEN_PROCESSES, everyone)],
                        rate=options.fanout_rate,
                        batch=fanout_batch,
                    )
                )
            version, fsync, synchronous_commit = monitor.server_settings()
    setup = StreamsSetup(
        database=where,
        server_version=version,
        fsync=fsync,
        synchronous_commit=synchronous_commit,
        scratch_database=dbname,
        registrations=len(opening),
        registration_seconds=registration_seconds,
        total_seconds=time.perf_counter() - run_started,
        mix=dict(sorted(mix.items())),
    )
    return judge(machine, options, setup, phases)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench streams``: run both phases and print the report."""
    from ops_center.embedded.default import database_url

    try:
        options = streams_options(args)
    except ValueError as exc:
        print(f"ops-center bench streams: {exc}", file=sys.stderr)
        return 2
    # the server's processes inherit the limit (each screen is a connection)
    raise_file_limit(max(options.screens, options.fanout_screens) + 1_000)
    settings, where = bench_settings(args, settings)
    try:
        with database_url(settings) as server_url:
            results = run(options, server_url, where=where)
    except (BenchError, LoadClientError) as exc:
        print(f"\nops-center bench streams: {exc}", file=sys.stderr)
        return 1
    return publish(results, format_report(results), options.json_path, options.check)
