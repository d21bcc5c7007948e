"""The lean load clients against the real app: screens, HTTP ingest, wrk and CPU accounting.

The app runs in this test's event loop, so every blocking client call (they start and
wait for worker processes) runs in a thread. Nothing here asserts a duration: the
clients' figures are checked for what they count (positions, frames, requests, stored
events), never for how fast.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
import pytest

from ops_center.tools.loadclients.cpu import CpuAccount, postmaster_of
from ops_center.tools.loadclients.http import BATCH, STRUCTURED, HttpLoad, run_http
from ops_center.tools.loadclients.screens import Screens, ScreensResult
from ops_center.tools.loadclients.workers import LoadClientError, Worker
from ops_center.tools.loadclients.wrk import run_wrk
from web.appkeys import PROJECTIONS

TIMEOUT = 20.0


def url_of(api: Any) -> str:
    return f"http://{api.client.server.host}:{api.client.server.port}"


async def settled(api: Any, position: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        await api.app[PROJECTIONS].wait_for(position)


def statuses(ce: Any, code: str, n: int, start: float = 0) -> list[bytes]:
    """`n` status events of one camera, alternating, each a minute after the other."""
    return [
        orjson.dumps(
            ce.event(
                "camera.status",
                code,
                status="online" if i % 2 == 0 else "offline",
                time=ce.at(start + i),
            )
        )
        for i in range(n)
    ]


async def registered_camera(api: Any, ce: Any) -> tuple[str, int]:
    code = ce.code("camera.registered")
    [position] = await api.ingest(ce.event("camera.registered", code, time=ce.at(-60)))
    await settled(api, position)
    return code, position


async def test_screens_get_snapshots_then_the_deltas_of_acknowledged_events(
    make_api, viewer_key, ce
):
    api = await make_api()
    url = url_of(api)
    code, registered = await registered_camera(api, ce)
    screens = Screens(
        url,
        viewer_key.secret,
        topics=("feed", "overview"),
        screens=50,
        processes=2,
        record=50,
    )
    ready = await asyncio.to_thread(screens.start)
    try:
        assert (ready.opened, ready.failed, ready.snapshots) == (50, 0, 50)
        assert len(set(screens.pids)) == 2
        assert os.getpid() not in screens.pids
        # one connection: the positions follow the order of the bodies
        sent = await asyncio.to_thread(
            run_http,
            url,
            api.key.secret,
            statuses(ce, code, 20),
            content_type=STRUCTURED,
            connections=1,
        )
        assert sent.ok == 20
        acked = [p for r in sorted(sent.requests()) for p in r.positions]
        assert len(acked) == 20
        assert acked == sorted(acked)
        top = acked[-1]
        # every event enters the feed (the overview only changes when a figure does)
        reached = await asyncio.to_thread(screens.wait_reached, top, TIMEOUT, "feed")
        assert reached, (top, await asyncio.to_thread(screens.status))
    finally:
        result = await asyncio.to_thread(screens.stop)

    assert result.total("opened") == 50
    assert result.total("errors") == 0
    assert result.total("lost") == 0
    assert result.total("snapshots") == 50
    assert len(result.records) == 50
    for record in result.records:
        assert registered <= record.snapshot_position < acked[0]
        assert list(record.positions) == sorted(set(record.positions))
        assert set(record.positions) <= set(acked)
        assert len(record.arrivals_ns) == len(record.positions)
        assert list(record.arrivals_ns) == sorted(record.arrivals_ns)
    feed = [r for r in result.records if r.topic == "feed"]
    assert len(feed) == 25
    for record in feed:
        assert record.positions[-1] == top
        assert record.snapshot_ns <= record.arrivals_ns[0]
    # the tables hold the same frames as the recorded screens
    table_frames = sum(t.frames for t in result.arrivals["feed"])
    assert table_frames == sum(len(r.positions) for r in feed)
    table_positions = {p for t in result.arrivals["feed"] for p in t.positions}
    assert table_positions == {p for r in feed for p in r.positions}
    acks = sent.ack_times()
    per_frame = result.frame_latency(acks, "feed")
    assert per_frame.count == table_frames
    assert per_frame.unattributed == 0
    per_request = result.reach_latency(acks, "feed")
    assert (per_request.count, per_request.missed) == (25 * 20, 0)
    assert result.spread("overview").count == sum(t.frames for t in result.arrivals["overview"])
    for worker in result.workers:
        assert worker.usage is not None
        assert worker.usage.cpu_s > 0
        assert worker.usage.max_rss_mb > 0
        assert worker.screens == 25
    assert result.total("frames") == 50 + result.total("deltas")


def pinged(screens: Screens, pings: int) -> Any:
    """The screens' status once they answered `pings` pings (bounded wait)."""
    deadline = time.monotonic() + TIMEOUT
    while (status := screens.status()).pings < pings and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


