"""The simulated province through the real server: every event accepted, retries are safe.

The province registers the same stations and cameras in every commune, so these tests
use a database of their own: the counts other tests assert per unit stay untouched.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from ops_center.tools.sender import Sender
from ops_center.tools.simulator import SCOPES, Province
from ops_center.tools.simulator.rhythm import VN

#: A Monday morning: the bulletin, office hours, the first emergency drill.
START = datetime(2026, 11, 16, 5, 0, tzinfo=VN)


@pytest.fixture
def own_database(new_database: Any) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    with new_database() as url:
        yield url


@pytest.mark.timeout(120)
async def test_a_simulated_day_is_accepted_whole_and_a_resend_is_only_duplicates(
    own_database, make_api, make_key
):
    feeder = make_key("integration", scopes=SCOPES, url=own_database)
    viewer = make_key("viewer", url=own_database)
    api = await make_api(key=viewer, database_url=own_database)
    base = str(api.client.make_url("/"))
    events = Province(START, seed=11, run="e2e-day").advance(START + timedelta(hours=19))
    assert {e["type"].split(".")[0] for e in events} == {
        "radio",
        "camera",
        "dossier",
        "kpi",
        "report",
    }

    async with Sender(base, feeder.secret) as sender:
        await sender.send(events)
        assert sender.tally.rejections == []
        assert (sender.tally.accepted, sender.tally.rejected) == (len(events), 0)
        await sender.send(events[:1500])  # what a retry after a lost answer does
        assert sender.tally.duplicates == 1500
        assert sender.tally.accepted == len(events)

    # the read models see the province: every station, and the day's dossiers
    for _ in range(200):
        overview = (await api.get("/api/v1/overview")).body
        if overview["position"] >= len(events):
            break
        await asyncio.sleep(0.05)
    radio = overview["devices"]["radio"]
    assert radio["online"] + radio["offline"] == 119
    assert radio["online"] > 100
    assert overview["kpis"]["on_track"] + overview["kpis"]["off_track"] > 0


@pytest.mark.timeout(120)
async def test_the_sender_waits_out_429_and_gets_everything_accepted(
    own_database, make_api, make_key
):
    limited = make_key("integration", scopes=SCOPES, rate=600, url=own_database)
    api = await make_api(key=limited, database_url=own_database)
    events = Province(START, seed=12, run="e2e-429").take(2_400)
    async with Sender(str(api.client.make_url("/")), limited.secret) as sender:
        await sender.send(events)
    assert sender.tally.retries > 0
    assert (sender.tally.accepted, sender.tally.rejected) == (2_400, 0)


@pytest.mark.timeout(120)
async def test_simulate_command_offers_its_rate_and_reports_a_summary(
    own_database, make_api, make_key
):
    feeder = make_key("integration", scopes=SCOPES, url=own_database)
    api = await make_api(key=feeder, database_url=own_database)
    base = str(api.client.make_url("/")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ops_center.cli", "simulate", "--url", base),
        *("--key", feeder.secret, "--rate", "1000", "--duration", "2", "--seed", "3"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    summary = re.search(
        r"ops-center simulate: .* ([\d,]+) answered "
        r"\(([\d,]+) accepted, 0 duplicates, 0 rejected\)",
        err.decode(),
    )
    assert summary is not None, err.decode()
    answered = int(summary.group(1).replace(",", ""))
    assert answered == int(summary.group(2).replace(",", ""))
    assert 500 <= answered <= 2_500  # two seconds at 1,000 events/s (and the wind-down)
