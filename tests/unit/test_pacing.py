"""The replay clock (`streams.pacing.Pacer`) with a fake wall clock: no I/O, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.pacing import Pacer

START = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def test_a_pacer_starts_paused_at_its_start() -> None:
    pacer = Pacer(START, END, 60)
    assert not pacer.playing
    assert pacer.moment(100.0) == START
    assert pacer.wait(100.0) is None


def test_playing_moves_at_speed_times_real_time_and_stops_at_the_end() -> None:
    pacer = Pacer(START, END, 60, tick=0.5)
    pacer.play(10.0)
    assert pacer.moment(10.0) == START
    assert pacer.moment(11.0) == START + timedelta(minutes=1)
    assert pacer.wait(11.0) == 0.5
    assert not pacer.finished(69.0)
    assert pacer.wait(69.9) == pytest.approx(0.1)
    assert pacer.moment(100.0) == END
    assert pacer.finished(100.0)
    assert pacer.wait(100.0) == 0.0


def test_pause_stops_the_clock_and_resume_goes_on_from_there() -> None:
    pacer = Pacer(START, END, 10)
    pacer.play(0.0)
    pacer.pause(3.0)
    assert pacer.moment(50.0) == START + timedelta(seconds=30)
    pacer.play(50.0)
    assert pacer.moment(51.0) == START + timedelta(seconds=40)


def test_seek_moves_within_the_replay_and_keeps_playing_or_paused() -> None:
    pacer = Pacer(START, END, 2)
    pacer.seek(START + timedelta(minutes=30), 5.0)
    assert pacer.moment(99.0) == START + timedelta(minutes=30)
    pacer.play(100.0)
    pacer.seek(START + timedelta(minutes=10), 101.0)
    assert pacer.moment(102.0) == START + timedelta(minutes=10, seconds=2)
    pacer.seek(END + timedelta(days=1), 103.0)
    assert pacer.finished(103.0)
    pacer.seek(START - timedelta(days=1), 104.0)
    assert pacer.moment(104.0) == START


def test_a_faster_pacer_finishes_sooner() -> None:
    slow, fast = Pacer(START, END, 60), Pacer(START, END, 3600)
    slow.play(0.0)
    fast.play(0.0)
    assert fast.finished(1.0)
    assert not slow.finished(1.0)


@pytest.mark.parametrize("speed", [0, 0.5, 3601])
def test_speeds_outside_the_bounds_are_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(START, END, speed)


def test_a_replay_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before"):
        Pacer(END, START, 1)
