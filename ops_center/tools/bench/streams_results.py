"""What ``ops-center bench streams`` measured: the results, the budgets and the report.

`StreamsResults` is what ``--json`` writes; `judge` checks it against the budgets of
docs/DESIGN.md §4 (issues 14 and 15); `format_report` is what the run prints on stdout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ops_center.tools.bench.meters import CpuUse, Lag, ProcessMemory
from ops_center.tools.bench.options import StreamsOptions
from ops_center.tools.bench.report import Budget, Judged, Machine, format_table, thousands
from ops_center.tools.loadclients.latency import LatencyStats

# Budgets from docs/DESIGN.md §4.
LATENCY_P50_MS: Final = 15.0
LATENCY_P99_MS: Final = 100.0
FANOUT_P99_MS: Final = 250.0
FANOUT_MAX_RSS_MB: Final = 500.0
#: The topic whose probes the latency budget is judged on (every event enters it).
BUDGET_TOPIC: Final = "feed"
#: The server's process roles, in the order the report lists them.
SERVER_ROLES: Final = ("http", "pipeline", "supervisor", "server")


@dataclass(frozen=True, slots=True)
class TopicFigures:
    """One topic's screens in a phase: `reach` from each acknowledged request to the
    first frame reaching its last position on each recorded screen; `frames`: every
    frame of every screen, from the acknowledgement of the newest event it carries;
    `spread`: from the first screen getting a position to each other one."""

    topic: str
    screens: int
    recorded: int
    reach: LatencyStats
    frames: LatencyStats
    spread: LatencyStats


@dataclass(frozen=True, slots=True)
class PhaseResult:
    name: str
    screens: int
    offered_per_s: float
    #: Events sent, and acknowledged with a position.
    events: int
    acked_events: int
    requests: int
    #: Requests not answered 200.
    failed_requests: int
    seconds: float
    acked_per_s: float
    connect_s: float
    topics: list[TopicFigures]
    #: The server's processes by role, PostgreSQL and this process (the orchestration),
    #: read once the pipeline had applied the phase's events and the screens had them.
    cpu: CpuUse
    #: CPU seconds of the screens' processes and of the sender's over the same time.
    screens_cpu_s: float
    sender_cpu_s: float
    frames: int
    lost: int
    error_frames: int
    memory: list[ProcessMemory]
    lag: Lag
    catch_up_seconds: float
    profile: str | None = None

    def us_per_event(self, seconds: float | None) -> float:
        if seconds is None or not self.acked_events:
            return math.nan
        return seconds * 1e6 / self.acked_events

    def role_seconds(self, role: str) -> float | None:
        cores = self.cpu.roles.get(role)
        return None if cores is None else cores * self.cpu.wall

    @property
    def others_s(self) -> float:
        """Busy CPU of the machine that neither the server, PostgreSQL, the screens, the
        sender nor this process account for."""
        return max(0.0, self.cpu.other * self.cpu.wall - self.screens_cpu_s - self.sender_cpu_s)

    @property
    def node_peak_mb(self) -> float:
        """The server's processes' peaks added up (an upper bound of what they held
        together at any one moment)."""
        return sum(m.peak_mb for m in self.memory)

    def topic(self, name: str) -> TopicFigures | None:
        return next((t for t in self.topics if t.topic == name), None)


@dataclass(frozen=True, slots=True)
class StreamsSetup:
    database: str
    server_version: str
    fsync: str
    synchronous_commit: str
    scratch_database: str
    registrations: int
    registration_seconds: float
    total_seconds: float
    mix: dict[str, int]


@dataclass(frozen=True, slots=True)
class StreamsResults(Judged):
    machine: Machine
    options: StreamsOptions
    setup: StreamsSetup
    phases: list[PhaseResult]
    budgets: list[Budget]


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def judge(
    machine: Machine, options: StreamsOptions, setup: StreamsSetup, phases: list[PhaseResult]
) -> StreamsResults:
    budgets: list[Budget] = []
    for phase in phases:
        if phase.name == "latency" and (probes := phase.topic(BUDGET_TOPIC)) is not None:
            reach = probes.reach
            budgets.append(
                Budget(
                    "ack-to-frame p50 (feed probes)",
                    f"< {LATENCY_P50_MS:.0f} ms",
                    _ms(reach.p50_ms),
                    reach.p50_ms < LATENCY_P50_MS,
                )
            )
            budgets.append(
                Budget(
                    "ack-to-frame p99 (feed probes)",
                    f"< {LATENCY_P99_MS:.0f} ms, none missed",
                    f"{_ms(reach.p99_ms)}, {reach.missed} missed",
                    reach.p99_ms < LATENCY_P99_MS and reach.missed == 0,
                )
            )
        if phase.name == "fan-out" and phase.topics:
            # every frame of every screen: a request whose events change no figure of the
            # overview has no frame of its own (its reach waits for the next change)
            delivered = phase.topics[0].frames
            budgets.append(
                Budget(
                    f"fan-out p99 delivery, every frame ({thousands(phase.screens)} screens)",
                    f"< {FANOUT_P99_MS:.0f} ms",
                    _ms(delivered.p99_ms),
                    delivered.p99_ms < FANOUT_P99_MS and delivered.count > 0,
                )
            )
            budgets.append(
                Budget(
                    "fan-out resident memory, the server's processes together",
                    f"< {FANOUT_MAX_RSS_MB:.0f} MB",
                    f"{phase.node_peak_mb:.0f} MB",
                    phase.node_peak_mb < FANOUT_MAX_RSS_MB,
                )
            )
    return StreamsResults(machine, options, setup, phases, budgets)


def _us(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def format_report(results: StreamsResults) -> str:
    """The report printed at the end of a run."""
    r = results
    s = r.setup
    o = r.options
    head = [
        "ops-center bench streams",
        f"machine:   {r.machine.describe()}",
        f"database:  PostgreSQL {s.server_version}, {s.database}; fsync={s.fsync}, "
        f"synchronous_commit={s.synchronous_commit}; scratch database {s.scratch_database} "
        "(dropped)",
        "server:    "
        + (
            f"ops-center serve --workers {o.workers} ({o.workers} HTTP processes on one port, "
            "a pipeline process publishing through the node's embedded Redis)"
            if o.workers
            else "one process: HTTP with the pipeline inside it, in-process stream bus "
            "(--workers 0)"
        ),
        f"workload:  {thousands(o.cameras)} cameras and {thousands(o.stations)} radio stations "
        f"of the simulated province registered first ({thousands(s.registrations)} events, "
        f"{s.registration_seconds:.1f} s); then its events in batches, open loop",
        "clients:   lean screens (ops_center/tools/loadclients/screens.py) and the lean HTTP "
        "sender, each in processes of their own; whole run "
        f"{s.total_seconds:.0f} s",
    ]
    latency = format_table(
        [
            "phase (topic)",
            "screens",
            "recorded",
            "offered/s",
            "acked/s",
            "reach p50",
            "p99",
            "max",
            "missed",
            "frame p50",
            "p99",
            "spread p99",
        ],
        [
            [
                f"{p.name} ({t.topic})",
                thousands(t.screens),
                thousands(t.recorded),
                thousands(p.offered_per_s),
                thousands(p.acked_per_s),
                f"{t.reach.p50_ms:.1f}",
                f"{t.reach.p99_ms:.1f}",
                f"{t.reach.max_ms:.1f}",
                thousands(t.reach.missed),
                f"{t.frames.p50_ms:.1f}",
                f"{t.frames.p99_ms:.1f}",
                f"{t.spread.p99_ms:.1f}",
            ]
            for p in r.phases
            for t in p.topics
        ],
    )
    roles = [role for role in SERVER_ROLES if any(role in p.cpu.roles for p in r.phases)]
    cpu = format_table(
        [
            "phase",
            *(f"{'supervisor+redis' if role == 'supervisor' else role} us/ev" for role in roles),
            "postgres us/ev",
            "screens us/ev",
            "sender us/ev",
            "other work us/ev",
            "screens us/frame",
            "server cores",
            "pipeline caught up after",
        ],
        [
            [
                p.name,
                *(_us(p.us_per_event(p.role_seconds(role))) for role in roles),
                _us(
                    p.us_per_event(None if p.cpu.postgres is None else p.cpu.postgres * p.cpu.wall)
                ),
                _us(p.us_per_event(p.screens_cpu_s)),
                _us(p.us_per_event(p.sender_cpu_s)),
                _us(p.us_per_event(p.others_s)),
                f"{p.screens_cpu_s * 1e6 / p.frames:.1f}" if p.frames else "-",
                f"{p.cpu.server:.2f}" if p.cpu.server is not None else "-",
                f"{p.catch_up_seconds:.2f} s",
            ]
            for p in r.phases
        ],
    )
    lag = format_table(
        ["phase", "samples", "lag p50 ev", "p99 ev", "max ev", "lag p50 ms", "p99 ms", "max ms"],
        [
            [
                p.name,
                thousands(p.lag.samples),
                f"{p.lag.p50_events:,.0f}",
                f"{p.lag.p99_events:,.0f}",
                thousands(p.lag.max_events),
                f"{p.lag.p50_ms:.0f}",
                f"{p.lag.p99_ms:.0f}",
                f"{p.lag.max_ms:.0f}",
            ]
            for p in r.phases
        ],
    )
    memory = format_table(
        ["phase", "process", "pid", "RSS MB", "peak MB"],
        [
            [p.name, f"{m.role} ({m.name})", str(m.pid), f"{m.rss_mb:.0f}", f"{m.peak_mb:.0f}"]
            for p in r.phases
            for m in p.memory
        ]
        + [
            [p.name, "the server's processes together", "", "", f"{p.node_peak_mb:.0f}"]
            for p in r.phases
        ],
        align="llrrr",
    )
    budgets = format_table(
        ["budget", "target", "measured", "result"],
        [[b.name, b.target, b.measured, "PASS" if b.passed else "FAIL"] for b in r.budgets],
    )
    checks = [
        f"{p.name}: {thousands(p.acked_events)} of {thousands(p.events)} events acknowledged "
        f"in {thousands(p.requests)} requests ({p.failed_requests} failed) over "
        f"{p.seconds:.1f} s; {thousands(p.screens)} screens connected in {p.connect_s:.1f} s, "
        f"{thousands(p.frames)} frames, {p.lost} connections lost, {p.error_frames} error frames"
        for p in r.phases
    ]
    profiles = [f"profile ({p.name}): {p.profile}" for p in r.phases if p.profile]
    return "\n\n".join(
        [
            "\n".join(head),
            "\n".join(checks),
            "latency in ms: reach = from a request's acknowledgement to the first frame reaching\n"
            "its last event on each recorded screen; frame = every frame of every screen, from\n"
            "the acknowledgement of the newest event it carries; spread = from the first screen\n"
            "getting a change to each other one (the fan-out alone)\n" + latency,
            "CPU per acknowledged event by process (µs), read once the pipeline had applied the\n"
            "phase's events and the screens had them\n" + cpu,
            "the pipeline's lag behind the log during each phase (sampled every 0.1 s; ms: how\n"
            "long the oldest acknowledged event it had not applied had waited)\n" + lag,
            "resident memory of the server's processes (peak: since the phase started)\n" + memory,
            budgets,
            *(["\n".join(profiles)] if profiles else []),
        ]
    )
