"""The ops-room page in real headless Chromium (Debian's ``chromium``), driven over the
DevTools protocol (`cdp`), against the real app on a real PostgreSQL.

The page is loaded with ``?token=``; events are posted through the HTTP API and the
``data-metric`` tiles must follow live over ``/ws``. Without Chromium the tests skip on a
workstation and fail under CI (``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from cdp import Chromium, Page, find_chromium

from streams import topics
from web.appkeys import PROJECTIONS, STREAM_HUB
from web.ws import close_websockets

VN = timezone(timedelta(hours=7))
#: Every overview tile's metric (the test reads them all).
METRICS = (
    "devices.camera.online",
    "devices.camera.offline",
    "devices.camera.degraded",
    "devices.radio.online",
    "devices.radio.offline",
    "broadcasts.active",
    "broadcasts.emergency_active",
    "services.received_today",
    "services.completed_today",
    "services.on_time_rate",
    "services.overdue",
    "kpis.on_track",
    "kpis.off_track",
    "alarms.active",
    "reports.received_today",
    "reports.open",
    "reports.overdue",
    "reports.resolved_today",
    "reports.satisfaction_rate",
)
#: The tiles' values as the page holds them (JSON in ``data-value``) and their texts.
READ_TILES = """(() => {
  const out = {};
  for (const node of document.querySelectorAll('.tiles [data-metric], .rfigures [data-metric]')) {
    out[node.dataset.metric] = {value: node.dataset.value, text: node.textContent};
  }
  return out;
})()"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Chromium]:
    """One headless Chromium for the module (each test opens its own context)."""
    path = find_chromium()
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    chromium = await Chromium.launch(path)
    try:
        yield chromium
    finally:
        await chromium.close()


@pytest.fixture
async def page(browser: Chromium) -> AsyncIterator[Page]:
    tab = await browser.new_page(1920, 1080)
    try:
        yield tab
    finally:
        await tab.close()
    assert tab.errors == [], f"the page reported errors: {tab.errors}"


