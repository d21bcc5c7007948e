"""The ``ops-center`` command line: serve, keys, bench, projections, watch, demo, simulate.

Every command that needs the database takes ``--data-dir`` (the embedded PostgreSQL's
folder) or uses ``DATABASE_URL`` when it is set, so the same commands work against the
embedded default and a real server, whether or not the server is running.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ops_center.settings import ENV, Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    return settings.replace(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        profile=getattr(args, "profile", None),
    )


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one in `data_dir`.

    The embedded server is stopped afterwards only if this command started it: when a
    running `ops-center serve` owns it, it is left running.
    """
    if settings.database_url is not None:
        yield settings.database_url
        return
    from ops_center.embedded import EmbeddedPostgres

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    try:
        yield url
    finally:
        if not server.reused:
            server.stop()


def _serve(args: argparse.Namespace) -> int:
    from web.app import create_app, run
    from web.logs import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_format)
    app = create_app(settings)
    where = (
        "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.data_dir}"
    )
    print(f"ops-center: serving on http://{settings.host}:{settings.port} ({where})", flush=True)
    run(app, settings)
    return 0


def _keys(args: argparse.Namespace) -> int:
    from ops_center.keystore import KeyCommandError, create_key, list_keys, revoke_key

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
    except (KeyCommandError, ValueError) as exc:
        print(f"ops-center keys: {exc}", file=sys.stderr)
        return 2
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ops_center.bench import run_bench

    return run_bench(args, _settings(args))


def _projections(args: argparse.Namespace) -> int:
    from projections.cli import run

    with database_url(_settings(args)) as url:
        return run(args, url)


def _watch(args: argparse.Namespace) -> int:
    from ops_center.watch import main as watch

    return watch(args)


def _simulate(args: argparse.Namespace) -> int:
    from ops_center.loadgen import main as simulate

    if (args.rate is not None and args.rate <= 0) or (
        args.duration is not None and args.duration <= 0
    ):
        print("ops-center simulate: --rate and --duration must be positive", file=sys.stderr)
        return 2
    return simulate(args.url, args.key, rate=args.rate, duration=args.duration, seed=args.seed)


def _demo(args: argparse.Namespace) -> int:
    from ops_center.demo import main as demo

    if args.speed <= 0 or args.history < 0:
        print("ops-center demo: --speed must be positive, --history not negative", file=sys.stderr)
        return 2
    return demo(_settings(args), speed=args.speed, history_hours=args.history, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    env_help = ", ".join(sorted(ENV.values()))
    parser = argparse.ArgumentParser(
        prog="ops-center",
        description="Backend of a province's data operations center (IOC).",
        epilog=f"Environment variables: {env_help}.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def data_dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            help="folder of the embedded PostgreSQL (default ./.ops-center); "
            "ignored when DATABASE_URL is set",
        )

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--profile", type=Path, help="province profile file (default: demo)")
    data_dir_option(serve)
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; prints it on the last line")
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
    data_dir_option(create)
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    data_dir_option(listing)
    revoke = key_commands.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    data_dir_option(revoke)
    keys.set_defaults(handler=_keys)

    bench = commands.add_parser("bench", help="measure performance against baselines")
    from ops_center.bench import add_bench_arguments

    add_bench_arguments(bench)
    data_dir_option(bench)
    bench.set_defaults(handler=_bench)

    projections = commands.add_parser(
        "projections", help="rebuild projections and show their position and lag"
    )
    from projections.cli import add_arguments as add_projection_arguments

    add_projection_arguments(projections)
    data_dir_option(projections)
    projections.set_defaults(handler=_projections)

    watch = commands.add_parser(
        "watch", help="follow a live topic in the terminal (reconnects by itself)"
    )
    from ops_center.watch import add_arguments as add_watch_arguments

    add_watch_arguments(watch)
    watch.set_defaults(handler=_watch)

    demo = commands.add_parser(
        "demo", help="serve on the embedded default and drive a simulated province through it"
    )
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default 8080)")
    data_dir_option(demo)
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
        "simulate", help="load generator: the simulated province against a running server"
    )
    simulate.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    simulate.add_argument(
        "--key",
        required=True,
        help="an integration key allowed radio.*, camera.*, dossier.*, kpi.*",
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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
