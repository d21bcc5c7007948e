"""The simulated province: valid events only, in time order, with realistic figures."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from ops_center.domain import Meta
from ops_center.ingest import cloudevents
from ops_center.ingest.catalogue import CATALOGUE, validate_data
from ops_center.ingest.decisions import aggregate_id, decide
from ops_center.province.profile import DEMO_TWO_TIER_PROFILE, load_profile
from ops_center.tools.simulator import Province
from ops_center.tools.simulator.agenda import World
from ops_center.tools.simulator.dossiers import Ledger
from ops_center.tools.simulator.kpis import Kpis
from ops_center.tools.simulator.rhythm import VN, in_office_hours

PROFILE = load_profile()
#: A Monday; the week runs into December, so November is reported on 5 December.
START = datetime(2026, 11, 30, 0, 0, tzinfo=VN)
END = START + timedelta(days=7)


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"])


@pytest.fixture(scope="module")
def week() -> list[dict[str, Any]]:
    """A simulated week of the demo province (seed 7)."""
    return Province(START, seed=7, run="w1", profile=PROFILE).advance(END)


def of(events: list[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] in types]


def test_every_event_is_a_cloudevent_of_the_catalogue_with_valid_data(week):
    for event in week:
        parsed = cloudevents.parse(event)
        kind = CATALOGUE[parsed.type]
        assert validate_data(kind, parsed.data, PROFILE) == parsed.data, event


def test_every_event_is_accepted_by_the_domain_rules(week):
    """Run each event through the real aggregates: nothing unknown, nothing out of turn."""
    aggregates: dict[Any, Any] = {}
    for event in week:
        kind = CATALOGUE[event["type"]]
        key = aggregate_id(kind, event["subject"])
        meta = Meta(
            source=event["source"],
            id=event["id"],
            time=event["time"],
            received_at=event["time"],
            key="sim",
        )
        aggregate = decide(kind, aggregates.get(key), event["subject"], event["data"], meta)
        aggregate.collect_events()
        aggregates[key] = aggregate


def test_events_come_in_time_order_with_unique_ids_within_the_week(week):
    times = [at(e) for e in week]
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] <= END
    assert len({(e["source"], e["id"]) for e in week}) == len(week)


def test_same_seed_same_events_and_another_seed_other_events(week):
    again = Province(START, seed=7, run="w1", profile=PROFILE).take(3000)
    assert again == week[:3000]
    other = Province(START, seed=8, run="w1", profile=PROFILE).take(3000)
    assert other != week[:3000]


def test_most_dossiers_are_online_and_completed_on_time(week):
    received = of(week, "dossier.received")
    online = sum(e["data"]["channel"] == "online" for e in received)
    assert 0.55 <= online / len(received) <= 0.72
    due = {e["subject"]: datetime.fromisoformat(e["data"]["due_at"]) for e in received}
    completed = of(week, "dossier.completed")
    on_time = sum(at(e) <= due[e["subject"]] for e in completed)
    assert len(completed) > 0.5 * len(received)
    # a week from an empty start under-counts late ones (they close after the week)
    assert 0.93 <= on_time / len(completed) <= 0.99
    assert len(completed) - on_time > 0.005 * len(completed)
    withdrawn = of(week, "dossier.withdrawn")
    assert 0 < len(withdrawn) < 0.03 * len(received)


def test_the_service_index_facts_come_at_realistic_rates(week):
    """Digitised intake, fees paid online, electronic results and ratings, as shares of
    the dossiers they concern (docs: a demo province near 70-90 points)."""
    received = of(week, "dossier.received")
    by_code = {e["subject"]: e["data"] for e in received}
    digitised = sum(e["data"]["digitised"] for e in received) / len(received)
    assert 0.82 <= digitised <= 0.95
    completed = of(week, "dossier.completed")
    e_result = sum(e["data"]["e_result"] for e in completed) / len(completed)
    assert 0.6 <= e_result <= 0.8
    with_fee = [e for e in completed if by_code[e["subject"]]["fee"]]
    assert 0.2 * len(completed) <= len(with_fee) <= 0.8 * len(completed)
    paid = sum(e["data"]["paid_online"] for e in with_fee) / len(with_fee)
    assert 0.35 <= paid <= 0.7
    assert not any(e["data"]["paid_online"] for e in completed if not by_code[e["subject"]]["fee"])
    rated = of(week, "dossier.rated")
    closed_at = {e["subject"]: at(e) for e in completed}
    assert all(at(e) > closed_at[e["subject"]] for e in rated)  # after, and only once
    assert len({e["subject"] for e in rated}) == len(rated)
    assert 0.25 * len(completed) <= len(rated) <= 0.4 * len(completed)
    satisfied = sum(e["data"]["rating"] != "dissatisfied" for e in rated) / len(rated)
    assert 0.85 <= satisfied <= 0.95


def test_dossiers_follow_office_hours_and_working_days(week):
    received = of(week, "dossier.received")
    by_day = Counter(at(e).date() for e in received)
    for day, count in by_day.items():
        if day.weekday() < 5:
            assert 2_000 <= count <= 3_300, (day, count)
        else:
            assert 300 <= count <= 900, (day, count)
    at_counters = [e for e in received if e["data"]["channel"] != "online"]
    assert at_counters
    assert all(in_office_hours(at(e)) for e in at_counters)
    by_hour = Counter(at(e).hour for e in received)
    assert by_hour.most_common(1)[0][0] in (8, 9, 10, 14, 15)
    assert by_hour[3] < by_hour[9] / 10
    completions = of(week, "dossier.completed", "dossier.withdrawn")
    assert sum(in_office_hours(at(e)) for e in completions) / len(completions) > 0.97


def availability(events: list[dict[str, Any]], status_type: str) -> float:
    """Time-weighted share of device-time online over the events' span."""
    state: dict[str, tuple[str, datetime]] = {}
    up = total = 0.0
    for event in of(events, status_type):
        subject, moment = event["subject"], at(event)
        if subject in state:
            status, since = state[subject]
            span = (moment - since).total_seconds()
            total += span
            up += span if status == "online" else 0.0
        state[subject] = (event["data"]["status"], moment)
    for status, since in state.values():
        span = (END - since).total_seconds()
        total += span
        up += span if status == "online" else 0.0
    return up / total


