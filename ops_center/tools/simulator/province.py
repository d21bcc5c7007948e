"""A whole province in motion: radio, cameras, public services, KPIs and citizens' reports
on one agenda.

`Province` is pure: no I/O, no wall clock (the caller says when the run starts and how
far to advance), all chance from one `random.Random` seeded by the caller. The same
profile, seed, start and run tag give the same events, byte for byte.

A sized province (`cameras` and `stations` given) has that many devices spread over the
profile's commune-level units, for the benchmarks; `Traffic`
(`ops_center.tools.simulator.traffic`) hands its events out as a benchmark's workload.

Identifiers that must never repeat across runs against the same server (event ids,
dossier codes, broadcast and alert ids) carry the `run` tag; devices and indicators keep
stable codes, so a new run re-registers the same stations, cameras and indicators.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Final

from ops_center.province.profile import Profile, load_profile
from ops_center.tools.simulator.agenda import Event, World
from ops_center.tools.simulator.cameras import Cameras
from ops_center.tools.simulator.dossiers import Dossiers
from ops_center.tools.simulator.kpis import Kpis
from ops_center.tools.simulator.radio import Radio
from ops_center.tools.simulator.reports import Reports

#: Event-type patterns a key needs to send everything the simulator emits.
SCOPES: Final = ("radio.*", "camera.*", "dossier.*", "kpi.*", "report.*")


class Province:
    """The simulated province; events come out in time order.

    `cameras` and `stations` size it (the profile's own layout when None).
    """

    def __init__(
        self,
        start: datetime,
        *,
        seed: int = 0,
        run: str = "sim",
        profile: Profile | None = None,
        cameras: int | None = None,
        stations: int | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start needs a time zone")
        self.profile = profile or load_profile()
        self.start = start
        self.world = World(random.Random(seed), run)
        self.radio = Radio(self.world, self.profile, stations)
        self.cameras = Cameras(self.world, self.profile, cameras)
        self.dossiers = Dossiers(self.world, self.profile)
        self.kpis = Kpis(self.world, self.profile, self.dossiers.ledger)
        # its own chance: the other sources' events stay as they were without it
        self.reports = Reports(self.world, self.profile, random.Random(f"reports:{seed}"))
        self.radio.start(start)
        self.cameras.start(start)
        self.kpis.start(start)
        self.dossiers.start(start)
        self.reports.start(start)
        self._ready: deque[tuple[datetime, Event]] = deque()
        #: The time of the last event handed out (the start before any).
        self.clock = start

    def _step(self) -> bool:
        """Let the next happening happen; False when nothing is left (never, in practice)."""
        agenda = self.world.agenda
        if agenda.next_time() is None:
            return False
        moment, happening = agenda.pop()
        happening(moment)
        self._ready.extend((moment, event) for event in self.world.emitter.drain())
        return True

    def _hand_out(self, count: int) -> list[Event]:
        out = []
        for _ in range(count):
            moment, event = self._ready.popleft()
            self.clock = moment
            out.append(event)
        return out

    def advance(self, until: datetime) -> list[Event]:
        """Every event up to and including `until` not handed out yet, in time order."""
        while True:
            upcoming = self.world.agenda.next_time()
            if upcoming is None or upcoming > until:
                break
            self._step()
        ready = sum(1 for moment, _ in self._ready if moment <= until)
        return self._hand_out(ready)

    def take(self, count: int) -> list[Event]:
        """The next `count` events, however much simulated time they span."""
        while len(self._ready) < count and self._step():
            pass
        return self._hand_out(min(count, len(self._ready)))

    def __iter__(self) -> Iterator[Event]:
        while True:
            batch = self.take(256)
            if not batch:
                return
            yield from batch

    def wind_down(self, moment: datetime) -> list[Event]:
        """End the broadcasts on air at `moment` (when a run stops); no later events."""
        moment = max(moment, self.clock)
        self.radio.wind_down(moment)
        events = self.world.emitter.drain()
        if events:
            self.clock = moment
        return events

    @property
    def size(self) -> str:
        """A one-line description of what is simulated."""
        return (
            f"{len(self.radio.stations)} radio stations, {len(self.cameras.cameras)} cameras, "
            f"{len(self.kpis.indicators)} KPIs, ~2,600 dossiers a working day, "
            "~150 citizens' reports a dry day"
        )
