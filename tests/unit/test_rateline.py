"""The live rate line: in place on a terminal, whole lines in a log."""

from __future__ import annotations

import asyncio
import io

from ops_center.tools import rateline
from ops_center.tools.rateline import RateLine, render
from ops_center.tools.sender import Tally, events_url


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_render_names_the_rates_and_every_outcome():
    tally = Tally(accepted=70_800, duplicates=3, rejected=1, retries=2)
    text = render(tally, now_rate=1204.4, average=1180, note="sim Mon 16 Nov 09:00")
    assert text == (
        "1,204/s now · 1,180/s avg · 70,804 answered (70,800 accepted, 3 duplicates, "
        "1 rejected) · 2 retries · sim Mon 16 Nov 09:00"
    )


def test_current_rate_follows_the_last_seconds_and_the_average_the_whole_run():
    tally, clock = Tally(), Clock()
    line = RateLine(tally, io.StringIO(), clock=clock)
    for _ in range(10):  # 100 events/s for 10 s
        clock.now += 1
        tally.accepted += 100
        line.rates()
    for _ in range(5):  # then 1,000 events/s
        clock.now += 1
        tally.accepted += 1_000
        current, average = line.rates()
    assert current == 1_000
    assert average == 6_000 / 15


def test_on_a_terminal_the_line_is_rewritten_in_place_and_ended_on_stop(monkeypatch):
    monkeypatch.setattr(rateline, "TTY_INTERVAL", 0.01)
    screen, tally = Terminal(), Tally(accepted=5)

    async def show_a_while() -> None:
        task = asyncio.create_task(RateLine(tally, screen).run())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(show_a_while())
    written = screen.getvalue()
    assert written.startswith("\r")
    assert written.count("\r") >= 2
    assert "\x1b[K" in written
    assert written.endswith("\n")
    assert written.count("\n") == 1


def test_in_a_log_each_showing_is_a_line_of_its_own():
    log = io.StringIO()
    line = RateLine(Tally(accepted=1), log)
    line.show()
    line.show()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    assert all("answered" in text and "\r" not in text for text in lines)


def test_events_url_accepts_the_server_or_the_endpoint():
    assert events_url("http://ioc:8080") == "http://ioc:8080/api/v1/events"
    assert events_url("http://ioc:8080/") == "http://ioc:8080/api/v1/events"
    assert events_url("http://ioc:8080/api/v1/events") == "http://ioc:8080/api/v1/events"
