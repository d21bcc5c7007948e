"""Options of the benchmarks: what each measures, and its command-line options.

Kept apart from the benchmarks so that building the command line is cheap (nothing here
imports the product). The defaults are the documented runs of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from ops_center.tools.bench import PROJECTIONS_EVENTS, PROJECTIONS_ROUNDS, PROJECTIONS_SEED

# -- bench ingest ----------------------------------------------------------------------

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
    #: HTTP processes of the node under test (``ops-center serve --workers``, with its
    #: pipeline process); 0: one process doing everything, the pipeline inside it.
    workers: int = os.cpu_count() or 1
    #: Single-event requests sent again by ``wrk`` (the C client's cross-check); 0: none.
    wrk_requests: int = 20_000

    def __post_init__(self) -> None:
        for name, _ in _COUNTS:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.workers < 0:
            raise ValueError("--workers must be 0 or more")
        if self.wrk_requests < 0:
            raise ValueError("--wrk-requests must be 0 or more")


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
    _add_run_arguments(parser, defaults.seed)
    add_node_arguments(parser, defaults.workers, defaults.profile_format)
    parser.add_argument(
        "--wrk-requests",
        type=int,
        default=defaults.wrk_requests,
        metavar="N",
        help="single-event requests sent again with Debian's wrk, a C client, to cross-check "
        f"the Python client's figures (default {defaults.wrk_requests:,}; 0: no wrk phase)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser, seed: int | None) -> None:
    """What every benchmark takes: ``--seed`` of the simulated province (when it has one
    here), ``--json PATH`` and ``--check``."""
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed, help="seed of the simulated province")
    parser.add_argument(
        "--json", type=Path, dest="json_path", metavar="PATH", help="also write results as JSON"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a budget is not met"
    )


def _add_profile_arguments(
    parser: argparse.ArgumentParser, what: str, profile_format: str = "flamegraph"
) -> None:
    """``--profile DIR`` and ``--profile-format``: py-spy recording `what`."""
    parser.add_argument(
        "--profile",
        type=Path,
        dest="profile_dir",
        metavar="DIR",
        help=f"record {what} with py-spy, into DIR (needs py-spy: pip install py-spy)",
    )
    parser.add_argument(
        "--profile-format",
        choices=["flamegraph", "speedscope", "raw"],
        default=profile_format,
        help=f"py-spy output format (default {profile_format})",
    )


def add_node_arguments(parser: argparse.ArgumentParser, workers: int, profile_format: str) -> None:
    """``--profile``, ``--profile-format`` and ``--workers``: the node under test and its
    profile (``bench ingest`` and ``bench streams``)."""
    _add_profile_arguments(
        parser, "the server's processes during each measured phase", profile_format
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=workers,
        metavar="N",
        help="HTTP processes of the node under test, run as `ops-center serve --workers N` "
        f"with its pipeline process and Redis (default {workers}, the cores); 0: one "
        "process with the pipeline inside it",
    )


def ingest_options(args: argparse.Namespace) -> IngestOptions:
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
        workers=args.workers,
        wrk_requests=args.wrk_requests,
    )


# -- bench projections ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectionsOptions:
    """What to measure; the defaults are the documented benchmark."""

    events: int = PROJECTIONS_EVENTS
    rounds: int = PROJECTIONS_ROUNDS
    seed: int = PROJECTIONS_SEED
    json_path: Path | None = None
    check: bool = False

    def __post_init__(self) -> None:
        if self.events < 1_000:
            raise ValueError("--events must be at least 1,000")
        if self.rounds < 1:
            raise ValueError("--rounds must be at least 1")


def add_projections_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ops-center bench projections`` (the module is imported on use)."""
    parser.add_argument(
        "--events",
        type=_count,
        default=PROJECTIONS_EVENTS,
        metavar="N",
        help=f"events in the log (default {PROJECTIONS_EVENTS:,}; the budget run: 10,000,000)",
    )
    parser.add_argument(
        "--rounds",
        type=_count,
        default=PROJECTIONS_ROUNDS,
        metavar="R",
        help=f"timed runs of each query (default {PROJECTIONS_ROUNDS})",
    )
    _add_run_arguments(parser, PROJECTIONS_SEED)


def projections_options(args: argparse.Namespace) -> ProjectionsOptions:
    """The options parsed by `add_projections_arguments` (`ValueError` if out of range)."""
    return ProjectionsOptions(
        events=args.events,
        rounds=args.rounds,
        seed=args.seed,
        json_path=args.json_path,
        check=args.check,
    )


# -- bench pipeline ---------------------------------------------------------------------

#: Defaults of ``bench pipeline``.
PIPELINE_EVENTS = 100_000
PIPELINE_CHUNK = 5_000
PIPELINE_SEED = 11


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """What to measure; the defaults are the documented benchmark (about two minutes)."""

    events: int = PIPELINE_EVENTS
    chunk: int = PIPELINE_CHUNK
    seed: int = PIPELINE_SEED
    json_path: Path | None = None
    profile_dir: Path | None = None
    profile_format: str = "flamegraph"
    check: bool = False

    def __post_init__(self) -> None:
        if self.events < 1_000:
            raise ValueError("--events must be at least 1,000")
        if self.chunk < 1:
            raise ValueError("--chunk must be at least 1")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ops-center bench pipeline`` (the module is imported on use)."""
    parser.add_argument(
        "--events",
        type=_count,
        default=PIPELINE_EVENTS,
        metavar="N",
        help=f"events in the log (default {PIPELINE_EVENTS:,})",
    )
    parser.add_argument(
        "--chunk",
        type=_count,
        default=PIPELINE_CHUNK,
        metavar="N",
        help=f"most events per step, as the follower's chunks under load (default "
        f"{PIPELINE_CHUNK:,})",
    )
    _add_run_arguments(parser, PIPELINE_SEED)
    _add_profile_arguments(parser, "the pipeline (this process) during each catch-up")


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """The options parsed by `add_pipeline_arguments` (`ValueError` if out of range)."""
    return PipelineOptions(
        events=args.events,
        chunk=args.chunk,
        seed=args.seed,
        json_path=args.json_path,
        profile_dir=args.profile_dir,
        profile_format=args.profile_format,
        check=args.check,
    )


# -- bench streams ----------------------------------------------------------------------


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
    #: HTTP processes of the node under test (``ops-center serve --workers``, with its
    #: pipeline process and Redis); 0: the one-process server, in-process stream bus.
    workers: int = os.cpu_count() or 1
    profile_dir: Path | None = None
    profile_format: str = "flamegraph"

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError("--workers must be 0 or more")
        for name in ("screens", "probes", "rate", "batch", "fanout_screens", "fanout_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")


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
        ("seed", int, "seed of the simulated province"),
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
    _add_run_arguments(parser, None)  # its --seed is among the numbers above
    add_node_arguments(parser, defaults.workers, defaults.profile_format)


def streams_options(args: argparse.Namespace) -> StreamsOptions:
    """The options parsed by `add_streams_arguments`."""
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
        workers=args.workers,
        profile_dir=args.profile_dir,
        profile_format=args.profile_format,
    )
