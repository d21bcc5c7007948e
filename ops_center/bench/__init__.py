"""``ops-center bench``: performance measured side by side with baselines in one run."""

from __future__ import annotations

import argparse

from ops_center.settings import Settings


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", required=True)
    sub.add_parser("ingest", help="HTTP ingest vs naive library use vs raw COPY")


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    raise SystemExit("ops-center bench: not built yet")
