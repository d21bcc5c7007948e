"""``ops-center bench ingest`` on a tiny workload against a real PostgreSQL.

Only the shape of the results and the correctness checks are asserted, never timings: the
figures of a run this small, on a busy test machine, mean nothing.
"""

from __future__ import annotations

import json
import os
import shutil
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
    "--wrk-requests", "0",
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
    # the one-process server (the pipeline inside it): the only one with writer counters
    code = _bench([*TINY, "--workers", "0", "--json", str(out)], database_url)
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
    assert batched["cpu"]["roles"].keys() == {"server"}
    assert batched["cpu"]["roles"]["server"] > 0
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


@pytest.mark.timeout(300)
def test_a_node_with_workers_reports_each_process_role(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    if shutil.which("wrk") is None and os.environ.get("CI"):
        pytest.fail("wrk is not installed (.ci/run installs Debian's wrk)")
    with_wrk = shutil.which("wrk") is not None
    argv = [*TINY, "--workers", "2", "--json", str(out)]
    assert _bench([*argv, "--wrk-requests", "1000" if with_wrk else "0"], database_url) == 0

    results = json.loads(out.read_text())
    assert results["options"]["workers"] == 2
    for phase in ("batched", "single"):
        measured = results[phase]
        roles = measured["cpu"]["roles"]
        assert roles.keys() == {"http", "pipeline", "supervisor"}, roles
        # the HTTP processes answered, the pipeline applied the events before the reading
        assert roles["http"] > 0, roles
        assert roles["pipeline"] > 0, roles
        assert measured["cpu"]["server"] == pytest.approx(sum(roles.values()))
        assert measured["catch_up_seconds"] >= 0
        assert measured["writer"] is None
    setup = results["setup"]
    assert setup["stored_events"] == setup["stored_receipts"]
    wrk = results["wrk"]
    if with_wrk:
        # the C client's cross-check: every answer a 200, each event stored once
        assert wrk["report"]["errors"] == 0
        assert 0 < wrk["events"] <= 1000
        assert wrk["report"]["requests_per_s"] > 0
        assert wrk["report"]["p50_ms"] <= wrk["report"]["p99_ms"]
        assert wrk["cpu"]["roles"].keys() == {"http", "pipeline", "supervisor"}
        # wrk's events are those stored beside the other phases'
        assert setup["stored_events"] == setup["registrations"] + 2300 + wrk["events"]
        assert {"camera.status", "camera.alert"} <= set(setup["mix"])
    else:
        assert wrk is None
        assert setup["stored_events"] == setup["registrations"] + 2300
    report = capsys.readouterr().out
    assert "ops-center serve --workers 2" in report
    assert "pipeline us/ev" in report
    assert "http us/ev" in report
    assert ("wrk single, C client" in report) == with_wrk


def test_options_below_one_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["bench", "ingest", "--events", "0"])
    assert exited.value.code == 2
    assert "--events" in capsys.readouterr().err