def test_devices_are_online_most_of_the_time_and_do_drop_and_come_back(week):
    assert 0.95 <= availability(week, "radio.station.status") <= 0.995
    assert 0.95 <= availability(week, "camera.status") <= 0.995
    drops = Counter(
        e["type"] for e in week if e["type"].endswith("status") and e["data"]["status"] != "online"
    )
    assert drops["radio.station.status"] >= 10
    assert drops["camera.status"] >= 50
    assert len(of(week, "radio.station.registered")) == 119
    assert 300 <= len(of(week, "camera.registered")) <= 600
    faults = of(week, "radio.cluster.fault")
    restored = of(week, "radio.cluster.restored")
    assert 50 <= len(faults) <= 400
    assert len(restored) <= len(faults)


def test_bulletins_twice_a_day_and_an_occasional_emergency(week):
    started = of(week, "radio.broadcast.started")
    kinds = Counter(e["data"]["kind"] for e in started)
    assert 0.9 * 2 * 119 * 7 <= kinds["normal"] <= 2 * 119 * 7
    assert kinds["priority"] > 0
    episodes = {
        at(e).replace(minute=0, second=0, microsecond=0)
        for e in started
        if e["data"]["kind"] == "emergency"
    }
    assert 1 <= len(episodes) <= 10
    assert any(
        at(e) < START + timedelta(hours=4) for e in started if e["data"]["kind"] == "emergency"
    )
    ended = {e["data"]["broadcast_id"] for e in of(week, "radio.broadcast.ended")}
    assert len(ended) >= len(started) - 119  # at most one left on air per station at the end
    alerts = Counter(e["data"]["severity"] for e in of(week, "camera.alert"))
    assert alerts["critical"] < 0.1 * sum(alerts.values())


