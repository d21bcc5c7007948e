"""The ``ops-center`` command line: serve, keys, bench, projections, alarms, watch, demo,
simulate.

Every command that needs the database takes ``--data-dir`` (the embedded PostgreSQL's
folder) or uses ``DATABASE_URL`` when it is set, so the same commands work against the
embedded default and a real server, whether or not the server is running. The options
shared by a command's levels (``--data-dir``, ``--debug``) are accepted before or after
the sub-command's name (``keys --data-dir DIR list`` and ``keys list --data-dir DIR``).
The client commands (``simulate``, ``watch``) take the server's http(s) address as
``--url`` and the key as ``--key`` (`ops_center.tools.options`).

Exit status: 0 on success, 2 on a usage error (argparse, or a value refused before any
work), 1 on a failure, reported as one line on stderr (`ops_center.runtime.failures`; no
traceback unless ``--debug`` or ``OPS_CENTER_DEBUG=1``), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ops_center.embedded.default import database_url
from ops_center.runtime.failures import (
    FAILURE,
    INTERRUPTED,
    USAGE,
    check_listen,
    debug_wanted,
    describe,
)
from ops_center.settings import ENV, Settings
from ops_center.tools.options import add_key_option, add_url_option

#: Commands whose only connections are to the database (an OSError there is the database's).
DATABASE_COMMANDS = frozenset({"serve", "pipeline", "keys", "projections", "alarms"})


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    return settings.replace(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        profile=getattr(args, "profile", None),
        workers=getattr(args, "workers", None),
    )


def _serve(args: argparse.Namespace) -> int:
    from ops_center.node.serve import serve
    from ops_center.runtime.logs import configure_logging

    settings = _settings(args)
    check_listen(settings.host, settings.port)  # before the database starts
    configure_logging(settings.log_format, process="supervisor")
    where = (
        "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.data_dir}"
    )
    pipeline = not args.no_pipeline
    shape = f"{settings.workers} HTTP process{'es' if settings.workers > 1 else ''}" + (
        " and the pipeline" if pipeline else ", no pipeline"
    )
    print(
        f"ops-center: starting on http://{settings.host}:{settings.port} ({where}; {shape})",
        flush=True,
    )
    return serve(settings, workers=settings.workers, pipeline=pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from ops_center.pipeline.process import main as pipeline
    from ops_center.runtime.logs import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_format, process="pipeline")
    return pipeline(settings)


def _keys(args: argparse.Namespace) -> int:
    from ops_center.access.keystore import KeyCommandError, create_key, list_keys, revoke_key

    settings = _settings(args)
    try:
        with database_url(settings) as url:
            if args.keys_command == "create":
                secret = create_key(
                    url,
                    args.name,
                    args.role,
                    scopes=args.scope or (),
                    sources=args.source or (),
                    rate=args.rate,
                )
                print(f"created key {args.name!r} with role {args.role}; it is shown only once:")
                print(secret)
            elif args.keys_command == "list":
                keys = list_keys(url)
                print(f"{'NAME':<24} {'ROLE':<12} {'STATE':<8} {'RATE':>8}  SCOPES / SOURCES")
                for key in keys:
                    state = "revoked" if key.revoked_at else "active"
                    rate = f"{key.rate:g}" if key.rate else "-"
                    scopes = ",".join(key.scopes) or "-"
                    sources = ",".join(key.sources) or "*"
                    print(
                        f"{key.name:<24} {key.role:<12} {state:<8} {rate:>8}  {scopes} / {sources}"
                    )
                if not keys:
                    print("(no keys yet: ops-center keys create NAME --role ROLE)")
            elif args.keys_command == "revoke":
                revoke_key(url, args.name)
                print(f"revoked key {args.name!r}")
    except ValueError as exc:  # a name, role, scope or rate refused
        print(f"ops-center keys: {exc}", file=sys.stderr)
        return USAGE
    except KeyCommandError as exc:  # a name taken, no such key, already revoked
        print(f"ops-center keys: {exc}", file=sys.stderr)
        return FAILURE
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ops_center.tools.bench import run_bench

    return run_bench(args, _settings(args))


def _projections(args: argparse.Namespace) -> int:
    from ops_center.pipeline.rebuild import run

    with database_url(_settings(args)) as url:
        return run(args, url)


def _alarms(args: argparse.Namespace) -> int:
    from ops_center.cli.alarms import run

    settings = _settings(args)
    with database_url(settings) as url:
        return run(args, settings, url)


def _watch(args: argparse.Namespace) -> int:
    from ops_center.tools.watch import main as watch

    return watch(args)


def _simulate(args: argparse.Namespace) -> int:
    from ops_center.tools.loadgen import main as simulate

    if (args.rate is not None and args.rate <= 0) or (
        args.duration is not None and args.duration <= 0
    ):
        print("ops-center simulate: --rate and --duration must be positive", file=sys.stderr)
        return USAGE
    return simulate(args.url, args.key, rate=args.rate, duration=args.duration, seed=args.seed)


def _demo(args: argparse.Namespace) -> int:
    from ops_center.tools.demo import main as demo

    if args.speed <= 0 or args.history < 0:
        print("ops-center demo: --speed must be positive, --history not negative", file=sys.stderr)
        return USAGE
    return demo(_settings(args), speed=args.speed, history_hours=args.history, seed=args.seed)


def _version() -> str:
    try:
        return metadata.version("ops-center")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _common_options() -> argparse.ArgumentParser:
    """Options of every level of the command line (a parent parser).

    Defaults are suppressed so that an inner level never overwrites what an outer one
    was given: the option is absent from the namespace unless written somewhere.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of a failure (as OPS_CENTER_DEBUG=1 does)",
    )
    return common


