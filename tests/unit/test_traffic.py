"""The simulated province as a benchmark's workload: sized, in lanes that keep every
subject's order, every event accepted, the same events for the same seed."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from ops_center.domain import Meta
from ops_center.ingest import cloudevents
from ops_center.ingest.catalogue import CATALOGUE, validate_data
from ops_center.ingest.decisions import aggregate_id, decide
from ops_center.province.profile import COMMUNE_LEVELS, load_profile
from ops_center.tools.simulator import Province
from ops_center.tools.simulator.rhythm import VN
from ops_center.tools.simulator.traffic import Traffic, by_subject, lane_of, split

PROFILE = load_profile()
COMMUNES = [u.code for u in PROFILE.units.values() if u.level in COMMUNE_LEVELS]
#: A Friday afternoon: the one-stop shops are open.
END = datetime(2026, 11, 20, 15, 0, tzinfo=VN)


def accept_all(events: list[dict[str, Any]]) -> None:
    """Run the events through the real aggregates in the given order: none refused."""
    aggregates: dict[Any, Any] = {}
    for event in events:
        parsed = cloudevents.parse(event)
        kind = CATALOGUE[parsed.type]
        assert validate_data(kind, parsed.data, PROFILE) == parsed.data, event
        key = aggregate_id(kind, event["subject"])
        meta = Meta(
            source=event["source"],
            id=event["id"],
            time=event["time"],
            received_at=event["time"],
            key="bench",
        )
        aggregate = decide(kind, aggregates.get(key), event["subject"], event["data"], meta)
        aggregate.collect_events()
        aggregates[key] = aggregate


@pytest.fixture(scope="module")
def workload() -> tuple[Traffic, list[dict[str, Any]], list[list[list[dict[str, Any]]]]]:
    traffic = Traffic(cameras=300, stations=250, events=6_000, seed=4, end=END)
    opening = traffic.opening()
    phases = [traffic.lanes(4_000, 8), traffic.lanes(2_000, 64)]
    return traffic, opening, phases


def test_a_sized_province_spreads_its_devices_over_the_communes():
    province = Province(END, seed=1, cameras=300, stations=250, profile=PROFILE)
    cameras, stations = province.cameras.cameras, province.radio.stations
    assert len(cameras) == 300
    assert len(stations) == 250
    assert len({c.code for c in cameras}) == 300
    assert len({s.code for s in stations}) == 250
    per_commune = Counter(s.unit.code for s in stations)
    assert set(per_commune) == set(COMMUNES)  # 250 stations over 119 communes
    assert set(per_commune.values()) == {2, 3}
    kinds = Counter(c.kind for c in cameras)
    assert kinds["security"] > kinds["public"] > kinds["traffic"] > 0


def test_the_opening_registers_every_device_with_its_first_status(workload):
    _, opening, _ = workload
    types = Counter(e["type"] for e in opening)
    assert types["camera.registered"] == types["camera.status"] == 300
    assert types["radio.station.registered"] == types["radio.station.status"] == 250
    assert types["kpi.defined"] == 8
    assert len({e["time"] for e in opening}) == 1


def test_lanes_have_their_exact_sizes_and_one_lane_per_subject(workload):
    _, _, phases = workload
    for lanes, (total, parts) in zip(phases, [(4_000, 8), (2_000, 64)], strict=True):
        assert [len(lane) for lane in lanes] == split(total, parts)
        for lane in lanes:
            assert {lane_of(e["subject"], parts) for e in lane} == {
                lane_of(lane[0]["subject"], parts)
            }
            times = [datetime.fromisoformat(e["time"]) for e in lane]
            assert times == sorted(times)
    ids = [e["id"] for lanes in phases for lane in lanes for e in lane]
    assert len(ids) == len(set(ids)) == 6_000


def test_every_subject_keeps_its_order_across_phases_and_every_event_is_accepted(workload):
    traffic, opening, phases = workload
    sent = opening + [e for lanes in phases for lane in lanes for e in lane]
    accept_all(sent)  # opening, then each phase, its lanes in any order
    # each subject's events are the first of its events in the province's own order
    again = Province(
        traffic.province.start, seed=4, run="bench", profile=PROFILE, cameras=300, stations=250
    ).take(len(sent) + 5_000)
    order: defaultdict[str, list[str]] = defaultdict(list)
    for event in again:
        order[event["subject"]].append(event["id"])
    mine: defaultdict[str, list[str]] = defaultdict(list)
    for event in sent:
        mine[event["subject"]].append(event["id"])
    for subject, ids in mine.items():
        assert order[subject][: len(ids)] == ids, subject
    assert {e["type"] for e in sent} >= {
        "camera.status",
        "camera.alert",
        "radio.station.status",
        "radio.broadcast.started",
        "radio.broadcast.ended",
        "dossier.received",
        "dossier.completed",
    }


def test_the_events_end_about_the_end_asked_for(workload):
    _, _, phases = workload
    last = max(
        datetime.fromisoformat(e["time"]) for lanes in phases for lane in lanes for e in lane
    )
    assert abs(last - END) < timedelta(hours=3)
    small = Traffic(cameras=40, stations=10, events=500, seed=2, end=END)
    small.opening()
    assert abs(datetime.fromisoformat(small.take(500)[-1]["time"]) - END) < timedelta(minutes=30)


def test_the_same_seed_gives_the_same_workload_and_another_seed_another():
    def make(seed: int) -> list[list[dict[str, Any]]]:
        traffic = Traffic(cameras=50, stations=20, events=800, seed=seed, end=END)
        traffic.opening()
        return traffic.lanes(800, 4)

    assert make(9) == make(9)
    assert make(9) != make(10)


def test_by_subject_keeps_the_order_and_lane_of_is_the_same_everywhere():
    events = [{"subject": s, "n": n} for n, s in enumerate("abcabcadd")]
    lanes = by_subject(events, 3)
    assert sum(len(lane) for lane in lanes) == len(events)
    for lane in lanes:
        assert [e["n"] for e in lane] == sorted(e["n"] for e in lane)
        assert len({lane_of(e["subject"], 3) for e in lane}) == 1
    assert sum(1 for lane in lanes for e in lane if e["subject"] == "a") == 3
    assert lane_of("a", 1_000_000) == 3_904_355_907 % 1_000_000  # crc32: stable everywhere