def test_kpis_defined_backfilled_and_reported_monthly_within_bounds(week):
    defined = {e["subject"]: e["data"] for e in of(week, "kpi.defined")}
    assert len(defined) == 8
    assert {d["pillar"] for d in defined.values()} == {
        "digital_government",
        "digital_economy",
        "digital_society",
        "infrastructure",
    }
    reports: defaultdict[str, dict[str, float]] = defaultdict(dict)
    for event in of(week, "kpi.reported"):
        reports[event["subject"]][event["data"]["period"]] = event["data"]["value"]
    assert set(reports["KPI-DVC-ONLINE"]) == {f"2026-{m:02d}" for m in range(1, 12)}
    assert set(reports["KPI-KTS-GRDP"]) == {"2026-Q1", "2026-Q2", "2026-Q3"}
    for code, values in reports.items():
        measure = defined[code]["measure"]
        for value in values.values():
            assert 0 <= value <= (100 if measure == "%" else defined[code]["target"] * 1.2)
    # November, reported on 5 December (the run began on its last day: the trend)
    assert 55 <= reports["KPI-DVC-ONLINE"]["2026-11"] <= 72
    assert 90 <= reports["KPI-DVC-ONTIME"]["2026-11"] <= 99
    signatures = [reports["KPI-CKS-CANHAN"][f"2026-{m:02d}"] for m in range(1, 12)]
    assert signatures == sorted(signatures)
    assert reports["KPI-CDS-DISBURSED"]["2026-10"] < 60  # slow disbursement, as reported


def test_wind_down_ends_every_broadcast_on_air():
    province = Province(START, seed=3, run="w2", profile=PROFILE)
    events = province.advance(START + timedelta(hours=6, minutes=10))
    on_air = {e["data"]["broadcast_id"] for e in of(events, "radio.broadcast.started")}
    on_air -= {e["data"]["broadcast_id"] for e in of(events, "radio.broadcast.ended")}
    assert len(on_air) > 100  # the morning bulletin
    closing = province.wind_down(START + timedelta(hours=6, minutes=11))
    assert {e["data"]["broadcast_id"] for e in closing} == on_air
    assert all(e["type"] == "radio.broadcast.ended" for e in closing)


def test_take_and_advance_hand_out_one_stream():
    province = Province(START, seed=5, run="w3", profile=PROFILE)
    first = province.take(700)
    rest = province.advance(START + timedelta(hours=12))
    whole = Province(START, seed=5, run="w3", profile=PROFILE).advance(START + timedelta(hours=12))
    assert first + rest == whole
    assert province.clock == at(whole[-1])


def test_a_month_the_run_covered_is_reported_as_the_one_stop_shop_counted_it():
    world = World(random.Random(1), "k1")
    ledger = Ledger()
    ledger.received["2026-11"], ledger.received_online["2026-11"] = 2_000, 1_280
    ledger.on_time["2026-11"], ledger.late["2026-11"] = 1_900, 100
    Kpis(world, PROFILE, ledger).start(datetime(2026, 10, 20, 8, 0, tzinfo=VN))
    while (moment := world.agenda.next_time()) is not None and moment < END:
        _, happening = world.agenda.pop()
        happening(moment)
    reports = {
        (e["subject"], e["data"]["period"]): e["data"]["value"]
        for e in world.emitter.drain()
        if e["type"] == "kpi.reported"
    }
    assert reports["KPI-DVC-ONLINE", "2026-11"] == 64.0
    assert reports["KPI-DVC-ONTIME", "2026-11"] == 95.0
    assert ("KPI-DVC-ONLINE", "2026-10") in reports  # reported on 5 November, from the trend
    assert ("KPI-KTS-GRDP", "2026-Q3") in reports
    assert ("KPI-KTS-GRDP", "2026-Q4") not in reports  # quarterly: not before January


