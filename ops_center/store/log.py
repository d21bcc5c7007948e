"""Stored domain events as projections see them: decoded rows of the ``ops_events`` log.

The log's ``state`` column is plain JSON (see `ops_center.store.recorder.OrjsonTranscoder`), so
projections read it with orjson and never go through the library. `Event.name` is the
short event name (``"Camera.StatusReported"``); `topic_of` gives the stored topic of a
short name, for filtering in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any, Final
from uuid import UUID

import orjson
from eventsourcing.utils import get_topic

from ops_center.domain.events import AGGREGATES, PRODUCED_BY

#: The events table the library writes (application name ``Ops``); also the NOTIFY channel.
EVENTS_TABLE: Final = "ops_events"

#: Short event name -> the CloudEvent type that produces it (for the feed).
CLOUDEVENT_TYPES: Final = PRODUCED_BY

#: Attributes of stored state that are bookkeeping, not the event's own data.
BOOKKEEPING: Final = frozenset({"timestamp", "originator_topic", "meta"})


def topic_of(name: str) -> str:
    """The stored topic of a short event name, e.g. ``ops_center.domain.camera:Camera.X``."""
    aggregate, _, event = name.partition(".")
    return f"{get_topic(AGGREGATES[aggregate])}.{event}"


def topics_of(names: Iterable[str]) -> list[str]:
    """Stored topics of short event names, sorted (a stable SQL parameter)."""
    return sorted(topic_of(n) for n in names)


@lru_cache(maxsize=1024)
def short_name(topic: str) -> str:
    """``"pkg.module:Camera.StatusReported"`` -> ``"Camera.StatusReported"``."""
    return topic.rpartition(":")[2]


@dataclass(frozen=True)
class Event:
    """One stored domain event.

    `position` is its global position (``notification_id``); `state` the decoded JSON of
    its attributes, including ``meta`` (the CloudEvent's source, id, time, ...) and
    ``timestamp`` (when the domain event was created, i.e. recorded).

    One decoded chunk is handed to every projection and to the alarm rules, so its times
    are parsed once (`time` and `recorded` are cached; hence no ``__slots__``).
    """

    position: int
    originator_id: UUID
    version: int
    name: str
    state: dict[str, Any]

    @cached_property
    def time(self) -> datetime:
        """When the fact happened: the CloudEvent's ``time`` (the recorded time for events
        that did not come from a CloudEvent)."""
        meta = self.state.get("meta")
        if isinstance(meta, dict) and "time" in meta:
            return datetime.fromisoformat(meta["time"])
        return self.recorded

    @cached_property
    def recorded(self) -> datetime:
        """When the event was recorded (the domain event's ``timestamp``)."""
        return datetime.fromisoformat(self.state["timestamp"])

    @property
    def meta(self) -> dict[str, Any]:
        """The CloudEvent's provenance (empty for events that did not come from one)."""
        meta = self.state.get("meta")
        return meta if isinstance(meta, dict) else {}

    def data(self) -> dict[str, Any]:
        """The event's own attributes, without bookkeeping."""
        return {k: v for k, v in self.state.items() if k not in BOOKKEEPING}


def decode(row: Any) -> Event:
    """An `Event` from a row ``(notification_id, originator_id, originator_version, topic,
    state)`` of the events table."""
    return Event(row[0], row[1], row[2], short_name(row[3]), orjson.loads(row[4]))