def _data_options() -> argparse.ArgumentParser:
    """``--data-dir``, for every level of the commands that use the database."""
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="folder of the embedded PostgreSQL (default $OPS_CENTER_DATA_DIR or "
        "./.ops-center); ignored when DATABASE_URL is set",
    )
    return data


def build_parser() -> argparse.ArgumentParser:
    env_help = ", ".join(sorted(ENV.values()))
    common = _common_options()
    with_data = [common, _data_options()]
    parser = argparse.ArgumentParser(
        prog="ops-center",
        description="Backend of a province's data operations center (IOC).",
        epilog=f"Environment variables: {env_help}, OPS_CENTER_DEBUG, OPS_CENTER_TOKEN. "
        "Exit status: 0 done, 1 failed, 2 usage error, 130 interrupted.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=with_data, help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--profile", type=Path, help="province profile file (default: demo)")
    serve.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="HTTP processes sharing the port (default $OPS_CENTER_WORKERS or one per core)",
    )
    serve.add_argument(
        "--no-pipeline",
        action="store_true",
        help="HTTP only: the pipeline (projections, alarm rules, stream publisher) runs "
        "elsewhere (ops-center pipeline)",
    )
    serve.set_defaults(handler=_serve)

    pipeline = commands.add_parser(
        "pipeline",
        parents=with_data,
        help="run the event pipeline alone: projections, alarm rules, stream publisher",
    )
    pipeline.add_argument("--profile", type=Path, help="province profile file (default: demo)")
    pipeline.set_defaults(handler=_pipeline)

    keys = commands.add_parser("keys", parents=with_data, help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = key_commands.add_parser(
        "create", parents=with_data, help="create a key; prints it on the last line"
    )
    create.add_argument("name")
    create.add_argument(
        "--role", required=True, choices=["integration", "viewer", "operator", "admin"]
    )
    create.add_argument(
        "--scope",
        action="append",
        metavar="PATTERN",
        help="event types an integration key may send, e.g. 'camera.*' (repeatable)",
    )
    create.add_argument(
        "--source",
        action="append",
        metavar="PATTERN",
        help="CloudEvent sources an integration key may use (repeatable; default any)",
    )
    create.add_argument("--rate", type=float, metavar="EVENTS_PER_S", help="rate limit")
    key_commands.add_parser("list", parents=with_data, help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", parents=with_data, help="revoke a key by name")
    revoke.add_argument("name")
    keys.set_defaults(handler=_keys)

    from ops_center.tools.bench import add_bench_arguments, data_options

    bench = commands.add_parser(
        "bench",
        parents=[common, data_options()],
        help="measure performance against baselines",
    )
    add_bench_arguments(bench, parents=[common])
    bench.set_defaults(handler=_bench)

    projections = commands.add_parser(
        "projections",
        parents=with_data,
        help="rebuild projections and show their position and lag",
    )
    from ops_center.pipeline.rebuild import add_arguments as add_projection_arguments

    add_projection_arguments(projections, parents=with_data)
    projections.set_defaults(handler=_projections)

    alarms = commands.add_parser(
        "alarms", parents=with_data, help="how long alarms stayed open (statistics)"
    )
    from ops_center.cli.alarms import add_arguments as add_alarm_arguments

    add_alarm_arguments(alarms, parents=with_data)
    alarms.set_defaults(handler=_alarms)

    watch = commands.add_parser(
        "watch",
        parents=[common],
        help="follow a live topic in the terminal (reconnects by itself)",
    )
    from ops_center.tools.watch import add_arguments as add_watch_arguments

    add_watch_arguments(watch)
    watch.set_defaults(handler=_watch)

    demo = commands.add_parser(
        "demo",
        parents=with_data,
        help="serve on the embedded default and drive a simulated province through it",
    )
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default 8080)")
    demo.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second (default 60: an hour a minute)",
    )
    demo.add_argument(
        "--history",
        type=float,
        default=48.0,
        metavar="HOURS",
        help="hours of history sent first when the event log is empty (default 48)",
    )
    demo.add_argument("--seed", type=int, help="seed of the simulation (default: random)")
    demo.set_defaults(handler=_demo)

    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="load generator: the simulated province against a running server",
    )
    add_url_option(simulate, required=True)
    add_key_option(
        simulate,
        "an integration key allowed radio.*, camera.*, dossier.*, kpi.*",
        required=True,
    )
    simulate.add_argument(
        "--rate",
        type=float,
        metavar="EVENTS_PER_S",
        help="offered rate (default: as fast as acked)",
    )
    simulate.add_argument(
        "--duration", type=float, metavar="S", help="seconds to run (default: until Ctrl-C)"
    )
    simulate.add_argument("--seed", type=int, help="seed of the simulation (default: random)")
    simulate.set_defaults(handler=_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status (argparse exits by itself with 2 on usage)."""
    args = build_parser().parse_args(argv)
    debug = debug_wanted(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        line = describe(exc, database=args.command in DATABASE_COMMANDS)
        print(f"ops-center {args.command}: {line}", file=sys.stderr, flush=True)
        return FAILURE
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
