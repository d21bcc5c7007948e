"""A child of ``ops-center serve``: ``python -m ops_center.node.child http|pipeline``.

The settings come from the environment the supervisor wrote (`Settings.from_env`). The
process dies with its supervisor (`die_with_parent`). ``http`` serves the aiohttp
application without the pipeline (`Settings.pipeline` is ``off``), sharing the port with
its sibling HTTP processes (``SO_REUSEPORT``) when there are several; ``pipeline`` runs
`ops_center.pipeline.process`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ops_center.runtime.logs import configure_logging
from ops_center.runtime.parent import die_with_parent
from ops_center.settings import Settings

#: Set in an HTTP child to its index among the node's HTTP processes.
WORKER_ENV = "OPS_CENTER_WORKER_INDEX"


def main(argv: Sequence[str]) -> int:
    die_with_parent()
    role = argv[0] if argv else ""
    settings = Settings.from_env()
    if role == "pipeline":
        from ops_center.pipeline.process import main as pipeline

        configure_logging(settings.log_format, process="pipeline")
        return pipeline(settings)
    if role == "http":
        # which of the node's HTTP processes answered (the X-Ops-Worker header; read by
        # web.logs when it is imported)
        os.environ[WORKER_ENV] = argv[1] if len(argv) > 1 else "0"
        from web.app import create_app, run

        configure_logging(settings.log_format, process="http")
        run(create_app(settings), settings, reuse_port=settings.workers > 1)
        return 0
    print(f"ops_center.node.child: unknown role {role!r} (http or pipeline)", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - the supervisor's children
    sys.exit(main(sys.argv[1:]))
