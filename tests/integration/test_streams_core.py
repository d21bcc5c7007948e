"""The streams' core without a database: delta rules, coalescing queues, the hub's fan-out,
resume and resync decisions (with the in-memory bus and a loader standing in for the
database)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import topics
from streams.bus import Change, Interrupted, Resumed
from streams.client import ProtocolViolation, Screen
from streams.hub import Hub
from streams.memory import InMemoryBus
from streams.outbox import Frame, Outbox
from streams.sessions import Session

# -- delta rules ------------------------------------------------------------------------------

numbers = st.integers(min_value=0, max_value=5)
overviews = st.fixed_dictionaries(
    {
        "position": st.integers(min_value=1, max_value=10**6),
        "devices": st.fixed_dictionaries(
            {"camera": st.fixed_dictionaries({"online": numbers, "offline": numbers})}
        ),
        "services": st.fixed_dictionaries(
            {"on_time_rate": st.none() | st.floats(0, 1), "overdue": numbers}
        ),
        "alarms": st.fixed_dictionaries({"active": numbers}),
    }
)
kpi_items = st.lists(
    st.fixed_dictionaries({"code": st.sampled_from("abcdefg"), "value": numbers}),
    unique_by=lambda i: i["code"],
).map(lambda items: sorted(items, key=lambda i: i["code"]))
kpi_states = st.fixed_dictionaries(
    {"position": st.integers(1, 10**6), "as_of": st.none(), "items": kpi_items}
)


@given(overviews, overviews)
def test_a_merge_delta_turns_one_state_into_the_other(old, new):
    assert topics.apply(topics.OVERVIEW, old, topics.diff(topics.OVERVIEW, old, new)) == new


@given(kpi_states, kpi_states)
def test_an_items_delta_turns_one_state_into_the_other(old, new):
    assert topics.apply(topics.KPIS, old, topics.diff(topics.KPIS, old, new)) == new


@given(overviews, overviews, overviews)
def test_merged_merge_deltas_equal_applying_both(a, b, c):
    first, second = topics.diff(topics.OVERVIEW, a, b), topics.diff(topics.OVERVIEW, b, c)
    merged = topics.merge(topics.OVERVIEW, first, second)
    assert topics.apply(topics.OVERVIEW, a, merged) == c


@given(kpi_states, kpi_states, kpi_states)
def test_merged_items_deltas_equal_applying_both(a, b, c):
    first, second = topics.diff(topics.KPIS, a, b), topics.diff(topics.KPIS, b, c)
    merged = topics.merge(topics.KPIS, first, second)
    assert topics.apply(topics.KPIS, a, merged) == c


def test_a_null_is_a_value_not_a_deletion():
    old = {"position": 1, "services": {"on_time_rate": 0.5}}
    new = {"position": 2, "services": {"on_time_rate": None}}
    delta = topics.diff(topics.OVERVIEW, old, new)
    assert delta == {"position": 2, "services": {"on_time_rate": None}}
    assert topics.apply(topics.OVERVIEW, old, delta) == new


def test_feed_items_stay_newest_first():
    state = {"position": 5, "items": [{"position": 5}, {"position": 3}]}
    delta = {
        "position": 9,
        "items": [{"position": 9}, {"position": 7}],
        "removed": [{"position": 3}],
    }
    assert topics.apply(topics.FEED, state, delta)["items"] == [
        {"position": 9},
        {"position": 7},
        {"position": 5},
    ]


def test_scoped_items_keep_the_units_and_remove_those_that_left():
    items = [
        {"kind": "camera", "code": "a", "unit": "U1"},
        {"kind": "camera", "code": "b", "unit": "U2"},
        {"kind": "camera", "code": "c", "unit": "U3"},
    ]
    upserts, removed = topics.scoped_items(
        topics.DEVICES, items, frozenset({"U1"}), [["U1"], ["U1", "U2"], ["U3"]]
    )
    assert [i["code"] for i in upserts] == ["a"]
    assert removed == [{"kind": "camera", "code": "b"}]


def test_the_screen_refuses_a_delta_that_does_not_move_forward():
    screen = Screen()
    with pytest.raises(ProtocolViolation):
        screen.handle({"op": "delta", "topic": "feed", "position": 1, "data": {}})
    screen.handle({"op": "snapshot", "topic": "feed", "position": 4, "data": {"items": []}})
    with pytest.raises(ProtocolViolation):
        screen.handle({"op": "delta", "topic": "feed", "position": 4, "data": {}})


# -- the outbox ---------------------------------------------------------------------------------


def overview_frames(count: int) -> list[Frame]:
    frames = [Frame("snapshot", "overview", 1, {"position": 1, "alarms": {"active": 0}})]
    frames += [
        Frame("delta", "overview", p, {"position": p, "alarms": {"active": p}})
        for p in range(2, count + 1)
    ]
    return frames


async def test_a_full_outbox_coalesces_by_topic_into_the_latest_state():
    outbox = Outbox(limit=1)  # raised to the least useful limit
    for frame in overview_frames(100):
        outbox.put(frame)
    outbox.put(Frame.error("stream_interrupted", "x"))
    assert len(outbox) <= outbox.limit
    assert outbox.coalesced >= 1
    screen = Screen()
    while len(outbox):
        screen.handle(orjson_loads((await outbox.get()).raw))
    assert screen.states["overview"] == {"position": 100, "alarms": {"active": 100}}
    assert screen.errors[-1]["code"] == "stream_interrupted"


def orjson_loads(raw: bytes) -> Any:
    import orjson

    return orjson.loads(raw)


async def test_error_frames_stay_in_order_after_the_frames_before_them():
    outbox = Outbox(limit=0)
    frames = overview_frames(3)
    outbox.put(frames[0])
    outbox.put(Frame.error("stream_interrupted", "x"))
    for frame in frames[1:]:
        outbox.put(frame)
    limit = outbox.limit
    for p in range(4, limit + 6):
        outbox.put(Frame("delta", "overview", p, {"position": p}))
    ops = [(await outbox.get()).op for _ in range(len(outbox))]
    assert ops[:2] == ["error", "snapshot"]  # the error came before the merged frames
    assert set(ops[2:]) <= {"delta"}


def test_a_frame_is_serialised_once():
    frame = Frame("delta", "overview", 3, {"position": 3})
    assert frame.raw is frame.raw


# -- the hub ------------------------------------------------------------------------------------


class World:
    """What the loader reads: the 'database' of these tests."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.loads = 0

    async def load(self, topic: str, scope: str | None) -> tuple[int, dict[str, Any]]:
        self.loads += 1
        data = self.states.get((topic, scope)) or {"position": 0, "items": []}
        return data["position"], data


