"""``ops-center bench pipeline``: a tiny run of the entry point, and its PostgreSQL meter.

Timings are never asserted: the run must follow the whole log in each catch-up, with the
consumers each variant names, and report every figure.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest

from ops_center.cli.main import build_parser
from ops_center.pipeline.follower import RULES
from ops_center.settings import Settings
from ops_center.tools.bench import run_bench
from ops_center.tools.bench.meters import PostgresCpu, postmaster_of
from ops_center.tools.bench.options import PIPELINE_EVENTS, PipelineOptions
from projections.registry import PROJECTIONS


def _bench(argv: list[str], database_url: str) -> int:
    args = build_parser().parse_args(["bench", "pipeline", *argv])
    # the benchmark runs its own event loops (asyncio.run): keep them off the test's loop
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run_bench, args, Settings(database_url=database_url)).result()


def test_the_command_line_defaults_are_the_options_defaults() -> None:
    args = build_parser().parse_args(["bench", "pipeline"])
    assert args.events == PIPELINE_EVENTS == PipelineOptions().events
    assert args.chunk == PipelineOptions().chunk
    assert args.profile_dir is None


@pytest.mark.timeout(300)
def test_a_tiny_run_follows_the_whole_log_in_each_catch_up(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pipeline.json"
    code = _bench(["--events", "3000", "--chunk", "700", "--json", str(out)], database_url)
    assert code == 0

    results = json.loads(out.read_text())
    assert results["setup"]["events"] == 3000
    assert results["scan"]["events"] == 3000
    whole, projections, rules = results["catch_ups"]
    assert sorted(whole["consumers"]) == sorted([*PROJECTIONS, RULES])
    assert sorted(projections["consumers"]) == sorted(PROJECTIONS)
    assert rules["consumers"] == [RULES]
    for run in (whole, projections, rules):
        assert run["events"] == 3000
        assert run["per_s"] > 0
        assert run["pipeline_us"] > 0
        assert run["postgres_us"] > 0
    # every consumer was handed every log event it follows (the rules skip none they read)
    assert whole["applied"] >= projections["applied"] > 3000
    assert projections["alarm_events"] == 0
    assert whole["alarm_events"] > 0
    assert rules["alarm_events"] > 0
    assert [b["name"] for b in results["budgets"]] == [
        f"pipeline CPU per event ({whole['label']})",
        f"PostgreSQL CPU per event ({whole['label']})",
    ]
    assert results["passed"] == all(b["passed"] for b in results["budgets"])

    report = capsys.readouterr().out
    assert "ops-center bench pipeline" in report
    assert "baseline: plain scan" in report
    assert "alarm rules alone" in report


def test_bad_options_are_refused(database_url: str) -> None:
    assert _bench(["--events", "10"], database_url) == 2


def test_the_postgres_meter_reads_one_server_only(database_url: str) -> None:
    postmaster = postmaster_of(database_url)
    assert postmaster is not None
    server = psutil.Process(postmaster)
    assert server.name().startswith("postgres")
    with psycopg.connect(database_url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert backend is not None
        with PostgresCpu(postmaster) as meter:  # the backend burns some CPU meanwhile
            conn.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()
    assert meter.seconds() > 0
    assert backend[0] in meter._seen
    alive = {p.pid for p in server.children()} | {postmaster}
    assert all(pid in alive for pid in meter._seen if psutil.pid_exists(pid))