def test_the_two_tier_profile_works_as_well():
    profile = load_profile(DEMO_TWO_TIER_PROFILE)
    events = Province(START, seed=2, run="t2", profile=profile).advance(START + timedelta(hours=12))
    stations = of(events, "radio.station.registered")
    assert len(stations) == sum(u.level != "province" for u in profile.units.values())
    for event in events:
        validate_data(CATALOGUE[event["type"]], event["data"], profile)


def test_citizens_report_at_a_daily_rhythm_more_in_the_morning_and_after_rain(week):
    received = of(week, "report.received")
    by_day = Counter(at(e).date() for e in received)
    assert len(by_day) == 7
    assert all(90 <= count <= 320 for count in by_day.values()), by_day
    by_hour = Counter(at(e).hour for e in received)
    assert by_hour.most_common(1)[0][0] in (7, 8, 9, 10)
    assert sum(by_hour[h] for h in (0, 1, 2, 3, 4)) < by_hour[9]
    # the rate while it rains and in the 12 hours after, against the same hours when dry
    province = Province(START, seed=7, run="w1", profile=PROFILE)
    province.advance(END)
    assert province.reports.spells, "no rain in a week"
    wet = [e for e in received if province.reports.weather(at(e)) > 1.0]
    wet_hours = Counter(at(e).hour for e in wet)
    exposure: Counter[int] = Counter()  # hours of each local hour of day under rain's effect
    moment = START
    while moment < END:
        if province.reports.weather(moment) > 1.0:
            exposure[moment.hour] += 1
        moment += timedelta(hours=1)
    daytime = [h for h in range(7, 20) if exposure[h]]
    assert daytime
    wet_rate = sum(wet_hours[h] for h in daytime) / sum(exposure[h] for h in daytime)
    dry_rate = sum(by_hour[h] - wet_hours[h] for h in daytime) / sum(
        7 - exposure[h] for h in daytime
    )
    assert wet_rate > 1.4 * dry_rate
    # where: most app reports carry a position near their commune's centroid
    app = [e for e in received if e["data"]["channel"] == "app"]
    placed = [e for e in app if "lat" in e["data"]]
    assert 0.7 <= len(placed) / len(app) <= 0.95
    for event in placed:
        unit = PROFILE.units[event["data"]["unit"]]
        assert unit.lat is not None
        assert unit.lon is not None
        assert abs(event["data"]["lat"] - unit.lat) < 0.1
        assert abs(event["data"]["lon"] - unit.lon) < 0.1


def test_most_reports_are_resolved_by_their_due_time_a_few_late_some_rated(week):
    received = {e["subject"]: e for e in of(week, "report.received")}
    due: dict[str, datetime] = {}
    for event in of(week, "report.assigned", "report.reassigned"):
        due[event["subject"]] = datetime.fromisoformat(event["data"]["due_at"])
    rejected = of(week, "report.rejected")
    assert 0.02 <= len(rejected) / len(received) <= 0.1
    assert any("duplicate_of" in e["data"] for e in rejected)
    assert len(of(week, "report.reassigned")) > 0
    resolved = of(week, "report.resolved")
    assert len(resolved) > 0.6 * len(received)
    on_time = sum(at(e) <= due[e["subject"]] for e in resolved)
    assert 0.8 <= on_time / len(resolved) <= 0.97
    assert len(resolved) - on_time >= 0.02 * len(resolved)
    rated = of(week, "report.rated")
    assert 0.25 <= len(rated) / len(resolved) <= 0.5
    satisfied = sum(e["data"]["rating"] == "satisfied" for e in rated)
    assert 0.6 <= satisfied / len(rated) <= 0.9
    # assigned to agencies of the profile and to communes
    agencies = {e["data"]["agency"] for e in of(week, "report.assigned")}
    assert agencies & set(PROFILE.agencies)
    assert agencies & set(PROFILE.units)
