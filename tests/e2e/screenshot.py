"""Regenerate the ops-room page's screenshot, ``docs/screenshots/ops-room.png``.

    .venv/bin/python tests/e2e/screenshot.py [--out PATH] [--width 1920 --height 1080]
                                             [--phone PATH] [--database-url URL]

Starts the real server (on an embedded PostgreSQL in a temporary folder unless
``--database-url`` names an empty database), creates an integration key and an operator
key, posts a realistic day of the demo profile (`demo_events`: cameras and commune radio
stations of every district, broadcasts with one emergency bulletin, the day's dossiers hour
by hour, overdue ones, KPIs of the resolutions with monthly reports), opens the page in
headless Chromium with ``?token=`` and captures it over the DevTools protocol once every
panel has its data.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cdp import Chromium

from ops_center.access.keystore import create_key
from ops_center.province.profile import Profile, load_profile
from ops_center.settings import Settings
from web.app import create_app

VN = timezone(timedelta(hours=7))
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "screenshots" / "ops-room.png"
SOURCE = "urn:ops-center:demo-screenshot"

PROCEDURES = (
    ("1.001193", "Đăng ký khai sinh", "full_online"),
    ("1.000894", "Đăng ký thường trú", "full_online"),
    ("1.004227", "Cấp phiếu lý lịch tư pháp", "full_online"),
    ("2.000889", "Đăng ký hộ kinh doanh", "partial_online"),
    ("1.003010", "Cấp giấy chứng nhận quyền sử dụng đất", "partial_online"),
    ("1.009994", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "partial_online"),
    ("1.001612", "Chứng thực bản sao từ bản chính", "offline"),
    ("2.001159", "Cấp giấy phép lái xe (đổi)", "full_online"),
)
AGENCIES = ("TTPVHCC", "STP", "STNMT", "SXD", "SKHDT", "SGTVT", "CAT")
PLACES = ("trụ sở UBND", "ngã tư trung tâm")
PROGRAMS = ("Bản tin thời sự sáng", "Phổ biến pháp luật", "Tuyên truyền chuyển đổi số")
KPIS = (
    # code, name, measure, owner, pillar, direction, start, target, drift, reference
    (
        "CQS-01",
        "Tỷ lệ hồ sơ trực tuyến toàn trình",
        "%",
        "TTPVHCC",
        "digital_government",
        "increase",
        52.0,
        80.0,
        2.9,
        "NQ 57-NQ/TW",
    ),
    (
        "CQS-02",
        "Tỷ lệ thanh toán trực tuyến phí, lệ phí",
        "%",
        "STC",
        "digital_government",
        "increase",
        31.0,
        60.0,
        1.4,
        "NQ 57-NQ/TW",
    ),
    (
        "CQS-03",
        "Hồ sơ được số hóa kết quả giải quyết",
        "%",
        "STTTT",
        "digital_government",
        "increase",
        70.0,
        100.0,
        3.1,
        "Đề án 06",
    ),
    (
        "KTS-01",
        "Tỷ trọng kinh tế số trong GRDP",
        "%",
        "SKHDT",
        "digital_economy",
        "increase",
        11.2,
        20.0,
        0.35,
        "NQ 111-NQ/TU",
    ),
    (
        "KTS-02",
        "Doanh nghiệp dùng hóa đơn điện tử",
        "%",
        "CT",
        "digital_economy",
        "increase",
        88.0,
        95.0,
        0.9,
        "NQ 111-NQ/TU",
    ),
    (
        "XHS-01",
        "Người trưởng thành có chữ ký số cá nhân",
        "%",
        "STTTT",
        "digital_society",
        "increase",
        18.0,
        50.0,
        1.2,
        "NQ 57-NQ/TW",
    ),
    (
        "HTS-01",
        "Hộ gia đình có cáp quang",
        "%",
        "STTTT",
        "infrastructure",
        "increase",
        81.0,
        90.0,
        1.0,
        "NQ 111-NQ/TU",
    ),
    (
        "CQS-04",
        "Thời gian giải quyết TTHC trung bình",
        "ngày",
        "VPUBND",
        "digital_government",
        "decrease",
        6.4,
        4.0,
        -0.12,
        "NQ 57-NQ/TW",
    ),
)


def _at(moment: datetime) -> str:
    return moment.astimezone(VN).isoformat(timespec="seconds")


def demo_events(profile: Profile, now: datetime, seed: int = 20261122) -> list[dict[str, Any]]:
    """A realistic day of the province, oldest first, every event before `now`."""
    rng = random.Random(seed)
    now = now.astimezone(VN)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first_hour = day_start + timedelta(hours=7) if now.hour >= 9 else day_start
    events: list[dict[str, Any]] = []
    counter = iter(range(1, 10**9))

    def add(event_type: str, subject: str, when: datetime, data: dict[str, Any]) -> None:
        events.append(
            {
                "specversion": "1.0",
                "id": f"shot-{next(counter):06d}",
                "source": SOURCE,
                "type": event_type,
                "time": _at(min(when, now - timedelta(seconds=1))),
                "subject": subject,
                "data": data,
            }
        )

    def today(low: float = 0.0, high: float = 1.0) -> datetime:
        span = (now - first_hour).total_seconds()
        return first_hour + timedelta(seconds=span * rng.uniform(low, high))

    communes = [u for u in profile.units.values() if u.level in ("commune", "ward", "township")]
    registered = now - timedelta(days=120)
    # a district with a storm-damaged network: more devices down there
    troubled = {communes[i].parent for i in (40, 41)}
    for n, unit in enumerate(communes):
        bad = unit.parent in troubled
        station = f"DTT-{unit.code}"
        add(
            "radio.station.registered",
            station,
            registered,
            {
                "name": f"Đài truyền thanh {unit.name}",
                "unit": unit.code,
                "clusters": rng.randint(4, 9),
            },
        )
        offline = rng.random() < (0.35 if bad else 0.05)
        add(
            "radio.station.status",
            station,
            today(0, 0.9),
            {"status": "offline" if offline else "online"},
        )
        if not offline and rng.random() < 0.06:
            add(
                "radio.cluster.fault",
                station,
                today(0.3, 1),
                {"cluster": rng.randint(1, 4), "fault": rng.choice(("power", "speaker"))},
            )
        if not offline and n % 9 == 4:
            add(
                "radio.broadcast.started",
                station,
                now - timedelta(minutes=rng.randint(5, 40)),
                {
                    "broadcast_id": f"bt-{n}",
                    "program": rng.choice(PROGRAMS),
                    "kind": "priority" if n % 3 == 0 else "normal",
                },
            )
        for c in range(rng.choice((1, 1, 2))):
            camera = f"CAM-{unit.code}-{c + 1}"
            add(
                "camera.registered",
                camera,
                registered,
                {
                    "name": f"Camera {PLACES[c]} – {unit.name}",
                    "unit": unit.code,
                    "kind": "security" if c == 0 else "traffic",
                },
            )
            roll = rng.random()
            status = (
                "offline"
                if roll < (0.3 if bad else 0.04)
                else "degraded"
                if roll < (0.4 if bad else 0.08)
                else "online"
            )
            add("camera.status", camera, today(0, 0.95), {"status": status})
    # the emergency bulletin of the day: flood warning in the troubled district
    flood = next(u for u in communes if u.parent in troubled)
    add(
        "radio.broadcast.started",
        f"DTT-{flood.code}",
        now - timedelta(minutes=6),
        {
            "broadcast_id": "khan-cap-1",
            "program": "Cảnh báo lũ quét, sạt lở đất",
            "kind": "emergency",
        },
    )
    alerted = f"CAM-{communes[7].code}-1"
    add(
        "camera.alert",
        alerted,
        now - timedelta(minutes=3),
        {"alert_id": "canh-bao-1", "category": "fire", "severity": "critical"},
    )
    add(
        "camera.alert",
        f"CAM-{communes[23].code}-1",
        now - timedelta(minutes=11),
        {"alert_id": "canh-bao-2", "category": "intrusion", "severity": "warning"},
    )

    # dossiers: the day's, hour by hour; a backlog of overdue ones from last week
    hours = max(1, int((now - first_hour).total_seconds() // 3600) + 1)
    dossier = iter(range(1, 10**9))
    for h in range(hours):
        start = first_hour + timedelta(hours=h)
        busy = 1.0 if 8 <= start.hour < 11 or 14 <= start.hour < 16 else 0.55
        for _ in range(int(rng.uniform(26, 44) * busy)):
            received = start + timedelta(seconds=rng.uniform(0, 3600))
            if received >= now:
                continue
            code, name, level = rng.choice(PROCEDURES)
            subject = f"HS-{now:%Y%m%d}-{next(dossier):05d}"
            late = rng.random() < 0.07  # completed after a short due time
            due = received + timedelta(hours=1 if late else rng.choice((4, 8, 24, 72)))
            minutes = rng.uniform(70, 150) if late else rng.uniform(20, 200)
            done = received + timedelta(minutes=minutes)
            add(
                "dossier.received",
                subject,
                received,
                {
                    "procedure_code": code,
                    "procedure_name": name,
                    "level": level,
                    "channel": "online" if level != "offline" and rng.random() < 0.8 else "counter",
                    "agency": rng.choice(AGENCIES),
                    "unit": rng.choice(communes).code,
                    "due_at": _at(due),
                    "digitised": rng.random() < 0.9,
                    "fee": level != "full_online" or rng.random() < 0.4,
                },
            )
            if rng.random() < 0.62 and done < now:
                result = "refused" if rng.random() < 0.04 else "approved"
                completion = {
                    "result": result,
                    "e_result": rng.random() < 0.75,
                    "paid_online": rng.random() < 0.55,
                }
                add("dossier.completed", subject, done, completion)
                rated = done + timedelta(minutes=rng.uniform(5, 60))
                if rng.random() < 0.35 and rated < now:
                    rating = rng.choices(
                        ["very_satisfied", "satisfied", "dissatisfied"], [52, 39, 9]
                    )[0]
                    add("dossier.rated", subject, rated, {"rating": rating})
    for _ in range(23):
        received = now - timedelta(days=rng.uniform(6, 12))
        code, name, level = rng.choice(PROCEDURES)
        add(
            "dossier.received",
            f"HS-TON-{next(dossier):05d}",
            received,
            {
                "procedure_code": code,
                "procedure_name": name,
                "level": level,
                "channel": "counter",
                "agency": rng.choice(AGENCIES),
                "unit": rng.choice(communes).code,
                "due_at": _at(received + timedelta(days=rng.uniform(2, 5))),
            },
        )

    # KPIs: defined in January, reported monthly
    year = now.year
    for code, name, measure, owner, pillar, direction, start_value, target, drift, ref in KPIS:
        add(
            "kpi.defined",
            code,
            datetime(year, 1, 5, 8, tzinfo=VN),
            {
                "name": name,
                "measure": measure,
                "owner": owner,
                "pillar": pillar,
                "direction": direction,
                "target": target,
                "deadline": f"{year}-12-31",
                "reference": ref,
            },
        )
        value = start_value
        for month in range(1, now.month):
            value += drift * rng.uniform(0.6, 1.4)
            add(
                "kpi.reported",
                code,
                datetime(year, month + 1, 3, 9, tzinfo=VN),
                {"period": f"{year}-{month:02d}", "value": round(value, 1)},
            )
    events.sort(key=lambda e: e["time"])
    return events


def batches(events: list[dict[str, Any]], size: int = 500) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


async def post_all(base: str, key: str, events: list[dict[str, Any]]) -> int:
    """Send the events in batches; the last position (every event must be accepted)."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    last = 0
    async with aiohttp.ClientSession() as session:
        for batch in batches(events):
            async with session.post(
                f"{base}/api/v1/events", data=orjson.dumps(batch), headers=headers
            ) as response:
                body = await response.json()
            rejected = [r for r in body["results"] if r["status"] == "rejected"]
            if rejected:
                raise RuntimeError(f"demo events rejected: {rejected[:3]}")
            last = max([last, *(r["position"] for r in body["results"])])
    return last