def units_of(code: str) -> frozenset[str]:
    return frozenset({code, f"{code}-child"})


@pytest.fixture
async def hub_world():
    bus = InMemoryBus()
    world = World()
    hub = Hub(bus, world.load, units_of, grace=0.05)
    await hub.start()
    yield hub, world, bus
    await hub.close()


async def frames_of(session: Session, count: int) -> list[dict[str, Any]]:
    got = []
    async with asyncio.timeout(5):
        for _ in range(count):
            got.append(orjson_loads((await session.outbox.get()).raw))
    return got


async def idle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_state_change_is_one_shared_delta_for_everyone_at_the_previous_state(hub_world):
    hub, world, bus = hub_world
    world.states[("overview", None)] = {"position": 5, "alarms": {"active": 1}}
    sessions = [hub.open() for _ in range(3)]
    for session in sessions:
        hub.subscribe(session, "overview", None, None)
    for session in sessions:
        assert (await frames_of(session, 1))[0]["op"] == "snapshot"
    assert world.loads == 1  # one read for everyone
    await bus.publish([Change("overview", None, 7, {"position": 7, "alarms": {"active": 2}})])
    await idle()
    frames = [s.outbox._frames[0] for s in sessions]
    assert len({id(f) for f in frames}) == 1
    assert orjson_loads(frames[0].raw) == {
        "op": "delta",
        "topic": "overview",
        "position": 7,
        "data": {"position": 7, "alarms": {"active": 2}},
    }


async def test_the_same_position_with_other_content_is_sent_as_a_snapshot(hub_world):
    hub, world, bus = hub_world
    world.states[("services", None)] = {"position": 5, "overdue": 1}
    session = hub.open()
    hub.subscribe(session, "services", None, None)
    await frames_of(session, 1)
    await bus.publish([Change("services", None, 5, {"position": 5, "overdue": 2})])
    frame = (await frames_of(session, 1))[0]
    assert frame["op"] == "snapshot"
    assert frame["data"]["overdue"] == 2


