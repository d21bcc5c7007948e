"""The live topics and how their deltas apply: the reference for every client.

A subscription gets a snapshot (``data`` has the shape of the topic's query answer, with
its ``position``), then deltas. A delta's ``data`` always carries the new ``position`` and
applies to the state in one of two ways, by topic:

* **merge** (`overview`, `services`): the delta is an object merged into the state key by
  key; nested objects merge recursively, every other value (number, string, null, list)
  replaces. ``null`` is a value (``on_time_rate`` may be null), never a deletion: these
  states have a fixed set of keys.
* **items** (`devices`, `kpis`, `feed`, `alarms`, `reports`): the state has an ``items``
  list whose items are identified by the topic's key fields (a device by ``kind`` and
  ``code``, an indicator by ``code``, a feed event by ``position``, an alarm by ``id``, a
  report by ``code``). The delta's ``items`` replace or add items with the same key, its
  ``removed`` lists the keys (as objects of the key fields) of items that leave the
  state, and the list is kept in the topic's order (by the key; alarms newest first:
  ``raised_at``, then ``id``, descending; reports: ``received_at``, then ``code``,
  descending). Other top-level keys of the delta replace the state's.

`apply` implements these rules; `merge` combines two consecutive deltas into one (how a
slow client's queue coalesces); `diff` computes the delta between two states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Json = dict[str, Any]
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Topic:
    """A live topic.

    `kind` says how changes travel: ``state`` topics are published as whole states per
    scope (a unit, or the province) and each node's hub computes the deltas; ``items``
    topics are published province-wide as the items that changed, and each hub filters
    them by unit. `projections` are those whose commits can change the topic.
    """

    name: str
    kind: Literal["state", "items"]
    delta: Literal["merge", "items"]
    projections: tuple[str, ...]
    key_fields: tuple[str, ...] = ()
    descending: bool = False
    #: Fields the items are sorted by, when not the key's (the key breaks ties).
    order_fields: tuple[str, ...] = ()

    def key(self, item: Mapping[str, Any]) -> Key:
        return tuple(item[field] for field in self.key_fields)

    def order(self, item: Mapping[str, Any]) -> Key:
        return tuple(item[field] for field in self.order_fields) + self.key(item)

    def key_json(self, key: Key) -> Json:
        return dict(zip(self.key_fields, key, strict=True))


OVERVIEW: Final = Topic(
    "overview", "state", "merge", ("devices", "services", "kpis", "alarms", "reports")
)
#: Today's dossiers by hour, with this month's service index (`service_index`).
SERVICES: Final = Topic("services", "state", "merge", ("services", "service_index"))
KPIS: Final = Topic("kpis", "state", "items", ("kpis",), ("code",))
FEED: Final = Topic("feed", "state", "items", ("feed",), ("position",), descending=True)
DEVICES: Final = Topic("devices", "items", "items", ("devices",), ("kind", "code"))
#: Open alarms (active and acknowledged), newest first; a resolved alarm is removed.
ALARMS: Final = Topic(
    "alarms", "state", "items", ("alarms",), ("id",), descending=True, order_fields=("raised_at",)
)

#: Open citizens' reports (new, assigned, overdue), newest first; a closed one is removed.
REPORTS: Final = Topic(
    "reports",
    "state",
    "items",
    ("reports",),
    ("code",),
    descending=True,
    order_fields=("received_at",),
)

#: Every topic by name (docs/CONTRACT.md §6).
TOPICS: Final[dict[str, Topic]] = {
    t.name: t for t in (OVERVIEW, DEVICES, ALARMS, REPORTS, SERVICES, KPIS, FEED)
}

#: Items in a feed snapshot (the feed query's default page).
FEED_ITEMS: Final = 50


# -- merge deltas ---------------------------------------------------------------------------


def _merge_into(target: Json, patch: Mapping[str, Any]) -> Json:
    out = dict(target)
    for name, value in patch.items():
        current = out.get(name)
        if isinstance(value, dict) and isinstance(current, dict):
            out[name] = _merge_into(current, value)
        else:
            out[name] = value
    return out


def _merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    out: Json = {}
    for name, value in new.items():
        if name not in old:
            out[name] = value
            continue
        before = old[name]
        if isinstance(value, dict) and isinstance(before, dict):
            nested = _merge_diff(before, value)
            if nested:
                out[name] = nested
        elif value != before or type(value) is not type(before):
            out[name] = value
    return out


# -- items deltas ---------------------------------------------------------------------------


def _sort(topic: Topic, items: list[Json]) -> list[Json]:
    items.sort(key=topic.order, reverse=topic.descending)
    return items


def _items_apply(topic: Topic, state: Mapping[str, Any], delta: Mapping[str, Any]) -> Json:
    by_key = {topic.key(item): item for item in state.get("items", ())}
    for removed in delta.get("removed", ()):
        by_key.pop(topic.key(removed), None)
    for item in delta.get("items", ()):
        by_key[topic.key(item)] = item
    out = {k: v for k, v in state.items() if k != "items"}
    out.update((k, v) for k, v in delta.items() if k not in ("items", "removed"))
    out["items"] = _sort(topic, list(by_key.values()))
    return out


def _items_merge(topic: Topic, older: Mapping[str, Any], newer: Mapping[str, Any]) -> Json:
    upserts = {topic.key(item): item for item in older.get("items", ())}
    removed = {topic.key(k) for k in older.get("removed", ())}
    for key in (topic.key(k) for k in newer.get("removed", ())):
        upserts.pop(key, None)
        removed.add(key)
    for item in newer.get("items", ()):
        key = topic.key(item)
        upserts[key] = item
        removed.discard(key)
    out = {k: v for k, v in older.items() if k not in ("items", "removed")}
    out.update((k, v) for k, v in newer.items() if k not in ("items", "removed"))
    out["items"] = _sort(topic, list(upserts.values()))
    if removed:
        out["removed"] = [topic.key_json(k) for k in sorted(removed, key=repr)]
    return out


def _items_diff(topic: Topic, old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    before = {topic.key(item): item for item in old.get("items", ())}
    after = {topic.key(item): item for item in new.get("items", ())}
    out: Json = {k: v for k, v in new.items() if k != "items" and (k not in old or old[k] != v)}
    changed = [item for key, item in after.items() if before.get(key) != item]
    gone = [topic.key_json(key) for key in before if key not in after]
    if changed:
        out["items"] = _sort(topic, changed)
    if gone:
        out["removed"] = gone
    return out


# -- the rules by topic -----------------------------------------------------------------------


def apply(topic: Topic, state: Mapping[str, Any], delta: Mapping[str, Any]) -> Json:
    """The state after `delta` (a new object; `state` is not modified)."""
    if topic.delta == "merge":
        return _merge_into(dict(state), delta)
    return _items_apply(topic, state, delta)


def merge(topic: Topic, older: Mapping[str, Any], newer: Mapping[str, Any]) -> Json:
    """One delta equivalent to applying `older` then `newer`."""
    if topic.delta == "merge":
        return _merge_into(dict(older), newer)
    return _items_merge(topic, older, newer)


def diff(topic: Topic, old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    """The delta that turns `old` into `new` (empty when they are equal)."""
    if topic.delta == "merge":
        return _merge_diff(old, new)
    return _items_diff(topic, old, new)


def same_content(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two states differ only in their ``position``."""
    return {k: v for k, v in old.items() if k != "position"} == {
        k: v for k, v in new.items() if k != "position"
    }


def scoped_items(
    topic: Topic,
    items: Sequence[Mapping[str, Any]],
    units: frozenset[str],
    past_units: Sequence[Sequence[str]] | None = None,
) -> tuple[list[Json], list[Json]]:
    """The items of a province-wide change that concern a unit scope: those now in one
    of `units` (upserts) and those that were in one during the change but are no longer
    (removals, from `past_units`, aligned with `items`)."""
    upserts: list[Json] = []
    removed: list[Json] = []
    for i, item in enumerate(items):
        if item.get("unit") in units:
            upserts.append(dict(item))
        elif past_units is not None and not units.isdisjoint(past_units[i]):
            removed.append(topic.key_json(topic.key(item)))
    return upserts, removed