async def settled(base: str, key: str, position: int, within: float = 120.0) -> None:
    """Wait until the overview and the feed reflect `position`."""
    deadline = time.monotonic() + within
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{base}/api/v1/overview") as r:
                overview = await r.json()
            async with session.get(f"{base}/api/v1/feed?limit=1") as r:
                feed = await r.json()
            if overview["position"] >= position and feed["position"] >= position:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"projections still at {overview['position']}")
            await asyncio.sleep(0.2)


async def capture(
    url: str,
    out: Path,
    size: tuple[int, int],
    phone: Path | None,
    english: Path | None,
    kpis: int,
) -> None:
    browser = await Chromium.launch()
    try:
        shots = [(out, size, "vi"), (phone, (390, 844), "vi"), (english, size, "en")]
        for path, (w, h), lang in shots:
            if path is None:
                continue
            page = await browser.new_page(w, h)
            await page.goto(url)
            if lang == "en":
                await page.evaluate("document.getElementById('lang').click()")
            await page.wait_for("opsRoom.connection === 'live'", 20)
            await page.wait_for(
                "document.querySelectorAll('#feed .fitem').length > 0 && "
                "document.querySelectorAll('#index-lowest li[data-agency]').length === 3 && "
                f"document.querySelectorAll('.sparkline').length >= {kpis}",
                20,
            )
            await asyncio.sleep(1.0)  # let the page settle (animations, last frames)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(await page.screenshot(full_page=path is phone))
            if page.errors:
                raise RuntimeError(f"the page reported errors: {page.errors}")
            await page.close()
            print(f"wrote {path} ({w}x{h})")
    finally:
        await browser.close()


