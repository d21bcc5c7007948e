"""``ops-center bench streams``: live streams measured from acknowledgement to screen.

One server process (``python -m ops_center.tools.bench.server``, in-process stream bus) on a
scratch database; the screens and the sender (`ops_center.tools.bench.screens`) run in this
process, over real WebSockets and HTTP. The events are the simulated province's
(`ops_center.tools.simulator.traffic.Traffic`, sized by ``--cameras`` and ``--stations``):
its devices are registered first, then each phase sends the next events in `LANES`
lanes by subject. Two phases, each checked against the budgets of docs/DESIGN.md §4:

* **latency**: `screens` connected screens (most follow the overview; `probes` of them,
  half on the feed and half on the overview, record every frame) while events are offered
  at `rate` per second in batches of `batch`. For every acknowledged batch and every
  probe, the latency is the time from the acknowledgement to the first frame whose
  position reaches the batch's last event. Budget (feed probes): p50 under 15 ms, p99
  under 100 ms. The overview probes are reported too; their frames also wait for the
  three projections behind the overview, and a batch that changes no figure is only
  counted when a later one does (an upper bound).
* **fan-out**: `fanout_screens` screens on the overview, events offered at
  `fanout_rate` per second; every screen's latency to every batch as above. Budget: p99
  under 250 ms, and the server's peak resident memory under 500 MB.

The client shares the machine with the server: on a 2-core machine its own CPU time
(parsing thousands of frames per second) inflates the figures; the report gives both
processes' CPU use. Progress goes to stderr, the report to stdout.

Run with ``ops-center bench streams`` (options: ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

from ops_center.access.keystore import create_key
from ops_center.settings import Settings
from ops_center.tools.bench.harness import (
    BenchError,
    BenchServer,
    bench_settings,
    scratch_database,
)
from ops_center.tools.bench.meters import process_cpu_seconds
from ops_center.tools.bench.options import StreamsOptions, streams_options
from ops_center.tools.bench.report import describe_machine, format_table, note, percentile
from ops_center.tools.bench.screens import (
    Acks,
    ScreenLog,
    connect_screens,
    drained,
    latencies,
    send,
    spreads,
)
from ops_center.tools.simulator import SCOPES
from ops_center.tools.simulator.traffic import Traffic

#: Sender connections (each sends its lane of events in order).
LANES: Final = 8

# Budgets from docs/DESIGN.md §4.
LATENCY_P50_MS: Final = 15.0
LATENCY_P99_MS: Final = 100.0
FANOUT_P99_MS: Final = 250.0
FANOUT_MAX_RSS_MB: Final = 500.0


@dataclass(slots=True)
class PhaseResult:
    name: str
    screens: int
    recording: int
    offered_per_s: float
    acked_events: int
    achieved_per_s: float
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    missed: int
    server_cpu_s: float
    client_cpu_s: float
    rss_mb: float
    peak_rss_mb: float
    connect_s: float
    extra: dict[str, float] = field(default_factory=dict)


def _summary(
    name: str,
    samples: list[float],
    missed: int,
    acks: Acks,
    seconds: float,
    **fields: Any,
) -> PhaseResult:
    return PhaseResult(
        name=name,
        acked_events=acks.events,
        achieved_per_s=acks.events / seconds if seconds else 0.0,
        seconds=seconds,
        p50_ms=percentile(samples, 50),
        p90_ms=percentile(samples, 90),
        p99_ms=percentile(samples, 99),
        max_ms=max(samples, default=float("nan")),
        missed=missed,
        **fields,
    )


async def _phase(
    name: str,
    server: BenchServer,
    session: aiohttp.ClientSession,
    viewer: str,
    writer: str,
    lanes: list[list[dict[str, Any]]],
    *,
    screens: int,
    logs: list[ScreenLog],
    rate: int,
    batch: int,
) -> tuple[list[PhaseResult], Acks]:
    note(f"{name}: connecting {screens} screens")
    started = time.monotonic()
    screens_open = await connect_screens(session, server.port, viewer, logs)
    connect_s = time.monotonic() - started
    note(f"{name}: {screens} screens connected in {connect_s:.1f} s; sending {rate}/s")
    cpu_before = process_cpu_seconds([server.pid])
    client_before = time.process_time()
    started = time.monotonic()
    acks = await send(session, server.port, writer, lanes, rate=rate, batch=batch)
    elapsed = time.monotonic() - started
    recording = [log for log in logs if log.record]
    if acks.positions:
        await drained(recording, max(acks.positions))
    server_cpu = process_cpu_seconds([server.pid]).get(server.pid, 0.0) - cpu_before.get(
        server.pid, 0.0
    )
    client_cpu = time.process_time() - client_before
    rss, peak = server.memory_mb()
    await screens_open.close()
    results = []
    for topic in sorted({log.topic for log in recording}):
        chosen = [log for log in recording if log.topic == topic]
        samples, missed = latencies(acks, chosen)
        results.append(
            _summary(
                f"{name} ({topic})",
                samples,
                missed,
                acks,
                elapsed,
                screens=screens,
                recording=len(chosen),
                offered_per_s=float(rate),
                server_cpu_s=server_cpu,
                client_cpu_s=client_cpu,
                rss_mb=rss,
                peak_rss_mb=peak,
                connect_s=connect_s,
                extra={
                    "frames": float(sum(log.frames for log in logs)),
                    "spread_p50_ms": percentile(spreads(chosen), 50),
                    "spread_p99_ms": percentile(spreads(chosen), 99),
                },
            )
        )
    if acks.errors:
        note(f"{name}: {acks.errors} batches were not accepted")
    return results, acks


async def _run(options: StreamsOptions, database_url: str, log_path: Path) -> list[PhaseResult]:
    viewer = create_key(database_url, f"bench-viewer-{secrets.token_hex(4)}", "viewer")
    writer = create_key(
        database_url,
        f"bench-writer-{secrets.token_hex(4)}",
        "integration",
        scopes=SCOPES,
    )
    latency_events = int(options.rate * options.seconds) if "latency" in options.phases else 0
    fanout_events = (
        int(options.fanout_rate * options.fanout_seconds) if "fanout" in options.phases else 0
    )
    traffic = Traffic(
        cameras=options.cameras,
        stations=options.stations,
        events=latency_events + fanout_events,
        seed=options.seed,
    )
    # every event is made before the screens connect (nothing else blocks the client then)
    opening = traffic.opening()
    latency_lanes = traffic.lanes(latency_events, LANES) if latency_events else []
    fanout_lanes = traffic.lanes(fanout_events, LANES) if fanout_events else []
    env = {"OPS_CENTER_WS_QUEUE_FRAMES": "64", "REDIS_URL": None}
    server = BenchServer(database_url, log_path, env)
    server.start()
    results: list[PhaseResult] = []
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await server.wait_ready()
            devices = options.cameras + options.stations
            note(f"registering {devices} devices ({len(opening)} events)")
            await send(session, server.port, writer, [opening], rate=1e9, batch=500)
            await asyncio.sleep(2)  # let the projections catch up before measuring
            if "latency" in options.phases:
                probes = min(options.probes, options.screens)
                logs = [
                    ScreenLog("feed" if i % 2 else "overview", record=True) for i in range(probes)
                ]
                logs += [
                    ScreenLog("overview", record=False) for _ in range(options.screens - probes)
                ]
                phase, _ = await _phase(
                    "latency",
                    server,
                    session,
                    viewer,
                    writer,
                    latency_lanes,
                    screens=options.screens,
                    logs=logs,
                    rate=options.rate,
                    batch=options.batch,
                )
                results += phase
            if "fanout" in options.phases:
                logs = [ScreenLog("overview", record=True) for _ in range(options.fanout_screens)]
                phase, _ = await _phase(
                    "fan-out",
                    server,
                    session,
                    viewer,
                    writer,
                    fanout_lanes,
                    screens=options.fanout_screens,
                    logs=logs,
                    rate=options.fanout_rate,
                    batch=max(1, options.fanout_rate // 10),
                )
                results += phase
    finally:
        server.stop()
    return results


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def budgets(results: list[PhaseResult]) -> list[tuple[str, bool]]:
    checks = []
    for r in results:
        if r.name == "latency (feed)":
            checks.append(
                (
                    f"ack-to-frame p50 {r.p50_ms:.1f} ms < {LATENCY_P50_MS:g} ms",
                    r.p50_ms < LATENCY_P50_MS,
                )
            )
            checks.append(
                (
                    f"ack-to-frame p99 {r.p99_ms:.1f} ms < {LATENCY_P99_MS:g} ms",
                    r.p99_ms < LATENCY_P99_MS and r.missed == 0,
                )
            )
        if r.name.startswith("fan-out"):
            checks.append(
                (
                    f"fan-out p99 {r.p99_ms:.1f} ms < {FANOUT_P99_MS:g} ms",
                    r.p99_ms < FANOUT_P99_MS and r.missed == 0,
                )
            )
            checks.append(
                (
                    f"server peak RSS {r.peak_rss_mb:.0f} MB < {FANOUT_MAX_RSS_MB:g} MB",
                    r.peak_rss_mb < FANOUT_MAX_RSS_MB,
                )
            )
    return checks


def format_report(results: list[PhaseResult], where: str) -> str:
    machine = describe_machine()
    rows = [
        [
            r.name,
            f"{r.screens:,}",
            f"{r.recording:,}",
            f"{r.offered_per_s:,.0f}",
            f"{r.achieved_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p90_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.max_ms:.1f}",
            f"{r.extra.get('spread_p99_ms', float('nan')):.1f}",
            f"{r.missed:,}",
            f"{r.server_cpu_s / r.seconds:.2f}" if r.seconds else "-",
            f"{r.client_cpu_s / r.seconds:.2f}" if r.seconds else "-",
            f"{r.peak_rss_mb:.0f}",
            f"{r.connect_s:.1f}",
            f"{r.extra.get('frames', 0) / r.seconds:,.0f}" if r.seconds else "-",
        ]
        for r in results
    ]
    table = format_table(
        [
            "phase",
            "screens",
            "measured",
            "offered/s",
            "acked/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "spread p99",
            "missed",
            "server cores",
            "client cores",
            "peak RSS MB",
            "connect s",
            "frames/s",
        ],
        rows,
    )
    lines = [
        "ops-center bench streams",
        f"machine: {machine.describe()}",
        f"database: {where}",
        "",
        table,
        "",
        "p50/p90/p99/max: from the acknowledgement of a batch to the first frame reaching its",
        "position on each measured screen; spread p99: from the first screen getting a position",
        "to each other screen getting it (the fan-out alone).",
        "",
        "budgets:",
    ]
    lines += [f"  {'ok  ' if ok else 'MISS'} {text}" for text, ok in budgets(results)]
    return "\n".join(lines)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench streams``: run both phases and print the report."""
    from ops_center.embedded.default import database_url

    options = streams_options(args)
    _raise_file_limit(max(options.screens, options.fanout_screens) + 1_000)
    settings, where = bench_settings(args, settings)
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ops-bench-streams-{os.getpid()}.log"
    try:
        with database_url(settings) as server_url, scratch_database(server_url) as url:
            results = asyncio.run(_run(options, url, log_path))
    except BenchError as exc:
        print(f"\nops-center bench streams: {exc}", file=sys.stderr)
        return 1
    print(format_report(results, where), flush=True)
    if options.json_path is not None:
        body = {"results": [asdict(r) for r in results], "budgets": budgets(results)}
        options.json_path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
    return 1 if options.check and not all(ok for _, ok in budgets(results)) else 0
