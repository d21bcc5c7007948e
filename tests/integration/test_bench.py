"""``ops-center bench ingest`` on a tiny workload against a real PostgreSQL.

Only the shape of the results and the correctness checks are asserted, never timings: the
figures of a run this small, on a busy test machine, mean nothing.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from ops_center.cli.main import build_parser
from ops_center.settings import Settings
from ops_center.tools.bench import run_bench

TINY = [
    "--events", "2000",
    "--batch-size", "100",
    "--connections", "4",
    "--single-requests", "300",
    "--single-clients", "16",
    "--naive-events", "200",
    "--cameras", "120",
    "--stations", "30",
]  # fmt: skip


def _bench(argv: list[str], database_url: str) -> int:
    args = build_parser().parse_args(["bench", "ingest", *argv])
    # The benchmark runs its own event loop (asyncio.run); a worker thread keeps it away
    # from whatever loop the test session holds on this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run_bench, args, Settings(database_url=database_url)).result()


@pytest.mark.timeout(300)
def test_tiny_run_accepts_every_event_and_reports_every_figure(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = _bench([*TINY, "--json", str(out)], database_url)
    assert code == 0

    results = json.loads(out.read_text())
    batched, single = results["batched"], results["single"]
    assert batched["events"] == batched["accepted"] == 2000
    assert batched["requests"] == 20  # 2,000 events in batches of 100
    assert single["events"] == single["accepted"] == single["requests"] == 300
    setup = results["setup"]
    # the province's opening: 120 cameras and 30 stations registered, each with its first
    # status, then the indicators defined and the months so far reported
    opening = setup["registrations"]
    assert opening > 2 * 150
    assert setup["stored_events"] == setup["stored_receipts"] == opening + 2000 + 300
    assert sum(setup["mix"].values()) == 2000 + 300
    assert {"camera.status", "camera.alert", "dossier.received"} <= set(setup["mix"])
    assert results["naive"]["count"] == 200
    assert results["copy"]["count"] == 2000  # the rows stored by the batched phase

    for figure in (
        batched["events_per_s"],
        batched["requests_per_s"],
        single["requests_per_s"],
        single["latency"]["p50_ms"],
        single["latency"]["p99_ms"],
        results["naive"]["per_s"],
        results["copy"]["per_s"],
        results["ratios"]["batched_to_naive"],
        results["ratios"]["batched_to_copy"],
    ):
        assert figure > 0
    assert single["latency"]["p50_ms"] <= single["latency"]["p99_ms"]
    assert batched["writer"]["events"] == 2000
    assert batched["writer"]["transactions"] >= 2  # 2,000 events, at most 1,000 per commit
    assert [b["name"] for b in results["budgets"]] == [
        "HTTP batched, events/s",
        "HTTP batched / COPY",
        "HTTP single, requests/s",
        "HTTP single, p99 acknowledgement",
    ]
    assert results["passed"] == all(b["passed"] for b in results["budgets"])

    report = capsys.readouterr().out
    assert "HTTP batched / PostgreSQL COPY" in report
    assert report.count("PASS") + report.count("FAIL") == 4

    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (setup["scratch_database"],)
        ).fetchone()
    assert left is None, "the scratch database is dropped at the end"


def test_options_below_one_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["bench", "ingest", "--events", "0"])
    assert exited.value.code == 2
    assert "--events" in capsys.readouterr().err
