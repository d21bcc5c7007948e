"""Options of ``ops-center bench ingest`` (kept apart so that building the CLI is cheap)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

#: The numeric options and what they count, in the order ``--help`` lists them.
_COUNTS = (
    ("events", "events sent in batches in the measured phase"),
    ("batch_size", "events per batch request"),
    ("connections", "concurrent connections sending batches"),
    ("single_requests", "single-event requests"),
    ("single_clients", "single-event requests in flight (one per client connection)"),
    ("naive_events", "events saved one by one with the eventsourcing library"),
    ("cameras", "cameras registered before the measured phases"),
    ("stations", "radio stations registered before the measured phases"),
)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """What to measure; the defaults are the documented benchmark (one to two minutes)."""

    events: int = 200_000
    batch_size: int = 250
    connections: int = 8
    single_requests: int = 20_000
    single_clients: int = 64
    naive_events: int = 3_000
    cameras: int = 2_000
    stations: int = 500
    seed: int = 2026
    json_path: Path | None = None
    profile_dir: Path | None = None
    profile_format: str = "flamegraph"
    check: bool = False

    def __post_init__(self) -> None:
        for name, _ in _COUNTS:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")


def _count(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ops-center bench ingest``."""
    defaults = IngestOptions()
    for name, what in _COUNTS:
        default = getattr(defaults, name)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_count,
            default=default,
            metavar="N",
            help=f"{what} (default {default:,})",
        )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the generated workload"
    )
    parser.add_argument(
        "--json", type=Path, dest="json_path", metavar="PATH", help="also write results as JSON"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        dest="profile_dir",
        metavar="DIR",
        help="record the server process with py-spy during each HTTP phase, into DIR "
        "(needs py-spy: pip install py-spy)",
    )
    parser.add_argument(
        "--profile-format",
        choices=["flamegraph", "speedscope", "raw"],
        default=defaults.profile_format,
        help="py-spy output format (default flamegraph: an SVG per phase)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a budget is not met"
    )


def options_from_args(args: argparse.Namespace) -> IngestOptions:
    """The options parsed by `add_ingest_arguments`."""
    return IngestOptions(
        events=args.events,
        batch_size=args.batch_size,
        connections=args.connections,
        single_requests=args.single_requests,
        single_clients=args.single_clients,
        naive_events=args.naive_events,
        cameras=args.cameras,
        stations=args.stations,
        seed=args.seed,
        json_path=args.json_path,
        profile_dir=args.profile_dir,
        profile_format=args.profile_format,
        check=args.check,
    )