def now(minutes: float = 0) -> str:
    return (datetime.now(VN) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


async def tiles(page: Page) -> dict[str, Any]:
    """Each metric's value as the page holds it."""
    read = await page.evaluate(READ_TILES)
    return {name: orjson.loads(tile["value"]) for name, tile in read.items()}


async def until_tiles(page: Page, expected: dict[str, Any], within: float = 10.0) -> None:
    """Wait until the tiles named in `expected` show these values."""
    # compared as JavaScript values (JSON writes 1.0 as 1 there)
    condition = " && ".join(
        f"((v) => v !== undefined && JSON.stringify(JSON.parse(v)) === "
        f"JSON.stringify({orjson.dumps(value).decode()}))"
        f"(document.querySelector('[data-metric=\"{name}\"]').dataset.value)"
        for name, value in expected.items()
    )
    try:
        await page.wait_for(condition, within)
    except TimeoutError:
        raise AssertionError(f"tiles {await tiles(page)} never reached {expected}") from None


async def overview(api: Any, key: Any, query: str = "") -> dict[str, Any]:
    reply = await api.get(f"/api/v1/overview{query}", key=key)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


def at(answer: dict[str, Any], path: str) -> Any:
    value: Any = answer
    for part in path.split("."):
        value = value[part]
    return value


async def open_live(page: Page, api: Any, secret: str) -> None:
    await page.goto(f"{api.client.make_url('/')}?token={secret}")
    await page.wait_for("opsRoom.connection === 'live' && opsRoom.states.overview !== undefined")


async def test_tiles_follow_events_posted_through_the_api(
    page: Page, make_api: Any, make_key: Any, ce: Any
) -> None:
    """Loaded with ?token=, the page keeps the key, cleans the address, shows the overview
    in Vietnamese and follows events live; it resumes after the server drops it."""
    api = await make_api(stream_refresh_seconds=3600.0)
    viewer = make_key("viewer")
    await open_live(page, api, viewer.secret)

    # the key left the address bar and stays in the browser
    href = await page.evaluate("location.href")
    assert "token" not in href
    assert viewer.secret not in href
    assert await page.evaluate("localStorage.getItem('opsCenter.token')") == viewer.secret

    # Vietnamese by default, with Vietnamese formats
    assert await page.evaluate("document.documentElement.lang") == "vi"
    assert await page.evaluate("document.querySelector('[data-tile=camera] h2').textContent") == (
        "Camera an ninh"
    )
    assert await page.evaluate("document.getElementById('conn-text').textContent") == "Trực tuyến"
    weekdays = ("Thứ", "Chủ nhật", "Chủ Nhật")
    assert (await page.evaluate("document.getElementById('clock-date').textContent")).startswith(
        weekdays
    )

    # the tiles show what the query answers
    answer = await overview(api, viewer)
    await until_tiles(page, {name: at(answer, name) for name in METRICS})
    before = await tiles(page)

    # events through the HTTP API: two cameras online, one offline, a station online
    # broadcasting an emergency bulletin, a dossier received now
    cameras = [ce.code("camera.registered") for _ in range(3)]
    station = ce.code("radio.station.registered")
    dossier = ce.code("dossier.received")
    events = []
    for i, camera in enumerate(cameras):
        events.append(ce.event("camera.registered", camera, time=now(-30)))
        status = "offline" if i == 2 else "online"
        events.append(ce.event("camera.status", camera, time=now(-2), status=status))
    events += [
        ce.event("radio.station.registered", station, time=now(-30)),
        ce.event("radio.station.status", station, time=now(-2), status="online"),
        ce.event(
            "radio.broadcast.started",
            station,
            time=now(-1),
            kind="emergency",
            program="Cảnh báo lũ quét",
        ),
        ce.event("dossier.received", dossier, time=now(-1), due_at=now(60 * 24)),
    ]
    await api.ingest(*events)
    expected = {
        "devices.camera.online": before["devices.camera.online"] + 2,
        "devices.camera.offline": before["devices.camera.offline"] + 1,
        "devices.radio.online": before["devices.radio.online"] + 1,
        "broadcasts.active": before["broadcasts.active"] + 1,
        "broadcasts.emergency_active": before["broadcasts.emergency_active"] + 1,
        "services.received_today": before["services.received_today"] + 1,
    }
    await until_tiles(page, expected)
    # the emergency stands out, and the numbers are written the Vietnamese way
    assert await page.evaluate(
        "document.querySelector('[data-tile=emergency]').classList.contains('active')"
    )
    texts = await page.evaluate(READ_TILES)
    for name, value in expected.items():
        assert texts[name]["text"].replace(".", "") == str(value), texts[name]
    # the feed shows the events, newest first, and the devices panel their unit
    feed = await page.evaluate("document.getElementById('feed').textContent")
    assert "Cảnh báo lũ quét" in feed
    assert cameras[2] in feed
    answer = await overview(api, viewer)
    assert {name: at(answer, name) for name in METRICS} == await tiles(page)

    # the server drops every WebSocket: the page shows it, reconnects by itself and
    # resumes with `since` (deltas, no fresh snapshot of the overview or devices)
    snapshots = await page.evaluate("JSON.stringify(opsRoom.counts.snapshot)")
    await close_websockets(api.app)
    await page.wait_for("opsRoom.connection === 'reconnecting'", 5, every=0.01)
    state = await page.evaluate("document.getElementById('conn').dataset.state")
    assert state == "reconnecting"
    await page.wait_for("opsRoom.connection === 'live'", 10)
    camera = ce.code("camera.registered")
    await api.ingest(
        ce.event("camera.registered", camera, time=now(-30)),
        ce.event("camera.status", camera, time=now(-1), status="degraded"),
    )
    await until_tiles(page, {"devices.camera.degraded": before["devices.camera.degraded"] + 1})
    counts = orjson.loads(await page.evaluate("JSON.stringify(opsRoom.counts.snapshot)"))
    first = orjson.loads(snapshots)
    assert counts["overview"] == first["overview"]
    assert counts["devices"] == first["devices"]

    # the hub resynchronises every subscription (as after lost stream changes): the page
    # shows it, takes the fresh snapshots and goes back to live
    api.app[STREAM_HUB].resync_all()
    await page.wait_for("opsRoom.connection === 'resync'", 5, every=0.01)
    await page.wait_for("opsRoom.connection === 'live'", 10)
    answer = await overview(api, viewer)
    await until_tiles(page, {name: at(answer, name) for name in METRICS})


async def test_english_switch_is_remembered_and_a_unit_can_be_followed(
    page: Page, make_api: Any, make_key: Any, ce: Any
) -> None:
    api = await make_api()
    viewer = make_key("viewer")
    await open_live(page, api, viewer.secret)
    await page.evaluate("document.getElementById('lang').click()")
    assert await page.evaluate("document.documentElement.lang") == "en"
    heading = "document.querySelector('[data-tile=camera] h2').textContent"
    assert await page.evaluate(heading) == "Security cameras"
    assert await page.evaluate("document.getElementById('conn-text').textContent") == "Live"

    # reloaded without ?token=: the stored key and the language are both remembered
    await page.reload()
    await page.wait_for("opsRoom.connection === 'live' && opsRoom.states.overview !== undefined")
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.evaluate(heading) == "Security cameras"
    assert await page.evaluate("document.getElementById('lang').textContent") == "Tiếng Việt"

    await page.evaluate("document.getElementById('lang').click()")
    assert await page.evaluate("document.documentElement.lang") == "vi"
    assert await page.evaluate(heading) == "Camera an ninh"

    # following one unit: the tiles show the overview of that unit, live
    unit = orjson.dumps(ce.UNIT).decode()
    await page.evaluate(
        f"const s = document.getElementById('scope'); s.value = {unit};"
        "s.dispatchEvent(new Event('change'))"
    )
    assert f"unit={ce.UNIT}" in await page.evaluate("location.href")
    answer = await overview(api, viewer, f"?unit={ce.UNIT}")
    await until_tiles(page, {name: at(answer, name) for name in METRICS})
    camera = ce.code("camera.registered")
    await api.ingest(
        ce.event("camera.registered", camera, time=now(-30)),
        ce.event("camera.status", camera, time=now(-1), status="offline"),
    )
    expected = answer["devices"]["camera"]["offline"] + 1
    await until_tiles(page, {"devices.camera.offline": expected})
    answer = await overview(api, viewer, f"?unit={ce.UNIT}")
    assert answer["devices"]["camera"]["offline"] == expected
    assert await tiles(page) == {name: at(answer, name) for name in METRICS}


async def test_missing_or_refused_keys_get_the_key_screen(
    page: Page, make_api: Any, make_key: Any
) -> None:
    api = await make_api()
    shown = "!document.getElementById('auth').hidden"
    reason = "document.getElementById('auth').dataset.reason"

    await page.goto(str(api.client.make_url("/")))
    await page.wait_for(shown)
    assert await page.evaluate(reason) == "missing"
    assert "khóa truy cập" in await page.evaluate("document.getElementById('auth').textContent")

    # an unknown key (401), then a key that may not read (403: integration)
    for secret in ("not-a-key", make_key("integration").secret):
        await page.goto(f"{api.client.make_url('/')}?token={secret}")
        await page.wait_for(f"{shown} && {reason} === 'refused'")
        assert "token" not in await page.evaluate("location.href")
        assert await page.evaluate("opsRoom.connection") == "offline"

    # a good key entered on the screen opens the board
    viewer = make_key("viewer")
    await page.evaluate(
        f"document.getElementById('auth-token').value = {orjson.dumps(viewer.secret).decode()};"
        "document.getElementById('auth-form').requestSubmit()"
    )
    await page.wait_for("opsRoom.connection === 'live' && document.getElementById('auth').hidden")
    assert await page.evaluate("localStorage.getItem('opsCenter.token')") == viewer.secret


@pytest.fixture
def own_database(new_database: Any) -> Iterator[str]:
    """A database of its own: the alarm rules follow the whole log from one elected node
    (as in tests/e2e/test_alarms.py)."""
    with new_database() as url:
        yield url


async def test_operators_acknowledge_and_resolve_alarms_viewers_only_see_them(
    own_database: str, browser: Chromium, make_api: Any, make_key: Any, ce: Any
) -> None:
    """An emergency bulletin raises an alarm: an operator's page acknowledges then
    resolves it with the buttons; a viewer's page shows it without buttons."""
    api = await make_api(database_url=own_database, alarm_rules=True, alarm_tick_seconds=0.1)
    operator = make_key("operator", url=own_database)
    viewer = make_key("viewer", url=own_database)
    pages = [await browser.new_page(1920, 1080) for _ in range(2)]
    try:
        for tab, key in zip(pages, (operator, viewer), strict=True):
            await open_live(tab, api, key.secret)
        station = ce.code("radio.station.registered")
        await api.ingest(
            ce.event("radio.station.registered", station, time=now(-30)),
            ce.event("radio.station.status", station, time=now(-2), status="online"),
            ce.event("radio.broadcast.started", station, time=now(-1), kind="emergency"),
        )
        card = (
            "[...document.querySelectorAll('#alarms .alarm')]"
            f".find((c) => c.textContent.includes({orjson.dumps(station).decode()}))"
        )
        for tab in pages:
            await tab.wait_for(f"{card} !== undefined")
        operator_page, viewer_page = pages
        assert await viewer_page.evaluate(f"{card}.querySelectorAll('button').length") == 0
        assert await operator_page.evaluate(f"{card}.classList.contains('sev-critical')")

        await operator_page.evaluate(f"{card}.querySelector('button[data-action=ack]').click()")
        for tab in pages:  # live on every screen
            await tab.wait_for(f"{card} && {card}.classList.contains('state-acknowledged')")
        await operator_page.evaluate(f"{card}.querySelector('button[data-action=resolve]').click()")
        for tab in pages:
            await tab.wait_for(f"{card} === undefined")
        for tab in pages:
            assert tab.errors == [], tab.errors
    finally:
        for tab in pages:
            await tab.close()


#: The reports panel's rows and the map's markers as the page shows them.
READ_PANELS = """(() => {
  const rows = {};
  for (const row of document.querySelectorAll('#reports .rrow[data-category]')) {
    rows[row.dataset.category] = {open: +row.dataset.open, overdue: +row.dataset.overdue,
                                  label: row.querySelector('.rname').textContent};
  }
  const marks = (selector) => [...document.querySelectorAll('#map ' + selector)]
    .map((n) => [n.dataset.kind, n.dataset.code, n.dataset.state || null]);
  return {rows, units: marks('[data-kind=unit]'), devices: marks('.dev'), reports: marks('.rep'),
          note: document.getElementById('map-note').textContent,
          heading: document.querySelector('.reports h2').textContent};
})()"""


async def every_page(api: Any, key: Any, path: str) -> list[dict[str, Any]]:
    """Every item of a report list, following `next`."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        reply = await api.get(path if cursor is None else f"{path}&cursor={cursor}", key=key)
        assert reply.status == 200, reply.body
        items.extend(reply.body["items"])
        if reply.body["next"] is None:
            return items
        cursor = quote(reply.body["next"])


async def expected_panels(api: Any, key: Any) -> dict[str, Any]:
    """What the reports and map panels must show, from the queries alone."""
    open_ = await every_page(api, key, "/api/v1/reports?state=open&limit=1000")
    rows: dict[str, dict[str, int]] = {}
    for category in {r["category"] for r in open_}:
        listed = await every_page(api, key, f"/api/v1/reports?state=open&category={category}")
        late = await every_page(api, key, f"/api/v1/reports?state=overdue&category={category}")
        rows[category] = {"open": len(listed), "overdue": len(late)}
    devices = []
    for kind in ("camera", "radio"):
        page = (await api.get(f"/api/v1/devices?kind={kind}&limit=1000", key=key)).body
        devices += [(d["kind"], d["code"], d["status"] or "unknown") for d in page["items"]]
    units = (await api.get("/api/v1/units", key=key)).body["items"]
    return {
        "rows": rows,
        "units": sorted(("unit", u["code"], None) for u in units if "lat" in u),
        "devices": sorted(devices),
        "reports": sorted(("report", r["code"], r["state"]) for r in open_),
    }


async def shown_panels(page: Page) -> dict[str, Any]:
    shown = await page.evaluate(READ_PANELS)
    return {
        "rows": {c: {"open": r["open"], "overdue": r["overdue"]} for c, r in shown["rows"].items()},
        "units": sorted(tuple(m) for m in shown["units"]),
        "devices": sorted(tuple(m) for m in shown["devices"]),
        "reports": sorted(tuple(m) for m in shown["reports"]),
    }


async def until_panels(page: Page, api: Any, key: Any, within: float = 10.0) -> dict[str, Any]:
    """Wait until the panels show what the queries answer now; that answer."""
    expected = await expected_panels(api, key)
    async with asyncio.timeout(within):
        while (shown := await shown_panels(page)) != expected:
            await asyncio.sleep(0.1)
            expected = await expected_panels(api, key)
    return shown


async def test_the_reports_panel_and_the_map_equal_the_queries_and_follow_live(
    own_database: str, browser: Chromium, make_api: Any, make_key: Any, ce: Any
) -> None:
    """Reports by category, the reports' figures and the map's units, devices and open
    reports are what the queries answer; a new overdue report shows on both, live, and
    leaves them when it is resolved."""
    api = await make_api(database_url=own_database, stream_refresh_seconds=3600.0)
    viewer = make_key("viewer", url=own_database)
    tab = await browser.new_page(1920, 1080)
    try:
        cameras = [ce.code("camera.registered") for _ in range(3)]
        station = ce.code("radio.station.registered")
        events = [ce.event("camera.registered", c, time=now(-30)) for c in cameras]
        events += [
            ce.event("camera.status", cameras[0], time=now(-2), status="online"),
            ce.event("camera.status", cameras[1], time=now(-2), status="offline"),
            ce.event("radio.station.registered", station, time=now(-30), lat=None, lon=None),
            ce.event("radio.station.status", station, time=now(-2), status="online"),
        ]
        reports = [ce.code("report.received") for _ in range(4)]
        events += [
            # new, by its own coordinates
            ce.event("report.received", reports[0], time=now(-50), category="traffic"),
            # assigned, due tomorrow; no coordinates: at its unit's centroid
            ce.event("report.received", reports[1], time=now(-40), lat=None, lon=None),
            ce.event("report.assigned", reports[1], time=now(-35), due_at=now(60 * 24)),
            # assigned, overdue
            ce.event("report.received", reports[2], time=now(-30), category="utilities"),
            ce.event("report.assigned", reports[2], time=now(-25), due_at=now(-5)),
            # resolved and rated: not on the map
            ce.event("report.received", reports[3], time=now(-20)),
            ce.event("report.resolved", reports[3], time=now(-10)),
            ce.event("report.rated", reports[3], time=now(-5), rating="satisfied"),
        ]
        await api.ingest(*events)
        await open_live(tab, api, viewer.secret)
        answer = await overview(api, viewer)
        await until_tiles(tab, {name: at(answer, name) for name in METRICS})
        assert answer["reports"] == {
            "received_today": answer["reports"]["received_today"],
            "open": 3,
            "overdue": 1,
            "resolved_today": answer["reports"]["resolved_today"],
            "satisfaction_rate": 1.0,
        }
        shown = await until_panels(tab, api, viewer)
        assert shown["rows"] == {
            "traffic": {"open": 1, "overdue": 0},
            "environment": {"open": 1, "overdue": 0},
            "utilities": {"open": 1, "overdue": 1},
        }
        assert len(shown["units"]) == len(ce.PROFILE.units)
        assert sorted(code for _, code, _ in shown["devices"]) == sorted([*cameras, station])
        assert ("camera", cameras[1], "offline") in shown["devices"]
        assert ("camera", cameras[2], "unknown") in shown["devices"]
        assert ("report", reports[2], "overdue") in shown["reports"]
        assert reports[3] not in {code for _, code, _ in shown["reports"]}
        panels = await tab.evaluate(READ_PANELS)
        assert panels["heading"] == "Phản ánh hiện trường"
        assert panels["rows"]["utilities"]["label"] == "Điện, nước, chiếu sáng"
        assert "1 mất kết nối" in panels["note"]
        assert "1 quá hạn" in panels["note"]
        # the overdue report is red on the map, with a halo
        overdue_mark = f"#map .rep[data-code={orjson.dumps(reports[2]).decode()}]"
        assert await tab.evaluate(
            f"document.querySelector('{overdue_mark}').classList.contains('overdue')"
        )
        assert await tab.evaluate("document.querySelectorAll('#map .halo').length") == 1

        # live: a new overdue report in another category shows on the panel and the map
        late = ce.code("report.received")
        await api.ingest(
            ce.event("report.received", late, time=now(-15), category="security"),
            ce.event("report.assigned", late, time=now(-14), due_at=now(-1)),
        )
        mark = f"#map .rep[data-code={orjson.dumps(late).decode()}]"
        await tab.wait_for(f"document.querySelector('{mark}') !== null", 10)
        await until_tiles(tab, {"reports.open": 4, "reports.overdue": 2})
        shown = await until_panels(tab, api, viewer)
        assert shown["rows"]["security"] == {"open": 1, "overdue": 1}
        assert ("report", late, "overdue") in shown["reports"]
        # resolved: it leaves the panel and the map
        await api.ingest(ce.event("report.resolved", late, time=now(0)))
        await tab.wait_for(f"document.querySelector('{mark}') === null", 10)
        await until_tiles(tab, {"reports.open": 3, "reports.overdue": 1})
        shown = await until_panels(tab, api, viewer)
        assert "security" not in shown["rows"]
        answer = await overview(api, viewer)
        assert await tiles(tab) == {name: at(answer, name) for name in METRICS}

        # in English
        await tab.evaluate("document.getElementById('lang').click()")
        panels = await tab.evaluate(READ_PANELS)
        assert panels["heading"] == "Citizens' field reports"
        assert panels["rows"]["utilities"]["label"] == "Utilities"
        assert "open reports" in panels["note"]
        assert tab.errors == [], tab.errors
    finally:
        await tab.close()


def delta_cases(count: int = 300) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Random states and deltas of every topic (seeded): merges with nested objects, nulls
    and lists; items added, replaced and removed, with extra top-level keys."""
    rng = random.Random(6)
    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def scalar() -> Any:
        return rng.choice([0, 7, 0.5, None, "x", [1, 2], True])

    def tree(depth: int) -> dict[str, Any]:
        return {
            k: tree(depth - 1) if depth and rng.random() < 0.4 else scalar()
            for k in rng.sample("abcdef", rng.randint(1, 4))
        }

    def item(name: str, n: int) -> dict[str, Any]:
        moment = f"2026-11-22T0{rng.randint(0, 9)}:00"
        base = {"value": rng.randint(0, 9), "raised_at": moment, "received_at": moment}
        keys = {
            "devices": {"kind": rng.choice(["camera", "radio"]), "code": f"C{n}"},
            "kpis": {"code": f"K{n}"},
            "feed": {"position": n},
            "alarms": {"id": f"a{n}"},
            "reports": {"code": f"P{n}"},
        }[name]
        return {**base, **keys}

    for _ in range(count):
        name = rng.choice(list(topics.TOPICS))
        topic = topics.TOPICS[name]
        if topic.delta == "merge":
            cases.append((name, tree(2), tree(2)))
            continue
        state = {"position": 1, "items": [item(name, rng.randint(0, 12)) for _ in range(6)]}
        state = topics.apply(topic, {"position": 0, "items": []}, state)  # unique keys
        delta: dict[str, Any] = {"position": 2, "items": [item(name, rng.randint(0, 12))]}
        removed = rng.sample(state["items"], min(2, len(state["items"])))
        delta["removed"] = [topic.key_json(topic.key(i)) for i in removed]
        if rng.random() < 0.5:
            delta["as_of"] = "later"
        cases.append((name, state, delta))
    return cases


async def test_the_page_applies_deltas_exactly_as_streams_topics(page: Page, make_api: Any) -> None:
    """The page's JavaScript gives the same state as `streams.topics.apply` (the rules'
    reference) for every topic, order included."""
    api = await make_api()
    await page.goto(str(api.client.make_url("/")))
    await page.wait_for("window.opsRoom !== undefined")
    cases = delta_cases()
    script = (
        f"JSON.stringify({orjson.dumps(cases).decode()}"
        ".map(([name, state, delta]) => opsRoom.applyDelta(name, state, delta)))"
    )
    got = orjson.loads(await page.evaluate(script))
    expected = [topics.apply(topics.TOPICS[name], state, delta) for name, state, delta in cases]
    assert got == expected


# -- the service index and lineage ------------------------------------------------------------

#: The index panel as the page shows it: the total, each group's score, the lowest agencies.
READ_INDEX = """(() => {
  const value = (node) => JSON.parse(node.dataset.value || 'null');
  const groups = {};
  for (const row of document.querySelectorAll('.index-groups [data-group]')) {
    groups[row.dataset.group] = value(row.querySelector('[data-metric]'));
  }
  return {
    total: value(document.querySelector('.index [data-metric="services.index.total"]')),
    groups,
    lowest: [...document.querySelectorAll('#index-lowest li[data-agency] b')].map(
      (b) => [b.dataset.agency, value(b)]),
  };
})()"""


async def settled(api: Any, position: int) -> None:
    """Wait until every projection of the app has applied `position`."""
    async with asyncio.timeout(15):
        await api.app[PROJECTIONS].wait_for(position)


async def index_shown(api: Any, key: Any, unit: str | None = None) -> dict[str, Any]:
    """What the index panel must show: this month's index and its three lowest agencies."""
    month = datetime.now(VN).strftime("%Y-%m")
    scope = "" if unit is None else f"&unit={unit}"
    index = (await api.get(f"/api/v1/services/index?period={month}{scope}", key=key)).body
    ranking = await api.get(f"/api/v1/services/index/ranking?period={month}{scope}", key=key)
    return {
        "total": index["total"],
        "groups": {name: group["score"] for name, group in index["groups"].items()},
        "lowest": [[i["code"], i["total"]] for i in ranking.body["items"][::-1][:3]],
    }


async def until_index(page: Page, expected: dict[str, Any], within: float = 10.0) -> None:
    """Wait until the index panel shows `expected` (numbers compared as numbers)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        shown = await page.evaluate(READ_INDEX)
        if shown == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the index panel shows {shown}, never {expected}")
        await asyncio.sleep(0.05)


def dossiers(ce: Any, agency: str, *, on_time: bool, flags: bool) -> list[dict[str, Any]]:
    """A dossier of `agency` received now and completed now: on time (due tomorrow) or
    late (due an hour ago), with every flag of the index or none."""
    code = ce.code("dossier.received")
    due = now(60 * 24) if on_time else now(-60)
    return [
        ce.event(
            "dossier.received",
            code,
            time=now(-90 if not on_time else 0),
            due_at=due,
            agency=agency,
            digitised=flags,
            fee=True,
            channel="online" if flags else "counter",
        ),
        ce.event("dossier.completed", code, time=now(), e_result=flags, paid_online=flags),
        ce.event(
            "dossier.rated", code, time=now(), rating="satisfied" if flags else "dissatisfied"
        ),
    ]


async def test_the_index_panel_shows_the_month_and_the_lowest_agencies_live(
    own_database: str, page: Page, make_api: Any, make_key: Any, ce: Any
) -> None:
    api = await make_api(database_url=own_database, stream_refresh_seconds=3600.0)
    viewer = make_key("viewer", url=own_database)
    integration = make_key("integration", url=own_database)
    agencies = list(ce.PROFILE.agencies)[:4]
    events = []
    for i, agency in enumerate(agencies):  # the first ones score best
        events += dossiers(ce, agency, on_time=i < 2, flags=i % 2 == 0)
    await settled(api, (await api.batch(events, key=integration)).positions()[-1])
    await open_live(page, api, viewer.secret)
    await page.wait_for("opsRoom.states.services && opsRoom.states.services.index")
    expected = await index_shown(api, viewer)
    assert len(expected["lowest"]) == 3
    assert expected["lowest"][0][0] == agencies[3]  # late, without any flag
    assert {code for code, _ in expected["lowest"]} == set(agencies[1:])
    await until_index(page, expected)
    # the note says what the figure is, in Vietnamese
    note = await page.evaluate("document.querySelector('.index-note').textContent")
    assert "không phải điểm chính thức" in note

    # a late dossier of the best agency, live: the province's index and the lowest move
    late = dossiers(ce, agencies[0], on_time=False, flags=False)
    await settled(api, (await api.batch(late, key=integration)).positions()[-1])
    changed = await index_shown(api, viewer)
    assert changed != expected
    await until_index(page, changed)


async def test_every_figure_opens_where_it_comes_from(
    own_database: str, page: Page, make_api: Any, make_key: Any, ce: Any
) -> None:
    """A click on any figure with ``data-metric`` (tiles, the index panel, the lowest
    agencies, KPI values) shows the events of ``GET /api/v1/lineage`` for it."""
    api = await make_api(database_url=own_database, stream_refresh_seconds=3600.0)
    viewer = make_key("viewer", url=own_database)
    integration = make_key("integration", url=own_database)
    camera = ce.code("camera.registered")
    indicator = ce.code("kpi.defined")
    events = [
        ce.event("camera.registered", camera, time=now(-30)),
        ce.event("camera.status", camera, time=now(-2), status="offline"),
        ce.event("kpi.defined", indicator, time=now(-30)),
        ce.event("kpi.reported", indicator, time=now(-20), value=40),
        ce.event("kpi.reported", indicator, time=now(-10), value=45),
    ]
    for agency in list(ce.PROFILE.agencies)[:2]:
        events += dossiers(ce, agency, on_time=True, flags=True)
    await settled(api, (await api.batch(events, key=integration)).positions()[-1])
    await open_live(page, api, viewer.secret)
    await page.wait_for(
        "opsRoom.states.services && opsRoom.states.services.index && "
        "document.querySelectorAll('#index-lowest li[data-agency]').length === 2 && "
        f"document.querySelector('[data-kpi=\"{indicator}\"] [data-metric]') !== null"
    )
    month = datetime.now(VN).strftime("%Y-%m")
    # each figure by a selector that survives re-rendering (panels redraw their rows)
    figures = await page.evaluate(
        "[...document.querySelectorAll('[data-metric]')].map((n) => {"
        "  const box = n.closest('.tiles, .panel');"
        '  const agency = n.dataset.agency ? `[data-agency="${n.dataset.agency}"]` '
        "    : ':not([data-agency])';"
        '  const metric = `[data-metric="${n.dataset.metric}"]`;'
        "  const overview = box.classList.contains('tiles') || n.closest('.rfigures') !== null;"
        "  return [`.${[...box.classList].join('.')} ${metric}${agency}`,"
        "    n.dataset.metric, overview, n.dataset.agency || null]; })"
    )
    assert len(figures) >= 14 + 5 + 6 + 2 + 1  # tiles, reports, index, lowest, a KPI
    assert len({selector for selector, *_ in figures}) == len(figures)
    for selector, metric, tile, agency in figures:
        await page.evaluate(f"document.querySelector({orjson.dumps(selector).decode()}).click()")
        await page.wait_for(
            "!document.getElementById('lineage').hidden && "
            "document.getElementById('lineage-summary').textContent !== ''"
        )
        if tile:
            query = f"figure=overview.{metric}"
        elif metric.startswith("services.index"):
            query = f"figure={metric}&period={month}" + (f"&agency={agency}" if agency else "")
        else:
            query = f"figure={metric}"
        answer = await api.get(f"/api/v1/lineage?{query}&limit=50", key=viewer)
        assert answer.status == 200, (query, answer.body)
        shown = await page.evaluate(
            "[...document.querySelectorAll('#lineage-items li[data-position]')]"
            ".map((li) => [Number(li.dataset.position), li.dataset.id])"
        )
        assert shown == [[i["position"], i["id"] or ""] for i in answer.body["items"]], query
        summary = await page.evaluate("document.getElementById('lineage-summary').textContent")
        assert "Giá trị" in summary
        await page.evaluate("document.getElementById('lineage-close').click()")
        await page.wait_for("document.getElementById('lineage').hidden")
    # the camera offline tile lists the status report that put it there, with its key
    await page.evaluate(
        "document.querySelector('.tiles [data-metric=\"devices.camera.offline\"]').click()"
    )
    await page.wait_for(
        "document.querySelectorAll('#lineage-items li[data-position]').length === 1"
    )
    text = await page.evaluate("document.getElementById('lineage-items').textContent")
    assert camera in text
    assert integration.name in text
    await page.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
    await page.wait_for("document.getElementById('lineage').hidden")


async def test_replay_shows_a_past_value_then_back_to_live(
    page: Page, make_api: Any, make_key: Any, ce: Any
) -> None:
    """The replay bar shows the overview as it stood at a past moment (a camera online that
    went offline since), says it is not live, and one click brings the live tiles back."""
    api = await make_api(stream_refresh_seconds=3600.0)
    viewer = make_key("viewer")
    camera = ce.code("camera.registered")
    last = max(
        await api.ingest(
            ce.event("camera.registered", camera, time=now(-30)),
            ce.event("camera.status", camera, time=now(-1), status="online"),
        )
    )
    async with asyncio.timeout(15):
        await api.app[PROJECTIONS].wait_for(last)
    await asyncio.sleep(1.1)
    moment = datetime.now(VN).replace(microsecond=0)  # the camera was online then
    past = await overview(api, viewer, f"?as_of={quote(moment.isoformat())}")
    await asyncio.sleep(1.1)
    offline = ce.event("camera.status", camera, time=now(), status="offline")
    last = max(await api.ingest(offline))
    async with asyncio.timeout(15):
        await api.app[PROJECTIONS].wait_for(last)

    await open_live(page, api, viewer.secret)
    live = await overview(api, viewer)
    assert live["devices"]["camera"]["offline"] == past["devices"]["camera"]["offline"] + 1
    await until_tiles(page, {name: at(live, name) for name in METRICS})

    await page.evaluate("document.getElementById('replay-open').click()")
    assert await page.evaluate("!document.getElementById('replay').hidden")
    banner = "document.querySelector('.replay-banner').textContent"
    assert await page.evaluate(banner) == "Đang phát lại — không phải trực tiếp"
    assert await page.evaluate("opsRoom.connection") == "replay"  # the badge no longer says live
    value = orjson.dumps(moment.isoformat()[:19]).decode()
    await page.evaluate(
        f"""(() => {{
          document.getElementById('replay-at').value = {value};
          document.getElementById('replay-speed').value = '1';
          document.getElementById('replay-play').click();
        }})()"""
    )
    await until_tiles(page, {name: at(past, name) for name in METRICS})
    assert await page.evaluate("opsRoom.replay.time") == moment.isoformat()
    await page.evaluate("document.getElementById('replay-play').click()")  # pause
    await page.wait_for("opsRoom.replay.playing === false")
    # in English too
    await page.evaluate("document.getElementById('lang').click()")
    assert await page.evaluate(banner) == "Replay — not live"
    await page.evaluate("document.getElementById('lang').click()")

    await page.evaluate("document.getElementById('replay-live').click()")
    assert await page.evaluate("document.getElementById('replay').hidden")
    assert await page.evaluate("opsRoom.replay") is None
    assert await page.evaluate("opsRoom.connection") == "live"
    await until_tiles(page, {name: at(live, name) for name in METRICS})
    # live subscriptions carry on: a new camera shows at once
    other = ce.code("camera.registered")
    await api.ingest(
        ce.event("camera.registered", other, time=now(-30)),
        ce.event("camera.status", other, time=now(), status="degraded"),
    )
    degraded = at(live, "devices.camera.degraded") + 1
    await until_tiles(page, {"devices.camera.degraded": degraded})
