"""``ops-center bench streams`` on a tiny load against a real server and PostgreSQL.

Only the shape of the results and their consistency are asserted, never timings.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ops_center.cli.main import build_parser
from ops_center.settings import Settings
from ops_center.tools.bench import run_bench

TINY = [
    "--screens", "20",
    "--probes", "4",
    "--rate", "100",
    "--batch", "10",
    "--seconds", "2",
    "--fanout-screens", "40",
    "--fanout-rate", "50",
    "--fanout-seconds", "2",
    "--cameras", "60",
    "--stations", "20",
]  # fmt: skip


@pytest.mark.timeout(300)
def test_a_tiny_run_sees_every_acknowledged_batch_on_the_screens(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "streams.json"
    args = build_parser().parse_args(["bench", "streams", *TINY, "--json", str(out)])
    with ThreadPoolExecutor(max_workers=1) as pool:
        code = pool.submit(run_bench, args, Settings(database_url=database_url)).result()
    assert code == 0
    body = json.loads(out.read_text())
    phases = {r["name"]: r for r in body["results"]}
    assert len(phases) >= 2
    latency = [r for name, r in phases.items() if name.startswith("latency")]
    fanout = [r for name, r in phases.items() if name.startswith("fan-out")]
    assert latency, sorted(phases)
    assert fanout, sorted(phases)
    assert all(r["screens"] == 20 for r in latency)
    assert all(r["screens"] == 40 for r in fanout)
    for phase in phases.values():
        assert phase["acked_events"] > 0
        assert 0 < phase["p50_ms"] <= phase["p99_ms"] <= phase["max_ms"]
        assert phase["peak_rss_mb"] > 0
    # every event is on the feed: every acknowledged batch reached every feed probe; an
    # overview frame comes only when a figure changes, so the last batches of a phase
    # may change none (an alert, an event of yesterday's dossiers) and go unseen
    assert phases["latency (feed)"]["missed"] == 0, phases["latency (feed)"]
    assert body["budgets"]
    assert all(isinstance(ok, bool) for _, ok in body["budgets"])
