"""The server process of ``ops-center bench``: ``ops-center serve``, plus writer statistics.

Run as ``python -m ops_center.tools.bench.server --port N`` with ``DATABASE_URL`` set. It builds
the application with `create_app` and runs it exactly as ``ops-center serve`` does (same
logging, same access log), and adds one route for the benchmark, ``GET
/_bench/writer?since=N``, answering the group-commit writer's counters and the sizes of
the transactions after the N-th. Every other setting comes from the environment, so a
benchmark can try a writer setting with e.g. ``OPS_CENTER_COMMIT_MAX_WAIT_MS=5``.

Importing this module is cheap (the server is imported only by `main`), so that the
benchmark's client can share `STATS_PATH` without loading the server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aiohttp import web

STATS_PATH: Final = "/_bench/writer"


async def get_writer_stats(request: web.Request) -> web.Response:
    """The writer's counters; ``since`` skips the sizes of the first transactions."""
    import orjson
    from aiohttp import web

    from web.appkeys import WRITER

    stats = request.app[WRITER].stats
    since = int(request.query.get("since", "0"))
    body = {
        "batches": stats.batches,
        "events": stats.events,
        "failed_batches": stats.failed_batches,
        "commit_seconds": stats.commit_seconds,
        "batch_sizes": stats.batch_sizes[since:],
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    from ops_center.settings import Settings
    from web.app import create_app, run

    parser = argparse.ArgumentParser(prog="python -m ops_center.tools.bench.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env().replace(host=args.host, port=args.port)
    if settings.database_url is None:
        parser.error("DATABASE_URL must name the benchmark's database")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    app.router.add_get(STATS_PATH, get_writer_stats)
    print(f"bench server: serving on http://{settings.host}:{settings.port}", flush=True)
    run(app, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
