"""``ops-center bench``: performance measured side by side with baselines in one run.

Each benchmark creates its own scratch database on the configured server (``DATABASE_URL``,
or an embedded PostgreSQL in ``--data-dir``, by default ``.ops-center-bench`` so that a real
data folder is never touched) and drops it at the end. Progress goes to stderr, the report
to stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ops_center.settings import Settings


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommands and their options (imports nothing heavy)."""
    sub = parser.add_subparsers(dest="bench_command", required=True)
    ingest = sub.add_parser(
        "ingest",
        help="HTTP ingest vs naive library use vs raw COPY",
        description="Measure HTTP ingest (batched and single events, durable acks) beside "
        "the eventsourcing library used naively and raw PostgreSQL COPY, in one run on a "
        "fresh database, and check the performance budgets.",
    )
    ingest.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="folder of the embedded PostgreSQL (default ./.ops-center-bench); "
        "ignored when DATABASE_URL is set",
    )
    from ops_center.bench.options import add_ingest_arguments

    add_ingest_arguments(ingest)


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen benchmark; returns the process exit code."""
    if args.bench_command == "ingest":
        from ops_center.bench.ingest import main

        return main(args, settings)
    raise SystemExit(f"ops-center bench: unknown benchmark {args.bench_command!r}")
