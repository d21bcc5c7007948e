"""``ops-center bench``: performance measured side by side with baselines in one run.

Each benchmark creates its own scratch database on the configured server (``DATABASE_URL``,
or an embedded PostgreSQL in ``--data-dir``, by default ``.ops-center-bench`` so that a real
data folder is never touched) and drops it at the end. The events are the simulated
province's (`ops_center.tools.simulator.traffic`), sized by the options. Progress goes to
stderr (`ops_center.runtime.progress`), the report to stdout.

Modules: `options` (every benchmark's options; cheap to import), `harness` (the scratch
database, the server process, the profiler), `client` (a minimal HTTP client), `server`
(the server process itself), `meters` (counts, positions, CPU time), `report` (percentiles,
tables, the machine, budgets); then per benchmark: `ingest` with `ingest_results` and
`baselines`; `projections` with `fill`, `queries` and `projections_results`; `streams` with
`streams_results` (its clients are the lean ones of `ops_center.tools.loadclients`);
`pipeline` with `pipeline_results` (the pipeline alone, catching up).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ops_center.settings import Settings

#: Where the benchmarks' embedded PostgreSQL lives unless ``--data-dir`` says otherwise.
DEFAULT_DATA_DIR: Final = Path(".ops-center-bench")


def data_options() -> argparse.ArgumentParser:
    """``--data-dir`` of the benchmarks, a parent parser for every level of ``bench``.

    Its default is suppressed, so the option may be written before or after the
    benchmark's name (``bench --data-dir DIR ingest`` or ``bench ingest --data-dir DIR``)
    without an inner level overwriting the outer value; unset, the benchmarks use
    `DEFAULT_DATA_DIR` (never the server's own data folder).
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help=f"folder of the embedded PostgreSQL (default ./{DEFAULT_DATA_DIR}); "
        "ignored when DATABASE_URL is set",
    )
    return options


def add_bench_arguments(
    parser: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """The ``bench`` subcommands and their options (imports nothing heavy).

    `parents` (the options shared by every level of the command line) are added to each
    benchmark, with the benchmarks' ``--data-dir``.
    """
    every = [*parents, data_options()]
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    ingest = sub.add_parser(
        "ingest",
        parents=every,
        help="HTTP ingest vs naive library use vs raw COPY",
        description="Measure HTTP ingest (batched and single events, durable acks) beside "
        "the eventsourcing library used naively and raw PostgreSQL COPY, in one run on a "
        "fresh database, and check the performance budgets.",
    )
    from ops_center.tools.bench.options import add_ingest_arguments

    add_ingest_arguments(ingest)
    projections = sub.add_parser(
        "projections",
        parents=every,
        help="projection rebuild and leaders' query latency vs plain scan and SELECT 1",
        description="Fill a fresh database with the simulated province's events (exactly as "
        "ingest records them), then measure the rebuild rate of all projections together "
        "and each alone beside a plain scan of the log, and the latency of every leaders' "
        "query beside SELECT 1, and check the performance budgets.",
    )
    from ops_center.tools.bench.options import add_projections_arguments

    add_projections_arguments(projections)
    streams = sub.add_parser(
        "streams",
        parents=every,
        help="acknowledgement-to-frame latency and WebSocket fan-out",
        description="Start a server on a fresh database, connect hundreds or thousands of "
        "WebSocket screens, offer events over HTTP and measure the time from each "
        "acknowledgement to the frames that show it, and the server's memory, against the "
        "performance budgets.",
    )
    from ops_center.tools.bench.options import add_streams_arguments

    add_streams_arguments(streams)
    pipeline = sub.add_parser(
        "pipeline",
        parents=every,
        help="the event pipeline's CPU per event, catching up, vs plain scan",
        description="Fill a fresh database with the simulated province's events, then "
        "follow its log from position 0 with every projection and the alarm rules (and "
        "each side alone, on copies of the same database) and report events/s and the CPU "
        "of the pipeline and of PostgreSQL per event beside a plain scan of the log, "
        "against the budgets of the event pipeline.",
    )
    from ops_center.tools.bench.options import add_pipeline_arguments

    add_pipeline_arguments(pipeline)


#: Defaults of ``bench projections`` (`ops_center.tools.bench.options.ProjectionsOptions`).
PROJECTIONS_EVENTS = 1_000_000
PROJECTIONS_ROUNDS = 200
PROJECTIONS_SEED = 7


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen benchmark; returns the process exit code."""
    if args.bench_command == "ingest":
        from ops_center.tools.bench.ingest import main

        return main(args, settings)
    if args.bench_command == "projections":
        from ops_center.tools.bench.projections import main as projections_main

        return projections_main(args, settings)
    if args.bench_command == "streams":
        from ops_center.tools.bench.streams import main as streams_main

        return streams_main(args, settings)
    if args.bench_command == "pipeline":
        from ops_center.tools.bench.pipeline import main as pipeline_main

        return pipeline_main(args, settings)
    raise SystemExit(f"ops-center bench: unknown benchmark {args.bench_command!r}")
