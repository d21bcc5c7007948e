"""``ops-center serve``: the node's servers, then its supervisor until SIGTERM or SIGINT.

The embedded servers are started here, in the supervisor's main thread (the embedded
Redis dies with it: `die_with_parent`) and stopped after the children: PostgreSQL when
``DATABASE_URL`` is not set, Redis when ``REDIS_URL`` is not set and the pipeline runs
on this node.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import ExitStack

from ops_center.embedded.default import database_url
from ops_center.node.supervisor import Supervisor
from ops_center.runtime.parent import die_with_parent
from ops_center.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, *, workers: int, pipeline: bool) -> int:
    """Run the node; the exit status (0 after a clean stop)."""
    with ExitStack() as stack:
        url = stack.enter_context(database_url(settings))
        redis_url = settings.redis_url
        if redis_url is None and pipeline:
            from ops_center.embedded.redis import EmbeddedRedis

            redis = EmbeddedRedis(data_dir=settings.data_dir / "redis", preexec=die_with_parent)
            redis_url = redis.start()
            stack.callback(redis.stop)
            log.info("stream bus: the embedded Redis at %s", redis_url)
        elif redis_url is None:
            log.warning(
                "no REDIS_URL and no pipeline here: screens get changes only from a "
                "pipeline that publishes to this node's bus"
            )
        supervisor = Supervisor(settings, workers=workers, pipeline=pipeline)

        async def run() -> int:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, supervisor.stopping.set)
            return await supervisor.run(url, redis_url)

        return asyncio.run(run())
