"""What ``ops-center bench projections`` measured: the results, the budgets and the report.

`ProjectionsResults` is what ``--json`` writes; `judge` checks it against the budgets of
docs/DESIGN.md §4 (rebuild at least 50,000 events/s for all projections together, every
query p99 under 20 ms); `format_report` is what the run prints on stdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ops_center.runtime.progress import rate_text as rate
from ops_center.tools.bench.meters import LocalCpu
from ops_center.tools.bench.options import ProjectionsOptions
from ops_center.tools.bench.queries import WARMUP, QueryTiming
from ops_center.tools.bench.report import Budget, Judged, Machine, format_table, thousands

# Budgets from docs/DESIGN.md §4.
REBUILD_MIN_EVENTS_PER_S: Final = 50_000.0
QUERY_MAX_P99_MS: Final = 20.0
#: The most that writing checkpoints may cost the rebuild of all projections (issue 18).
CHECKPOINTS_MAX_COST: Final = 0.10


@dataclass(frozen=True, slots=True)
class Scan:
    """The baseline: reading the whole log in position order with a plain cursor."""

    events: int
    seconds: float
    per_s: float
    cpu: LocalCpu


@dataclass(frozen=True, slots=True)
class Rebuild:
    """A rebuild from position 0: which projections, how fast, and where the time went."""

    label: str
    projections: list[str]
    events: int
    applied: int
    seconds: float
    per_s: float
    cpu: LocalCpu


@dataclass(frozen=True, slots=True)
class Setup:
    database: str
    server_version: str
    scratch_database: str
    events: int
    rejected: int
    cameras: int
    stations: int
    fill_seconds: float
    dossiers: int
    vacuum_seconds: float
    total_seconds: float = 0.0
    #: Events of each type in the log.
    mix: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProjectionsResults(Judged):
    """Everything one run measured (what ``--json`` writes)."""

    machine: Machine
    options: ProjectionsOptions
    setup: Setup
    scan: Scan
    together: Rebuild
    alone: list[Rebuild]
    queries: list[QueryTiming]
    budgets: list[Budget]
    #: All projections together without checkpoints (what checkpoints cost).
    no_checkpoints: Rebuild | None = None


def judge(
    machine: Machine,
    options: ProjectionsOptions,
    setup: Setup,
    scan: Scan,
    together: Rebuild,
    alone: list[Rebuild],
    queries: list[QueryTiming],
    no_checkpoints: Rebuild | None = None,
) -> ProjectionsResults:
    budgets = [
        Budget(
            "rebuild, all projections together",
            f">= {thousands(REBUILD_MIN_EVENTS_PER_S)} events/s",
            f"{thousands(together.per_s)} events/s",
            together.per_s >= REBUILD_MIN_EVENTS_PER_S,
        ),
        *(
            [
                Budget(
                    "checkpoints' cost to that rebuild",
                    f"<= {CHECKPOINTS_MAX_COST:.0%}",
                    f"{1 - together.per_s / no_checkpoints.per_s:.1%}",
                    together.per_s >= (1 - CHECKPOINTS_MAX_COST) * no_checkpoints.per_s,
                )
            ]
            if no_checkpoints is not None
            else []
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
    return ProjectionsResults(
        machine, options, setup, scan, together, alone, queries, budgets, no_checkpoints
    )


def format_report(r: ProjectionsResults) -> str:
    """The report printed at the end of a run."""
    s = r.setup
    head = [
        "ops-center bench projections",
        f"machine:   {r.machine.describe()}",
        f"database:  PostgreSQL {s.server_version}, {s.database}; scratch database "
        f"{s.scratch_database} (dropped)",
        f"log:       {thousands(s.events)} events of the simulated province "
        f"({thousands(s.cameras)} cameras, {thousands(s.stations)} stations, "
        f"{thousands(s.dossiers)} dossiers), "
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
            *([row(r.no_checkpoints)] if r.no_checkpoints is not None else []),
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
    if r.no_checkpoints is not None:
        phases.append(r.no_checkpoints)
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
