"""``ops-center bench streams``: live streams measured from acknowledgement to screen.

One server process (``python -m ops_center.tools.bench.server``, in-process stream bus) on a
scratch database; the screens and the sender run in this process, over real WebSockets
and HTTP. Two phases, each checked against the budgets of docs/DESIGN.md §4:

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
import bisect
import os
import resource
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

from ops_center.access.keystore import create_key
from ops_center.embedded.postgres import free_port
from ops_center.province.profile import load_profile
from ops_center.settings import Settings
from ops_center.tools.bench import DEFAULT_DATA_DIR
from ops_center.tools.bench.ingest import BenchError, redact, scratch_database
from ops_center.tools.bench.report import (
    describe_machine,
    format_table,
    note,
    percentile,
    process_cpu_seconds,
)
from ops_center.tools.bench.workload import Workload, split

HOST: Final = "127.0.0.1"
BATCH: Final = "application/cloudevents-batch+json"
SERVER_START_TIMEOUT: Final = 90.0
#: Concurrent WebSocket handshakes while screens connect.
CONNECT_CONCURRENCY: Final = 100
#: Sender connections (each sends its lane of events in order).
LANES: Final = 8
#: Seconds to wait for the last frames once the sender stopped.
DRAIN_SECONDS: Final = 10.0

# Budgets from docs/DESIGN.md §4.
LATENCY_P50_MS: Final = 15.0
LATENCY_P99_MS: Final = 100.0
FANOUT_P99_MS: Final = 250.0
FANOUT_MAX_RSS_MB: Final = 500.0


@dataclass(frozen=True, slots=True)
class StreamsOptions:
    """What to measure; the defaults are the documented benchmark (about two minutes)."""

    screens: int = 500
    probes: int = 20
    rate: int = 2_000
    batch: int = 20
    seconds: float = 20.0
    fanout_screens: int = 5_000
    fanout_rate: int = 200
    fanout_seconds: float = 20.0
    cameras: int = 2_000
    stations: int = 500
    seed: int = 2026
    phases: tuple[str, ...] = ("latency", "fanout")
    json_path: Path | None = None
    check: bool = False


# -- the server process --------------------------------------------------------------------


class StreamsServer:
    """The benchmark server on a free port with the given extra environment."""

    def __init__(self, database_url: str, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._env = {**os.environ, "DATABASE_URL": database_url, **env}
        self._env.pop("REDIS_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ops_center.tools.bench.server", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BenchError(f"the server exited; see {self.log_path}")
            try:
                async with session.get(f"http://{HOST}:{self.port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise BenchError(f"the server did not start in {SERVER_START_TIMEOUT:.0f} s")

    def memory_mb(self) -> tuple[float, float]:
        """Resident memory now and at its peak (VmRSS, VmHWM), in MB."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
        return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- screens and sender ---------------------------------------------------------------------


@dataclass(slots=True)
class ScreenLog:
    """Frames a screen received: positions and arrival times (monotonic seconds)."""

    topic: str
    record: bool
    positions: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    frames: int = 0

    def reached(self, position: int) -> float | None:
        """When the first frame at or after `position` arrived."""
        i = bisect.bisect_left(self.positions, position)
        return self.times[i] if i < len(self.positions) else None


@dataclass(slots=True)
class Screens:
    """Connected screens: their sockets and the tasks reading them."""

    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def _read(ws: aiohttp.ClientWebSocketResponse, log: ScreenLog) -> None:
    async for message in ws:
        now = time.monotonic()
        log.frames += 1
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        frame = orjson.loads(message.data)
        if frame.get("op") == "snapshot":
            log.snapshot.set()
        if log.record and frame.get("op") == "delta":
            log.positions.append(frame["position"])
            log.times.append(now)


async def connect_screens(
    session: aiohttp.ClientSession, port: int, token: str, logs: list[ScreenLog]
) -> Screens:
    """Connect one screen per log, each subscribed to its topic; return once every one
    received its snapshot."""
    url = f"ws://{HOST}:{port}/ws"
    headers = {"Authorization": f"Bearer {token}"}
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    screens = Screens()

    async def one(log: ScreenLog) -> None:
        async with gate:
            ws = await session.ws_connect(url, headers=headers, max_msg_size=0)
        await ws.send_str(f'{{"op": "subscribe", "topic": "{log.topic}"}}')
        screens.sockets.append(ws)
        screens.readers.append(asyncio.create_task(_read(ws, log)))

    await asyncio.gather(*(one(log) for log in logs))
    await asyncio.gather(*(log.snapshot.wait() for log in logs))
    return screens


@dataclass(slots=True)
class Acks:
    """Acknowledged batches: when, and the position of their last event."""

    times: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    events: int = 0
    errors: int = 0


async def send(
    session: aiohttp.ClientSession,
    port: int,
    token: str,
    lanes: list[list[dict[str, Any]]],
    *,
    rate: float,
    batch: int,
) -> Acks:
    """Send every lane's events in batches, together at `rate` events per second."""
    acks = Acks()
    url = f"http://{HOST}:{port}/api/v1/events"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": BATCH}
    per_lane = rate / max(1, len(lanes))

    async def lane(index: int, events: list[dict[str, Any]]) -> None:
        # lanes are staggered so that the offered load is even, not in bursts
        started = time.monotonic() + index * batch / per_lane / max(1, len(lanes))
        for sent in range(0, len(events), batch):
            chunk = events[sent : sent + batch]
            due = started + sent / per_lane
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            async with session.post(url, data=orjson.dumps(chunk), headers=headers) as response:
                body = await response.read()
            now = time.monotonic()
            if response.status != 200:
                acks.errors += 1
                continue
            results = orjson.loads(body)["results"]
            positions = [r["position"] for r in results if "position" in r]
            if positions:
                acks.times.append(now)
                acks.positions.append(max(positions))
                acks.events += len(chunk)

    await asyncio.gather(*(lane(i, events) for i, events in enumerate(lanes)))
    return acks