async def test_screens_answer_the_servers_pings(make_api, viewer_key):
    api = await make_api(ws_heartbeat_seconds=0.4)
    screens = Screens(url_of(api), viewer_key.secret, screens=4, processes=2)
    await asyncio.to_thread(screens.start)
    try:
        status = await asyncio.to_thread(pinged, screens, 12)
        # a screen that did not answer would have been closed after half a heartbeat
        assert status.pings >= 12
        assert (status.opened, status.lost) == (4, 0)
    finally:
        result = await asyncio.to_thread(screens.stop)
    assert result.total("lost") == 0
    assert all(not w.closes or set(w.closes) == {1000} for w in result.workers)


async def test_screens_report_refused_handshakes(make_api):
    api = await make_api()
    screens = Screens(url_of(api), "not-a-key", screens=3, processes=1)
    ready = await asyncio.to_thread(screens.start)
    result = await asyncio.to_thread(screens.stop)
    assert (ready.opened, ready.failed) == (0, 3)
    assert "401" in result.workers[0].samples[0]


async def test_screens_command_line_writes_its_result(make_api, viewer_key, tmp_path):
    api = await make_api()
    out = tmp_path / "screens.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops_center.tools.loadclients.screens",
        "--url",
        url_of(api),
        "--key",
        viewer_key.secret,
        "--topic",
        "devices",
        "--screens",
        "4",
        "--processes",
        "2",
        "--record",
        "4",
        "--duration",
        "0.5",
        "--out",
        str(out),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    body = orjson.loads(out.read_bytes())
    assert body["ready"]["opened"] == 4
    result = ScreensResult.from_json(body)
    assert result.total("snapshots") == 4
    assert [r.topic for r in result.records] == ["devices"] * 4
    assert all(r.snapshot_position >= 0 for r in result.records)


async def test_http_positions_equal_the_servers_answers(make_api, ce):
    api = await make_api()
    url = url_of(api)
    codes = [ce.code("camera.registered") for _ in range(6)]
    singles = [orjson.dumps(ce.event("camera.registered", c)) for c in codes]
    load = HttpLoad(
        url, api.key.secret, singles, content_type=STRUCTURED, processes=2, connections=2
    )
    assert await asyncio.to_thread(load.start) == 4
    result = await asyncio.to_thread(load.run)
    assert result.count == 6
    assert result.statuses == {200: 6}
    assert result.events == 6
    assert len(result.workers) == 2
    assert all(w.usage is not None and w.usage.cpu_s > 0 for w in result.workers)
    batches = [
        orjson.dumps([ce.event("camera.status", c, status="offline", time=ce.at(i)) for c in codes])
        for i in range(5)
    ]
    paced = await asyncio.to_thread(
        run_http, url, api.key.secret, batches, content_type=BATCH, processes=2, rate=50.0
    )
    assert paced.statuses == {200: 5}
    assert paced.events == 30
    assert paced.response().count == 5
    for run, bodies, kind in ((result, singles, STRUCTURED), (paced, batches, BATCH)):
        answers = run.answers()
        assert sorted(answers) == list(range(len(bodies)))
        for index, body in enumerate(bodies):
            again = await api.post(kind, body)
            assert again.status == 200
            assert [r["status"] for r in again.results] == ["duplicate"] * len(again.results)
            assert answers[index] == [r["position"] for r in again.results]
    every = [p for a in result.answers().values() for p in a]
    assert len(set(every)) == 6


