"""What ``ops-center bench ingest`` measured: the results, the budgets and the report.

`IngestResults` is what ``--json`` writes; `judge` checks it against the budgets of
docs/DESIGN.md §4; `format_report` is what the run prints on stdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ops_center.runtime.progress import rate_text as rate
from ops_center.tools.bench.baselines import BaselineResult
from ops_center.tools.bench.meters import CpuUse
from ops_center.tools.bench.options import IngestOptions
from ops_center.tools.bench.report import (
    Budget,
    Judged,
    Machine,
    format_table,
    percentile,
    thousands,
)
from ops_center.tools.bench.wrk import WrkReport

#: Cores used by other processes above which the report warns that figures are skewed.
BUSY_MACHINE_CORES: Final = 0.2

# Budgets from docs/DESIGN.md §4.
BATCHED_MIN_EVENTS_PER_S: Final = 20_000.0
BATCHED_MIN_COPY_RATIO: Final = 0.1
SINGLE_MIN_REQUESTS_PER_S: Final = 3_000.0
SINGLE_MAX_P99_MS: Final = 50.0


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
    #: The one-process server's group-commit writer (None for a node: its HTTP processes
    #: each have their own).
    writer: WriterUse | None
    profile: str | None = None
    #: Seconds after the last acknowledgement until the pipeline had applied every event.
    catch_up_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class WrkResult:
    """The single-event phase sent again by ``wrk`` (C), with the node's CPU meanwhile."""

    connections: int
    events: int
    report: WrkReport
    cpu: CpuUse
    catch_up_seconds: float

    @property
    def label(self) -> str:
        return "wrk single (C client)"


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
    #: Events of each type sent in the measured phases (batched and single).
    mix: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestResults(Judged):
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
    #: None when the run had no wrk phase (``--wrk-requests 0``, or wrk not installed).
    wrk: WrkResult | None = None


def judge(
    machine: Machine,
    options: IngestOptions,
    setup: Setup,
    batched: HttpResult,
    single: HttpResult,
    naive: BaselineResult,
    copy: BaselineResult,
    wrk: WrkResult | None = None,
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
        wrk=wrk,
    )


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(results: IngestResults) -> str:
    """The report printed at the end of a run."""
    r = results
    s = r.setup
    sent = sum(s.mix.values()) or 1
    mix = ", ".join(
        f"{name} {count / sent:.0%}"
        for name, count in sorted(s.mix.items(), key=lambda item: -item[1])
        if count / sent >= 0.005
    )
    head = [
        "ops-center bench ingest",
        f"machine:   {r.machine.describe()}",
        f"database:  PostgreSQL {s.server_version}, {s.database}; fsync={s.fsync}, "
        f"synchronous_commit={s.synchronous_commit}; scratch database {s.scratch_database} "
        "(dropped)",
        f"workload:  {thousands(r.options.cameras)} cameras and {thousands(r.options.stations)} "
        f"radio stations of the simulated province registered first with their status, "
        f"and its indicators ({thousands(s.registrations)} events, "
        f"{s.registration_seconds:.1f} s); then its events: {mix}",
        "server:    "
        + (
            f"ops-center serve --workers {r.options.workers} ({r.options.workers} HTTP "
            "processes on one port, a pipeline process, the node's embedded Redis)"
            if r.options.workers
            else "one process: HTTP with the pipeline inside it (--workers 0)"
        ),
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
            *(
                [
                    [
                        f"wrk single, C client ({r.wrk.connections} connections, cross-check)",
                        thousands(r.wrk.events),
                        thousands(r.wrk.report.requests),
                        f"{r.wrk.report.seconds:.2f}",
                        f"{rate(r.wrk.report.requests_per_s)} requests/s",
                        f"{r.wrk.report.p50_ms:.1f}",
                        f"{r.wrk.report.p99_ms:.1f}",
                        "",
                    ]
                ]
                if r.wrk is not None
                else []
            ),
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

    def us(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    def writer(h: HttpResult) -> list[str]:
        if h.writer is None:
            return ["-", "-", "-"]
        return [
            thousands(h.writer.transactions),
            f"{h.writer.mean_events:.1f}",
            f"{h.writer.busy:.0%}",
        ]

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
                us(h.cpu.per_event_us(h.cpu.server, h.events)),
                us(h.cpu.per_event_us(h.cpu.postgres, h.events)),
                *writer(h),
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
                us(x.cpu.per_event_us(x.cpu.postgres, x.count)),
                "",
                "",
                "",
            ]
            for x in (naive, copy)
        ],
    )
    measured: list[HttpResult | WrkResult] = [b, one, *([r.wrk] if r.wrk else [])]
    role_names = sorted({role for h in measured for role in h.cpu.roles})
    per_process = format_table(
        [
            "phase",
            *(f"{role} us/ev" for role in role_names),
            "postgres us/ev",
            "client us/ev",
            "pipeline caught up after",
        ],
        [
            [
                h.label,
                *(us(h.cpu.per_event_us(h.cpu.roles.get(role), h.events)) for role in role_names),
                us(h.cpu.per_event_us(h.cpu.postgres, h.events)),
                us(h.cpu.per_event_us(h.cpu.client, h.events)),
                f"{h.catch_up_seconds:.1f} s",
            ]
            for h in measured
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
            "client (this process), the server's processes, PostgreSQL (this database's backends\n"
            "and the server's background processes) and others (other processes, kernel threads);\n"
            "CPU time per event in microseconds; writer busy = share of the phase spent recording\n"
            "transactions\n" + where,
            "CPU per event by process (the node's processes by role; single: per request), "
            "read once the\npipeline had applied the phase's events\n" + per_process,
            *warning,
            *(["\n".join(profiles)] if profiles else []),
        ]
    )