def latencies(acks: Acks, logs: list[ScreenLog]) -> tuple[list[float], int]:
    """Milliseconds from each acknowledgement to each screen's frame reaching it, and how
    many (batch, screen) pairs never got there."""
    samples: list[float] = []
    missed = 0
    for log in logs:
        for acked, position in zip(acks.times, acks.positions, strict=True):
            arrived = log.reached(position)
            if arrived is None:
                missed += 1
            else:
                samples.append(max(0.0, arrived - acked) * 1000)
    return samples, missed


def spreads(logs: list[ScreenLog]) -> list[float]:
    """Milliseconds from the first screen receiving a position to each other screen
    receiving it: the cost of the fan-out itself, without the way to the first screen."""
    first: dict[int, float] = {}
    for log in logs:
        for position, arrived in zip(log.positions, log.times, strict=True):
            if arrived < first.get(position, float("inf")):
                first[position] = arrived
    return [
        (arrived - first[position]) * 1000
        for log in logs
        for position, arrived in zip(log.positions, log.times, strict=True)
    ]


async def drained(logs: list[ScreenLog], position: int) -> None:
    """Wait (bounded) until every recording screen reached `position`."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        if all(log.positions and log.positions[-1] >= position for log in logs):
            return
        await asyncio.sleep(0.05)


# -- the run ---------------------------------------------------------------------------------


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


def _lanes(workload: Workload, total: int) -> list[list[dict[str, Any]]]:
    return [workload.lane(f"s{i}-", n) for i, n in enumerate(split(total, LANES)) if n]


async def _phase(
    name: str,
    server: StreamsServer,
    session: aiohttp.ClientSession,
    viewer: str,
    writer: str,
    workload: Workload,
    *,
    screens: int,
    logs: list[ScreenLog],
    rate: int,
    batch: int,
    seconds: float,
) -> tuple[list[PhaseResult], Acks]:
    note(f"{name}: connecting {screens} screens")
    started = time.monotonic()
    screens_open = await connect_screens(session, server.port, viewer, logs)
    connect_s = time.monotonic() - started
    note(f"{name}: {screens} screens connected in {connect_s:.1f} s; sending {rate}/s")
    cpu_before = process_cpu_seconds([server.pid])
    client_before = time.process_time()
    started = time.monotonic()
    acks = await send(
        session,
        server.port,
        writer,
        _lanes(workload, int(rate * seconds)),
        rate=rate,
        batch=batch,
    )
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
        scopes=("camera.*", "radio.*", "dossier.*"),
    )
    server = StreamsServer(database_url, log_path, {"OPS_CENTER_WS_QUEUE_FRAMES": "64"})
    server.start()
    results: list[PhaseResult] = []
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await server.wait_ready(session)
            workload = Workload(
                load_profile(None),
                cameras=options.cameras,
                stations=options.stations,
                seed=options.seed,
            )
            note(f"registering {options.cameras + options.stations} devices")
            await send(
                session, server.port, writer, [workload.registrations()], rate=1e9, batch=500
            )
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
                    workload,
                    screens=options.screens,
                    logs=logs,
                    rate=options.rate,
                    batch=options.batch,
                    seconds=options.seconds,
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
                    workload,
                    screens=options.fanout_screens,
                    logs=logs,
                    rate=options.fanout_rate,
                    batch=max(1, options.fanout_rate // 10),
                    seconds=options.fanout_seconds,
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


def add_streams_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ops-center bench streams``."""
    defaults = StreamsOptions()
    for name, kind, what in (
        ("screens", int, "screens connected in the latency phase"),
        ("probes", int, "of those, screens recording every frame (half feed, half overview)"),
        ("rate", int, "events per second offered in the latency phase"),
        ("batch", int, "events per request in the latency phase"),
        ("seconds", float, "length of the latency phase"),
        ("fanout_screens", int, "screens connected in the fan-out phase"),
        ("fanout_rate", int, "events per second offered in the fan-out phase"),
        ("fanout_seconds", float, "length of the fan-out phase"),
        ("cameras", int, "cameras registered first"),
        ("stations", int, "radio stations registered first"),
        ("seed", int, "seed of the generated events"),
    ):
        default = getattr(defaults, name)
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=f"{what} ({default})"
        )
    parser.add_argument(
        "--phase",
        action="append",
        choices=["latency", "fanout"],
        help="run only this phase (repeatable; default both)",
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")


def options_from_args(args: argparse.Namespace) -> StreamsOptions:
    return StreamsOptions(
        screens=args.screens,
        probes=args.probes,
        rate=args.rate,
        batch=args.batch,
        seconds=args.seconds,
        fanout_screens=args.fanout_screens,
        fanout_rate=args.fanout_rate,
        fanout_seconds=args.fanout_seconds,
        cameras=args.cameras,
        stations=args.stations,
        seed=args.seed,
        phases=tuple(args.phase or ("latency", "fanout")),
        json_path=args.json_path,
        check=args.check,
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``ops-center bench streams``: run both phases and print the report."""
    from ops_center.embedded.default import database_url

    options = options_from_args(args)
    _raise_file_limit(max(options.screens, options.fanout_screens) + 1_000)
    data_dir: Path = getattr(args, "data_dir", None) or DEFAULT_DATA_DIR
    settings = settings.replace(data_dir=data_dir)
    where = (
        f"DATABASE_URL {redact(settings.database_url)}"
        if settings.database_url
        else f"embedded in {data_dir}"
    )
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