async def run(args: argparse.Namespace) -> None:
    server = None
    folder = None
    url = args.database_url
    if url is None:
        from ops_center.embedded.postgres import EmbeddedPostgres

        folder = Path(tempfile.mkdtemp(prefix="ops-center-shot-"))
        server = EmbeddedPostgres(folder / "data")
        url = await asyncio.to_thread(server.start)
    try:
        app = create_app(Settings(database_url=url, commit_max_wait_ms=1.0))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        try:
            ingest = create_key(url, f"shot-ingest-{port}", "integration", scopes=("*",))
            operator = create_key(url, f"shot-wall-{port}", "operator")
            clock = datetime.now(VN)
            events = demo_events(app_profile(), clock)
            # the day so far, then (once the rules raised their alarms) the last minutes,
            # as they would arrive live
            recent = _at(clock - timedelta(minutes=12))
            earlier = [e for e in events if e["time"] < recent]
            position = await post_all(base, ingest, earlier)
            await settled(base, operator, position)
            await asyncio.sleep(2.0)
            position = await post_all(base, ingest, events[len(earlier) :])
            await settled(base, operator, position)
            await asyncio.sleep(1.0)
            await capture(
                f"{base}/?token={operator}",
                args.out,
                (args.width, args.height),
                args.phone,
                args.english,
                kpis=len(KPIS),
            )

        finally:
            await runner.cleanup()
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def app_profile() -> Profile:
    return load_profile()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument(
        "--phone",
        type=Path,
        default=None,
        help="also a whole-page capture 390 pixels wide (a phone) here",
    )
    parser.add_argument("--english", type=Path, default=None, help="also an English capture")
    parser.add_argument("--database-url", default=None, help="an empty database to use")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