async def test_http_counts_refused_requests(make_api, ce):
    api = await make_api()
    bodies = [orjson.dumps(ce.event("camera.registered"))] * 2
    result = await asyncio.to_thread(
        run_http, url_of(api), "wrong", bodies, content_type=STRUCTURED
    )
    assert result.statuses == {401: 2}
    assert result.events == 0
    assert result.workers[0].samples[0].startswith("HTTP 401")


async def test_http_reports_a_server_that_is_not_there(monkeypatch):
    from ops_center.embedded.common import free_port

    # With no connection the worker is left waiting for "go" and is ended by `close`'s
    # timeout (10 s by default): a shorter one ends it the same way, sooner.
    close = Worker.close
    monkeypatch.setattr(Worker, "close", lambda self, timeout=0.5: close(self, timeout))
    with pytest.raises(LoadClientError, match="no connection"):
        await asyncio.to_thread(
            run_http, f"http://127.0.0.1:{free_port()}", "k", [b"{}"], connections=1
        )


@pytest.mark.skipif(shutil.which("wrk") is None, reason="Debian's wrk is not installed")
async def test_wrk_single_events_are_all_answered_and_stored(make_api, ce, database_url):
    api = await make_api()
    cameras = [ce.code("camera.registered") for _ in range(5)]
    await api.ingest(*(ce.event("camera.registered", c, time=ce.at(-60)) for c in cameras))
    source = f"urn:ops-center:wrk-test:{os.urandom(6).hex()}"
    result = await asyncio.to_thread(
        run_wrk,
        url_of(api),
        api.key.secret,
        cameras,
        seconds=2,
        threads=1,
        connections=4,
        source=source,
    )
    assert result.requests > 0, result.output
    assert result.non_2xx == 0, result.output
    assert result.socket_errors == 0, result.output
    assert result.p50_ms <= result.p99_ms <= result.max_ms
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM ingest_receipts WHERE source = %s",
            (source,),
        ).fetchone()
    assert row is not None
    stored, distinct = row
    assert stored == distinct
    assert result.requests <= stored <= result.built


BURN = """
import sys
import time
spent = time.process_time()
while time.process_time() - spent < 0.3:
    pass
"""

PARENT = f"""
import subprocess, sys
burn = {BURN!r}
sys.stdin.readline()
subprocess.run([sys.executable, "-c", burn], check=True)
stays = subprocess.Popen(
    [sys.executable, "-c", burn + "print('burnt', flush=True); sys.stdin.readline()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
stays.stdout.readline()
print("ready", flush=True)
sys.stdin.readline()
stays.communicate("")
"""


def test_cpu_accounting_counts_processes_that_came_and_went(database_url):
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PARENT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdin is not None
        assert parent.stdout is not None
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            postmaster = postmaster_of(row[0])  # while the backend lives
        account = CpuAccount({"tree": [parent.pid], "postgres": [postmaster]})
        with account.phase() as phase:
            parent.stdin.write("go\n")
            parent.stdin.flush()
            assert parent.stdout.readline() == "ready\n"
            # a backend that starts and ends within the phase
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                backend = psutil.Process(row[0])
                conn.execute("SELECT count(*) FROM generate_series(1, 3000000)")
                times = backend.cpu_times()
            backend.wait(TIMEOUT)  # gone once the postmaster reaped it
        parent.stdin.write("end\n")
        parent.stdin.flush()
        assert parent.wait(TIMEOUT) == 0
    result = phase.result
    assert result is not None
    assert not result.missing
    # two children burnt 0.3 s each: one ended during the phase, one was still alive
    assert result.kinds["tree"] >= 0.5
    assert result.kinds["postgres"] >= times.user + times.system - 0.02
    assert result.machine_busy_s >= 0
    assert result.us_per_event("tree", 1000) == pytest.approx(result.kinds["tree"] * 1000)
    assert set(result.as_json(events=10)["us_per_event"]) == {"tree", "postgres"}


def test_cpu_account_marks_a_root_that_is_gone(tmp_path: Path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    account = CpuAccount({"gone": [gone.pid]})
    sample = account.sample()
    assert sample.missing == {"gone"}
    assert sample.kinds["gone"] == 0
