"""What ``ops-center bench pipeline`` measured: the results, the budgets and the report.

`PipelineResults` is what ``--json`` writes; `judge` checks the pipeline's catch-up (every
projection and the alarm rules) against the budgets of issue 14: at most 40 µs of CPU per
event in the pipeline process and at most 25 µs per event in PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ops_center.runtime.progress import rate_text as rate
from ops_center.tools.bench.meters import LocalCpu
from ops_center.tools.bench.options import PipelineOptions
from ops_center.tools.bench.projections_results import Scan
from ops_center.tools.bench.report import Budget, Judged, Machine, format_table, thousands

# Budgets of issue 14 (docs/BENCHMARKS.md).
PIPELINE_MAX_US: Final = 40.0
POSTGRES_MAX_US: Final = 25.0


@dataclass(frozen=True, slots=True)
class CatchUp:
    """One catch-up from position 0 to the head of the log."""

    label: str
    consumers: list[str]
    #: Log positions followed (the head at the start).
    events: int
    #: Events handed to the consumers, summed over them.
    applied: int
    #: Alarm events in the log at the end (the rules' own; none without the rules).
    alarm_events: int
    seconds: float
    per_s: float
    cpu: LocalCpu
    #: CPU µs per log event: this process (the pipeline), the PostgreSQL server.
    pipeline_us: float
    postgres_us: float
    #: The py-spy profile, when one was recorded.
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineSetup:
    database: str
    server_version: str
    fsync: str
    scratch_database: str
    events: int
    cameras: int
    stations: int
    fill_seconds: float
    #: Whose CPU the PostgreSQL figures are.
    postgres_measured: str
    total_seconds: float = 0.0
    mix: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PipelineResults(Judged):
    """Everything one run measured (what ``--json`` writes)."""

    machine: Machine
    options: PipelineOptions
    setup: PipelineSetup
    scan: Scan
    catch_ups: list[CatchUp]
    budgets: list[Budget]


def judge(
    machine: Machine,
    options: PipelineOptions,
    setup: PipelineSetup,
    scan: Scan,
    catch_ups: list[CatchUp],
) -> PipelineResults:
    """The budgets apply to the first catch-up (the whole pipeline)."""
    budgets = []
    if catch_ups:
        whole = catch_ups[0]
        budgets = [
            Budget(
                f"pipeline CPU per event ({whole.label})",
                f"<= {PIPELINE_MAX_US:.0f} µs",
                f"{whole.pipeline_us:.0f} µs",
                whole.pipeline_us <= PIPELINE_MAX_US,
            ),
            Budget(
                f"PostgreSQL CPU per event ({whole.label})",
                f"<= {POSTGRES_MAX_US:.0f} µs",
                f"{whole.postgres_us:.0f} µs",
                whole.postgres_us <= POSTGRES_MAX_US,
            ),
        ]
    return PipelineResults(machine, options, setup, scan, catch_ups, budgets)


def format_report(r: PipelineResults) -> str:
    """The report printed at the end of a run."""
    s = r.setup
    head = [
        "ops-center bench pipeline",
        f"machine:   {r.machine.describe()}",
        f"database:  PostgreSQL {s.server_version} (fsync {s.fsync}), {s.database}; "
        f"scratch database {s.scratch_database} and a copy per catch-up (dropped); "
        f"PostgreSQL CPU: {s.postgres_measured}",
        f"log:       {thousands(s.events)} events of the simulated province "
        f"({thousands(s.cameras)} cameras, {thousands(s.stations)} stations), recorded as "
        f"ingest records them in {s.fill_seconds:.0f} s; chunks of "
        f"{thousands(r.options.chunk)} events; whole run {s.total_seconds:.0f} s",
    ]
    baseline = r.scan.per_s
    table = format_table(
        [
            "catch-up from 0",
            "log",
            "alarm events",
            "seconds",
            "events/s",
            "/ scan",
            "pipeline µs/ev",
            "postgres µs/ev",
            "others (cores)",
        ],
        [
            [
                "baseline: plain scan",
                thousands(r.scan.events),
                "",
                f"{r.scan.seconds:.1f}",
                rate(r.scan.per_s),
                "1.000x",
                f"{1e6 * r.scan.cpu.client * r.scan.seconds / max(r.scan.events, 1):.1f}",
                f"{1e6 * r.scan.cpu.postgres * r.scan.seconds / max(r.scan.events, 1):.1f}",
                f"{r.scan.cpu.other:.2f}",
            ],
            *(
                [
                    c.label,
                    thousands(c.events),
                    thousands(c.alarm_events),
                    f"{c.seconds:.1f}",
                    rate(c.per_s),
                    f"{c.per_s / baseline:.3f}x",
                    f"{c.pipeline_us:.0f}",
                    f"{c.postgres_us:.0f}",
                    f"{c.cpu.other:.2f}",
                ]
                for c in r.catch_ups
            ),
        ],
        "lrrrrrrrr",
    )
    budgets = format_table(
        ["budget", "target", "measured", ""],
        [[b.name, b.target, b.measured, "ok" if b.passed else "MISSED"] for b in r.budgets],
        "lrrl",
    )
    profiles = [f"profile:   {c.profile}" for c in r.catch_ups if c.profile]
    return "\n".join([*head, "", table, "", budgets, *profiles])
