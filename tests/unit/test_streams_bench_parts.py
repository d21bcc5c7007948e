"""The pure parts of ``ops-center bench streams``: phases in whole turns of the lanes,
the pinned sender's order, the pipeline's lag and the budgets."""

from __future__ import annotations

import math

import orjson
import pytest

from ops_center.tools.bench.meters import LagSampler
from ops_center.tools.bench.streams import LANES, BenchError, interleaved, phase_events
from ops_center.tools.loadclients.http import HttpConfig, _Sender


def test_a_phase_is_whole_batches_on_every_lane():
    assert phase_events(2_000, 20, 20) == 40_000
    assert phase_events(100, 1, 10) == LANES * 10 * 2
    assert phase_events(1, 0.1, 5) == LANES * 5


def test_bodies_take_turns_of_the_lanes():
    lanes = [[{"lane": j, "n": n} for n in range(6)] for j in range(LANES)]
    bodies = interleaved(lanes, 3)
    assert len(bodies) == LANES * 2
    for k, body in enumerate(bodies):
        events = orjson.loads(body)
        assert {e["lane"] for e in events} == {k % LANES}
        assert [e["n"] for e in events] == [3 * (k // LANES) + i for i in range(3)]


def test_uneven_lanes_are_refused():
    lanes = [[{"n": n} for n in range(4 if j else 2)] for j in range(LANES)]
    with pytest.raises(BenchError):
        interleaved(lanes, 2)


def sender(pinned: bool, bodies: int, connections: int) -> _Sender:
    config = HttpConfig(
        host="127.0.0.1",
        port=1,
        path="/api/v1/events",
        key="k",
        content_type="application/json",
        processes=1,
        connections=connections,
        rate=None,
        duration=None,
        timeout=1.0,
        pinned=pinned,
    )
    one = _Sender(config, 0, [b"{}"] * bodies)
    one.protocols = [None] * connections  # type: ignore[list-item]
    one._pinned = list(range(connections))
    return one


def taken(one: _Sender, slot: int) -> list[int]:
    found = []
    while (k := one._take(slot)) is not None:
        found.append(k)
    return found


def test_a_pinned_connection_sends_its_own_bodies_in_order():
    one = sender(True, 10, 3)
    assert taken(one, 1) == [1, 4, 7]
    assert taken(one, 0) == [0, 3, 6, 9]
    assert taken(one, 2) == [2, 5, 8]


def test_unpinned_connections_take_the_next_body():
    one = sender(False, 4, 2)
    assert [one._take(0), one._take(0), one._take(1), one._take(0), one._take(1)] == [
        0,
        1,
        2,
        3,
        None,
    ]


def test_lag_in_events_and_in_time_since_the_oldest_unapplied_acknowledgement():
    lag = LagSampler.__new__(LagSampler)
    ms = 1_000_000
    # (when, the log's position, the slowest follower's)
    lag.samples = [(100 * ms, 10, 10), (200 * ms, 30, 12), (300 * ms, 40, 40)]
    positions = [11, 12, 13, 30, 40]
    acked = [50 * ms, 60 * ms, 150 * ms, 190 * ms, 290 * ms]
    figures = lag.figures(positions, acked)
    assert figures.samples == 3
    assert figures.max_events == 18
    assert figures.p50_events == 0
    # at 200 ms the follower had applied 12: the oldest unapplied event (13) was
    # acknowledged at 150 ms
    assert figures.max_ms == 50
    assert figures.p50_ms == 0
    empty = LagSampler.__new__(LagSampler)
    empty.samples = []
    assert math.isnan(empty.figures([], []).p99_ms)
