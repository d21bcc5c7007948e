"""The one progress display: done of a total, rates, time left; in place on a terminal,
whole lines at most every few seconds elsewhere; a rate-only line for open-ended runs."""

from __future__ import annotations

import asyncio
import io

from ops_center.runtime import progress
from ops_center.runtime.progress import Progress, duration_text, rate_text
from ops_center.tools.sender import Tally, events_url


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_with_a_total_the_line_has_the_bar_the_share_the_rates_and_the_time_left():
    clock = Clock()
    shown = Progress(1_000, io.StringIO(), label="  filling", clock=clock)
    clock.now += 4
    assert shown.text(250) == (
        "  filling: [#####---------------]  25.0% 250/1,000 events · 62.5 events/s "
        "(now 62.5/s) · 0:04 · ETA 0:12"
    )
    clock.now += 8
    assert shown.text(1_000).endswith("· 0:12 · ETA 0:00")


def test_without_a_total_the_line_gives_the_rates_and_what_was_counted():
    tally, clock = Tally(accepted=70_800, duplicates=3, rejected=1, retries=2), Clock()
    shown = Progress(None, io.StringIO(), detail=lambda _: tally.describe(), clock=clock)
    clock.now += 60
    assert shown.text(tally.answered) == (
        "1,180/s now · 1,180/s avg · 70,804 answered (70,800 accepted, 3 duplicates, "
        "1 rejected) · 2 retries · 1:00"
    )
    rows = Progress(None, io.StringIO(), unit="rows", clock=clock)
    assert rows.text(0).startswith("0.0/s now · 0.0/s avg · 0 rows")


def test_the_rate_now_follows_the_last_seconds_and_the_average_the_whole_run():
    clock = Clock()
    shown = Progress(None, io.StringIO(), clock=clock)
    done = 0
    for _ in range(10):  # 100 events/s for 10 s
        clock.now += 1
        done += 100
        shown.rates(done)
    for _ in range(5):  # then 1,000 events/s
        clock.now += 1
        done += 1_000
        current, average = shown.rates(done)
    assert current == 1_000
    assert average == 6_000 / 15


def test_on_a_terminal_the_line_is_rewritten_in_place_and_ended_by_the_final_showing():
    screen, clock = Terminal(), Clock()
    shown = Progress(10, screen, clock=clock)
    shown.show(1)  # within the first interval: nothing
    assert screen.getvalue() == ""
    for done in range(2, 10):
        clock.now += progress.TTY_EVERY
        shown.show(done)
    shown.show(10, final=True)
    written = screen.getvalue()
    assert written.count("\r") == 9
    assert written.count("\x1b[K") == 9
    assert written.count("\n") == 1
    assert written.endswith("10/10 events · 5.0 events/s (now 5.0/s) · 0:02 · ETA 0:00\x1b[K\n")


def test_in_a_log_a_line_is_written_at_most_every_few_seconds_and_the_final_one_always():
    log, clock = io.StringIO(), Clock()
    shown = Progress(1_000, log, clock=clock)
    for done in range(1, 101):  # 100 showings over 12.5 s: 2 are due, every 5 s
        clock.now += 0.125
        shown.show(done)
    shown.show(100, final=True)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert all("\r" not in line and "\x1b" not in line for line in lines)
    assert lines[-1].startswith("[##------------------]  10.0% 100/1,000")


def test_following_shows_periodically_and_ends_the_line_when_cancelled(monkeypatch):
    monkeypatch.setattr(progress, "TTY_EVERY", 0.01)
    screen, count = Terminal(), [0]

    async def follow_a_while() -> None:
        shown = Progress(None, screen)
        task = asyncio.create_task(shown.follow(lambda: count[0]))
        for _ in range(10):
            count[0] += 5
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        shown.clear()  # nothing left to erase: the line was ended

    asyncio.run(follow_a_while())
    written = screen.getvalue()
    assert written.startswith("\r")
    assert written.count("\r") >= 2
    assert written.endswith("\n")
    assert written.count("\n") == 1


def test_clear_erases_the_line_in_place_so_that_other_output_starts_clean():
    screen, clock = Terminal(), Clock()
    shown = Progress(None, screen, clock=clock)
    shown.show(5, final=False)
    clock.now += 1
    shown.show(6)
    shown.clear()
    assert screen.getvalue().endswith("\r\x1b[K")
    shown.clear()
    assert screen.getvalue().count("\r\x1b[K") == 1


def test_numbers_are_written_for_people():
    assert rate_text(12.34) == "12.3"
    assert rate_text(12_345.6) == "12,346"
    assert rate_text(float("nan")) == "-"
    assert duration_text(42) == "0:42"
    assert duration_text(3_725) == "1:02:05"
    assert duration_text(float("inf")) == "-"


def test_events_url_accepts_the_server_or_the_endpoint():
    assert events_url("http://ioc:8080") == "http://ioc:8080/api/v1/events"
    assert events_url("http://ioc:8080/") == "http://ioc:8080/api/v1/events"
    assert events_url("http://ioc:8080/api/v1/events") == "http://ioc:8080/api/v1/events"
