"""kill -9 of the pipeline process of a real ``ops-center serve`` while events keep
coming: the supervisor starts it again, ingest never stops answering, and once it has
caught up every read model equals a rebuild from the log (nothing lost, nothing applied
twice), and the HTTP process served throughout.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from opsproc import Ledger, Serve, load, projections_equal_a_rebuild, stored, wait_ready

from ops_center.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

KILLS = 3


def pipeline_pid(serve: Serve) -> int | None:
    """The pid of the serve's pipeline child, if one runs."""
    for child in psutil.Process(serve.pid).children():
        try:
            if "pipeline" in child.cmdline():
                return int(child.pid)
        except psutil.Error:
            continue
    return None


async def next_pipeline(serve: Serve, other_than: int | None, within: float = 30) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pid = pipeline_pid(serve)
        if pid is not None and pid != other_than:
            return pid
        await asyncio.sleep(0.1)
    raise AssertionError(f"no new pipeline process within {within} s: {serve.output()}")


async def test_the_pipeline_killed_with_sigkill_is_restarted_and_loses_nothing(
    server_dir: Path,
) -> None:
    rng = random.Random(7)
    serve = Serve(server_dir, free_port(), OPS_CENTER_READY_MAX_LAG="0")
    ledger = Ledger()
    try:
        serve.start()
        await serve.wait_healthy()
        key = await asyncio.to_thread(serve.key, "integration")
        pid = await next_pipeline(serve, None)
        stop = asyncio.Event()
        sending = asyncio.create_task(
            load(serve.base, key, ledger, senders=4, sizes=(1, 10, 50), rng=rng, stop=stop)
        )
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            psutil.Process(pid).kill()
            pid = await next_pipeline(serve, pid)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(sending, 60)
        # ingest answered throughout: the HTTP process was never touched
        assert {a.status for a in ledger.attempts} == {200}, ledger.attempts[-1]
        assert ledger.acked
        assert "exited with status -9" in serve.output(whole=True)
        await wait_ready(serve.base)  # the new pipeline caught up (lag 0)
        url = await asyncio.to_thread(serve.database_url)
        found = await asyncio.to_thread(stored, url, ledger.sent)
        assert all(found[k] == (ledger.acked[k], 1) for k in ledger.acked)
        assert serve.stop() == 0
        url = await asyncio.to_thread(serve.database_url)
        rows = await projections_equal_a_rebuild(url)
        assert rows > 0
        await asyncio.to_thread(EmbeddedPostgres(server_dir).stop)
    finally:
        serve.stop()