async def test_resuming_a_state_topic_from_a_known_position_is_one_delta(hub_world):
    hub, world, bus = hub_world
    world.states[("overview", "U")] = {"position": 5, "alarms": {"active": 1}}
    keeper = hub.open()
    hub.subscribe(keeper, "overview", "U", None)
    await frames_of(keeper, 1)
    for p in (6, 7, 8):
        await bus.publish([Change("overview", "U", p, {"position": p, "alarms": {"active": p}})])
    await frames_of(keeper, 3)
    session = hub.open()
    hub.subscribe(session, "overview", "U", 6)
    frame = (await frames_of(session, 1))[0]
    assert frame == {
        "op": "delta",
        "topic": "overview",
        "position": 8,
        "data": {"position": 8, "alarms": {"active": 8}},
    }
    other = hub.open()
    hub.subscribe(other, "overview", "U", 3)  # not a position this node knows
    assert (await frames_of(other, 1))[0]["op"] == "snapshot"


def devices_change(base: int, position: int, *items: dict[str, Any], units=None) -> Change:
    return Change(
        "devices",
        None,
        position,
        {"position": position, "items": list(items)},
        base=base,
        extra={"units": units or [[i["unit"]] for i in items]},
    )


def device(code: str, unit: str, status: str = "online") -> dict[str, Any]:
    return {"kind": "camera", "code": code, "unit": unit, "status": status}


async def test_items_changes_are_filtered_by_unit_and_replayed_from_the_window(hub_world):
    hub, world, bus = hub_world
    world.states[("devices", "U")] = {"position": 10, "items": []}
    session = hub.open()
    hub.subscribe(session, "devices", "U", None)
    assert (await frames_of(session, 1))[0]["op"] == "snapshot"
    await bus.publish([devices_change(10, 12, device("a", "U-child"), device("b", "V"))])
    await bus.publish([devices_change(12, 15, device("b", "V", "offline"))])
    await bus.publish([devices_change(15, 16, device("a", "V"), units=[["U-child", "V"]])])
    frames = await frames_of(session, 2)
    assert [f["data"] for f in frames] == [
        {"position": 12, "items": [device("a", "U-child")]},
        {"position": 16, "items": [], "removed": [{"kind": "camera", "code": "a"}]},
    ]
    resumed = hub.open()
    hub.subscribe(resumed, "devices", None, 12)
    frames = await frames_of(resumed, 2)
    assert [f["position"] for f in frames] == [15, 16]


async def test_a_change_that_skips_positions_sends_a_fresh_snapshot(hub_world):
    hub, world, bus = hub_world
    world.states[("devices", None)] = {"position": 10, "items": []}
    session = hub.open()
    hub.subscribe(session, "devices", None, None)
    await frames_of(session, 1)
    world.states[("devices", None)] = {"position": 30, "items": [device("z", "U")]}
    await bus.publish([devices_change(20, 30, device("z", "U"))])  # (10, 20] never came
    frame = (await frames_of(session, 1))[0]
    assert frame["op"] == "snapshot"
    assert frame["position"] == 30
    assert hub.resyncs == 1


async def test_an_interruption_is_told_after_the_grace_and_followed_by_snapshots(hub_world):
    hub, world, _ = hub_world
    world.states[("feed", None)] = {"position": 3, "items": []}
    session = hub.open()
    hub.subscribe(session, "feed", None, None)
    await frames_of(session, 1)
    hub._on_interrupted(Interrupted("test"))
    frame = (await frames_of(session, 1))[0]
    assert frame["code"] == "stream_interrupted"
    world.states[("feed", None)] = {"position": 9, "items": [{"position": 9}]}
    hub._on_resumed(Resumed("new", lost=True))
    frame = (await frames_of(session, 1))[0]
    assert frame["op"] == "snapshot"
    assert frame["position"] == 9


async def test_a_short_blip_without_loss_tells_screens_nothing(hub_world):
    hub, world, _ = hub_world
    world.states[("feed", None)] = {"position": 3, "items": []}
    session = hub.open()
    hub.subscribe(session, "feed", None, None)
    await frames_of(session, 1)
    hub._on_interrupted(Interrupted("test"))
    hub._on_resumed(Resumed(hub.bus.epoch, lost=False))
    await asyncio.sleep(0.1)
    assert len(session.outbox) == 0


async def test_state_streams_linger_then_are_forgotten(hub_world):
    hub, world, _ = hub_world
    world.states[("kpis", None)] = {"position": 3, "items": []}
    session = hub.open()
    hub.subscribe(session, "kpis", None, None)
    await frames_of(session, 1)
    hub.close_session(session)
    hub.sweep()
    assert ("kpis", None) in hub._state
    hub.sweep(now=10**9)
    assert ("kpis", None) not in hub._state
