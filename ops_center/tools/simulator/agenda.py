"""What happens next: a time-ordered agenda of happenings and the CloudEvents they emit.

A happening is a function of its moment. It may emit events, all at that moment, and
put later happenings on the agenda; so popping the agenda in time order yields events in
time order. Ties keep the order in which happenings were scheduled.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ops_center.province.profile import COMMUNE_LEVELS, Profile, Unit
from ops_center.tools.simulator.rhythm import stamp

Happening = Callable[[datetime], None]
Event = dict[str, Any]


class Agenda:
    """A priority queue of happenings by time."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Happening]] = []
        self._count = 0

    def at(self, moment: datetime, happening: Happening) -> None:
        """Put `happening` on the agenda at `moment` (to the millisecond, as events say)."""
        if moment.microsecond % 1000:
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        heapq.heappush(self._heap, (moment, self._count, happening))
        self._count += 1

    def next_time(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[datetime, Happening]:
        moment, _, happening = heapq.heappop(self._heap)
        return moment, happening


class Emitter:
    """Builds structured CloudEvents with ids unique to one run (``<run>-<n>``)."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.out: list[Event] = []
        self._count = 0

    def emit(
        self, event_type: str, source: str, subject: str, moment: datetime, data: dict[str, Any]
    ) -> None:
        self._count += 1
        self.out.append(
            {
                "specversion": "1.0",
                "id": f"{self.run}-{self._count:09d}",
                "source": source,
                "type": event_type,
                "time": stamp(moment),
                "subject": subject,
                "datacontenttype": "application/json",
                "data": data,
            }
        )

    def drain(self) -> list[Event]:
        out, self.out = self.out, []
        return out


class World:
    """What every part of the simulated province shares: chance, the agenda, the emitter."""

    def __init__(self, rng: random.Random, run: str) -> None:
        self.rng = rng
        self.run = run
        self.agenda = Agenda()
        self.emitter = Emitter(run)
        self._serial = 0

    def serial(self, prefix: str) -> str:
        """A fresh identifier unique to this run, e.g. ``<run>-B42``."""
        self._serial += 1
        return f"{self.run}-{prefix}{self._serial}"


def commune_units(profile: Profile) -> list[Unit]:
    """The commune-level units, where a sized province puts its devices (every unit when
    the profile has none)."""
    units = [u for u in profile.units.values() if u.level in COMMUNE_LEVELS]
    return units or list(profile.units.values())
