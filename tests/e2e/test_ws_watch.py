"""``ops-center watch``: the terminal view follows a topic and resumes after a disconnection."""

from __future__ import annotations

import asyncio
import io
import time

from test_ws import camera_online, settled

from ops_center.cli.main import build_parser
from ops_center.tools.watch import Watcher, render
from streams.topics import TOPICS
from web.appkeys import WEBSOCKETS
from web.ws import close_websockets


async def eventually(check, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_watch_shows_the_topic_and_resumes_with_since(make_api, viewer_key, ce):
    api = await make_api()
    server = api.client.server
    out = io.StringIO()
    watcher = Watcher(
        f"ws://{server.host}:{server.port}/ws",
        viewer_key.secret,
        "devices",
        ce.UNIT,
        out,
        clear=False,
    )
    task = asyncio.create_task(watcher.run())
    try:
        await eventually(lambda: "devices" in watcher.screen.states)
        positions = await api.ingest(*camera_online(ce))
        await eventually(lambda: watcher.screen.positions["devices"] >= positions[-1])
        assert f"devices at position {positions[-1]}" in out.getvalue()

        await close_websockets(api.app)  # the connection drops; watch reconnects
        await eventually(lambda: len(api.app[WEBSOCKETS]) == 1)
        later = await api.ingest(*camera_online(ce, "offline"))
        await settled(api, later[-1])
        await eventually(lambda: watcher.screen.positions["devices"] >= later[-1])
        assert watcher.screen.snapshots == {"devices": 1}  # resumed, not reloaded
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_render_shows_figures_and_items():
    text = render("overview", {"position": 3, "alarms": {"active": 2}}, 3)
    assert text.splitlines() == ["overview at position 3", "  alarms:", "    active: 2"]
    feed = {"position": 9, "items": [{"position": 9, "time": "t", "type": "camera.status"}]}
    assert "camera.status" in render("feed", feed, 9)


def test_render_draws_every_items_topic():
    """Each items topic has a line per item (a topic without one would stop `watch`)."""
    samples = {
        "devices": {"kind": "camera", "code": "CAM-1", "status": "online", "unit": "U"},
        "kpis": {"code": "K", "status": "met", "latest": None, "target": 1, "measure": "%"},
        "feed": {"position": 9, "time": "t", "type": "camera.status"},
        "alarms": {"id": "a", "cause": "device_offline"},
        "reports": {
            "code": "PA-1",
            "state": "overdue",
            "category": "environment",
            "unit": "MS-D01-C01",
            "agency": "SXD",
            "due_at": "2026-11-22T17:00:00+07:00",
        },
    }
    items_topics = {name for name, topic in TOPICS.items() if topic.delta == "items"}
    assert set(samples) == items_topics
    for name, item in samples.items():
        lines = render(name, {"position": 1, "items": [item]}, 1).splitlines()
        assert lines[1] == "  1 item(s)"
    assert "overdue" in render("reports", {"items": [samples["reports"]]}, 1)


def test_watch_is_a_command():
    args = build_parser().parse_args(["watch", "overview", "--unit", "X", "--key", "k"])
    assert (args.topic, args.unit, args.key) == ("overview", "X", "k")
