"""``ops-center bench projections``: its fast fill, and a tiny run of the entry point.

The fill records the simulated province without going through `OpsCenter.ingest` (same
validation, decisions and mapper, then COPY): here both record the same CloudEvents into
databases of their own, and the stored events, the receipts and the read models rebuilt
from them must be the same (but for the recording times). Timings are never asserted.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psycopg
import pytest

from ops_center.cli.main import build_parser
from ops_center.pipeline.rebuild import rebuild
from ops_center.province.calendar import TZ
from ops_center.province.profile import load_profile
from ops_center.settings import Settings
from ops_center.store.application import OpsCenter
from ops_center.tools.bench import PROJECTIONS_EVENTS, PROJECTIONS_ROUNDS, run_bench
from ops_center.tools.bench.fill import LogFiller
from ops_center.tools.bench.options import ProjectionsOptions
from ops_center.tools.simulator.recording import record
from ops_center.tools.simulator.traffic import Traffic
from projections.registry import PROJECTIONS, create_projections

PROFILE = load_profile()
#: Read-model columns that hold when an event was recorded (differs between the two).
RECORDED = {"rm_feed": {"recorded_at"}, "rm_report_history": {"recorded_at"}}


@pytest.fixture
def ingested_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
def filled_url(new_database: Any) -> Iterator[str]:
    with new_database() as url:
        yield url


def _events(url: str) -> list[tuple[Any, ...]]:
    """Every stored event with the times of its recording taken out of its state."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM ops_events ORDER BY notification_id"
        ).fetchall()
    out = []
    for position, originator, version, topic, state in rows:
        decoded = orjson.loads(bytes(state))
        assert decoded.pop("timestamp")
        assert decoded["meta"].pop("received_at")
        out.append((position, originator, version, topic, decoded))
    return out


def _receipts(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT source, event_id, digest, originator_id, originator_version "
            "FROM ingest_receipts ORDER BY source, event_id"
        ).fetchall()


async def _read_models(url: str) -> dict[str, list[Any]]:
    """Every read-model row after a rebuild, without the recording times."""
    await rebuild(url, out=io.StringIO())
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, list[Any]] = {}
        for projection in create_projections():
            for table in projection.tables:
                rows = await conn.fetch(f"SELECT * FROM {table}")
                skip = RECORDED.get(table, set())
                out[table] = sorted(
                    tuple(str(v) for k, v in row.items() if k not in skip) for row in rows
                )
        return out
    finally:
        await conn.close()


def _ingest(url: str, raws: Sequence[dict[str, Any]], batch: int) -> None:
    store = OpsCenter(url)
    try:
        outcomes = record(store, raws, PROFILE, batch=batch, key="k")
        assert [o.status for o in outcomes] == ["accepted"] * len(raws)
    finally:
        store.close()


def _fill(url: str, raws: Sequence[dict[str, Any]], batch: int) -> None:
    with LogFiller(url, PROFILE, key="k") as filler:
        for start in range(0, len(raws), batch):
            filler.record(raws[start : start + batch])
        filler.flush()
        assert filler.rejected == 0


async def test_the_fast_fill_stores_what_ingest_stores(ingested_url: str, filled_url: str) -> None:
    end = datetime(2026, 11, 20, 15, 0, tzinfo=TZ)  # a Friday afternoon
    raws = Traffic(cameras=200, stations=60, events=2_500, seed=11, end=end).take(2_500)
    await asyncio.to_thread(_ingest, ingested_url, raws, 300)
    await asyncio.to_thread(_fill, filled_url, raws, 550)

    ingested, filled = _events(ingested_url), _events(filled_url)
    assert len(ingested) == len(raws)
    assert filled == ingested
    assert _receipts(filled_url) == _receipts(ingested_url)
    assert sum(1 for e in ingested if e[3].endswith("Dossier.Completed")) > 10

    models = await _read_models(ingested_url)
    assert await _read_models(filled_url) == models
    assert len(models["rm_dossiers"]) > 50
    assert len(models["rm_dossier_hours"]) > 50


def _bench(argv: list[str], database_url: str) -> int:
    args = build_parser().parse_args(["bench", "projections", *argv])
    # The benchmark runs its own event loops (asyncio.run); a worker thread keeps them away
    # from whatever loop the test session holds on this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run_bench, args, Settings(database_url=database_url)).result()


def test_the_command_line_defaults_are_the_options_defaults() -> None:
    args = build_parser().parse_args(["bench", "projections"])
    assert args.events == PROJECTIONS_EVENTS == ProjectionsOptions().events == 1_000_000
    assert args.rounds == PROJECTIONS_ROUNDS == ProjectionsOptions().rounds
    assert args.json_path is None


@pytest.mark.timeout(600)
def test_a_tiny_run_reports_every_figure(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "projections.json"
    code = _bench(["--events", "1500", "--rounds", "3", "--json", str(out)], database_url)
    assert code == 0

    results = json.loads(out.read_text())
    assert results["setup"]["events"] == 1500
    assert results["setup"]["rejected"] == 0
    assert results["setup"]["dossiers"] > 0
    assert results["scan"]["events"] == 1500
    assert results["scan"]["per_s"] > 0
    together = results["together"]
    assert together["events"] == 1500
    assert together["per_s"] > 0
    assert sorted(together["projections"]) == sorted(PROJECTIONS)
    plain = results["no_checkpoints"]
    assert plain["events"] == 1500
    assert plain["per_s"] > 0
    assert [r["label"] for r in results["alone"]] == list(PROJECTIONS)
    assert all(r["events"] == 1500 and r["per_s"] > 0 for r in results["alone"])
    queries = {q["name"]: q for q in results["queries"]}
    assert "baseline: SELECT 1" in queries
    for name in (
        "overview",
        "overview, unit",
        "overview, as_of recent",
        "overview, as_of recent, no checkpoints",
        "overview, unit, as_of recent",
        "overview, unit, as_of recent, no checkpoints",
        "overview, as_of old",
        "overview, as_of old, no checkpoints",
        "overview, unit, as_of old",
        "overview, unit, as_of old, no checkpoints",
        "devices",
        "device",
        "stats hour x 24",
        "stats day x 30",
        "stats month x 12",
        "stats day x 30, agency+unit",
        "overdue",
        "kpis",
        "kpi history",
        "feed",
    ):
        assert queries[name]["rounds"] == 3
        assert 0 < queries[name]["p50_ms"] <= queries[name]["p99_ms"]
        assert queries[name]["bytes"] > 2
    budgets = results["budgets"]
    assert budgets[0]["name"] == "rebuild, all projections together"
    assert budgets[1]["name"] == "checkpoints' cost to that rebuild"
    assert len(budgets) == 2 + len(queries) - 1
    assert results["passed"] == all(b["passed"] for b in budgets)

    report = capsys.readouterr().out
    assert "ops-center bench projections" in report
    assert "baseline: plain scan" in report
    assert "PASS" in report or "FAIL" in report


def test_bad_options_are_refused(database_url: str) -> None:
    assert _bench(["--events", "10"], database_url) == 2
