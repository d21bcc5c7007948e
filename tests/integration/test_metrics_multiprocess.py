"""Multiprocess mode: the metrics of several processes of a node in one ``/metrics``.

Every process here is a fresh interpreter started with ``PROMETHEUS_MULTIPROC_DIR`` in its
environment (prometheus-client chooses where values live when it is first imported). Two
"workers" count ingest results, commits, resyncs and open WebSockets and exit; a third
serves ``GET /metrics`` (`web.metrics`, without a database) and answers with their sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from ops_center.metrics import MULTIPROC_ENV

WORKER = """
import os, sys
from ops_center.metrics import Metrics
events, clients = int(sys.argv[1]), int(sys.argv[2])
metrics = Metrics()
assert metrics.multiprocess
metrics.count_results([{"status": "accepted"}] * events + [{"status": "rejected"}])
metrics.observe_commit(events, 0.01)
metrics.stream_resyncs.update(events)
metrics.ws_clients.set(clients)
print(os.getpid())
"""

SCRAPER = """
import asyncio, sys
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from web.metrics import add_metrics_routes

async def main():
    app = web.Application()
    add_metrics_routes(app)
    async with TestClient(TestServer(app)) as client:
        async with client.get("/metrics") as response:
            assert response.status == 200, response.status
            print(response.headers["Content-Type"])
            print(await response.text(), end="")

asyncio.run(main())
"""


def run(directory: Path, script: str, *args: str) -> str:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def scrape(directory: Path) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    content_type, _, text = run(directory, SCRAPER).partition("\n")
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return content_type, values


def test_two_processes_metrics_appear_summed_in_one_exposition(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    first = int(run(directory, WORKER, "2", "3"))
    second = int(run(directory, WORKER, "5", "4"))
    assert first != second

    content_type, values = scrape(directory)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert values["ops_center_ingest_events_total", (("outcome", "accepted"),)] == 7
    assert values["ops_center_ingest_events_total", (("outcome", "rejected"),)] == 2
    assert values["ops_center_commit_batch_events_count", ()] == 2
    assert values["ops_center_commit_batch_events_sum", ()] == 7
    assert values["ops_center_commit_batch_events_bucket", (("le", "5.0"),)] == 2
    assert values["ops_center_commit_batch_events_bucket", (("le", "2.0"),)] == 1
    assert values["ops_center_stream_resyncs_total", ()] == 7
    # livesum over the processes: 3 + 4, plus the scraper's own 0
    assert values["ops_center_ws_clients", ()] == 7
    # the scraper's own process metrics are there too
    assert values["process_resident_memory_bytes", ()] > 0

    # a dead worker's connections are gone; what it counted stays
    mark_process_dead(first, str(directory))
    _, values = scrape(directory)
    assert values["ops_center_ws_clients", ()] == 4
    assert values["ops_center_ingest_events_total", (("outcome", "accepted"),)] == 7
    # the scrapers dropped their own live gauges when their applications stopped
    live = sorted(name for name in os.listdir(directory) if name.startswith("gauge_live"))
    assert live == [f"gauge_livemax_{second}.db", f"gauge_livesum_{second}.db"]
