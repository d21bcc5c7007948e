"""``ops-center bench streams`` on a tiny load against a real server and PostgreSQL, in
both shapes: the node (``ops-center serve --workers 2``, its pipeline process publishing
through its embedded Redis) and the one process of before (``--workers 0``).

Only the shape of the results and their consistency are asserted, never timings.
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
    "--screens", "12",
    "--probes", "4",
    "--rate", "160",
    "--batch", "10",
    "--seconds", "1",
    "--fanout-screens", "30",
    "--fanout-rate", "80",
    "--fanout-seconds", "1",
    "--cameras", "60",
    "--stations", "20",
]  # fmt: skip

#: The server's process roles of each shape.
ROLES = {"2": {"http", "pipeline", "supervisor"}, "0": {"server"}}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", ["2", "0"])
def test_a_tiny_run_reports_every_figure_of_each_phase(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    out = tmp_path / "streams.json"
    argv = ["bench", "streams", *TINY, "--workers", workers, "--json", str(out)]
    args = build_parser().parse_args(argv)
    # the benchmark runs event loops of its own: a worker thread keeps them away from the
    # test session's
    with ThreadPoolExecutor(max_workers=1) as pool:
        code = pool.submit(run_bench, args, Settings(database_url=database_url)).result()
    assert code == 0
    body = json.loads(out.read_text())
    assert body["options"]["workers"] == int(workers)
    phases = {p["name"]: p for p in body["phases"]}
    assert list(phases) == ["latency", "fan-out"]
    latency, fanout = phases["latency"], phases["fan-out"]
    # 160 events/s for 1 s in batches of 10, rounded up to whole batches on 8 lanes
    assert latency["events"] == 160
    # 80 events/s for 1 s in batches of 8 (a tenth of the rate): two rounds of 8 lanes
    assert fanout["events"] == 128
    for phase in phases.values():
        # every event acknowledged, every request answered, no screen lost
        assert phase["acked_events"] == phase["events"], phase
        assert phase["failed_requests"] == 0
        assert (phase["lost"], phase["error_frames"]) == (0, 0)
        assert phase["frames"] > phase["screens"]
        roles = phase["cpu"]["roles"]
        assert roles.keys() == ROLES[workers], roles
        assert all(cores >= 0 for cores in roles.values())
        assert phase["screens_cpu_s"] > 0
        assert phase["sender_cpu_s"] > 0
        assert phase["catch_up_seconds"] >= 0
        assert phase["lag"]["samples"] > 0
        assert phase["lag"]["max_events"] >= 0
        # every process of the server, each with its memory
        assert {m["role"] for m in phase["memory"]} == ROLES[workers]
        assert all(0 < m["rss_mb"] <= m["peak_mb"] for m in phase["memory"])
    if workers == "2":
        names = {m["name"] for m in fanout["memory"] if m["role"] == "supervisor"}
        assert any(name.startswith("redis") for name in names), names
        assert sum(m["role"] == "http" for m in fanout["memory"]) == 2

    topics = {t["topic"]: t for t in latency["topics"]}
    assert topics.keys() == {"feed", "overview"}
    # the probes: half on the feed, half on the overview; the rest on the overview
    assert (topics["feed"]["screens"], topics["feed"]["recorded"]) == (2, 2)
    assert (topics["overview"]["screens"], topics["overview"]["recorded"]) == (10, 2)
    feed = topics["feed"]
    # every event enters the feed: every acknowledged request reached every feed probe
    assert feed["reach"]["missed"] == 0, feed
    assert feed["reach"]["count"] == 2 * latency["requests"]
    assert 0 <= feed["reach"]["p50_ms"] <= feed["reach"]["p99_ms"] <= feed["reach"]["max_ms"]
    # frames that carry no acknowledged event (the alarm rules' own) are counted apart
    assert feed["frames"]["count"] + feed["frames"]["unattributed"] > 0
    [everyone] = fanout["topics"]
    assert (everyone["topic"], everyone["screens"], everyone["recorded"]) == ("overview", 30, 30)
    delivered = everyone["frames"]
    assert delivered["count"] > 0
    # every frame of every screen counted once, attributed to an acknowledgement or not
    assert everyone["spread"]["count"] == delivered["count"] + delivered["unattributed"]

    assert [b["name"] for b in body["budgets"]] == [
        "ack-to-frame p50 (feed probes)",
        "ack-to-frame p99 (feed probes)",
        "fan-out p99 delivery, every frame (30 screens)",
        "fan-out resident memory, the server's processes together",
    ]
    assert body["passed"] == all(b["passed"] for b in body["budgets"])
    report = capsys.readouterr().out
    assert report.count("PASS") + report.count("FAIL") == 4
    assert ("ops-center serve --workers 2" in report) == (workers == "2")
    assert "pipeline's lag" in report
    assert "sender us/ev" in report

    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s",
            (body["setup"]["scratch_database"],),
        ).fetchone()
    assert left is None, "the scratch database is dropped at the end"


def test_streams_options_below_one_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "streams", "--screens", "0"])
    assert run_bench(args, Settings()) == 2
    assert "--screens" in capsys.readouterr().err
