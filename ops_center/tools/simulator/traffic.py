"""The simulated province as a benchmark's workload: its opening first, then lanes.

`Traffic` wraps a sized `Province` (a given number of cameras and stations over the
profile's communes) that starts early enough for the `events` events after its opening
to end about `end` (now, by default): pilot runs of the same province measure how fast
its events come (`start_for`). Pure, like the province: the same sizes, seed, `end` and
run tag give the same events.

* `opening` hands out the province as it stands when a run begins (its first moment):
  every camera and station registered with its first status, the indicators defined
  and the months of the year so far reported; a benchmark sends it before measuring.
* `lanes` hands out the next `total` events split into `parts` lanes for concurrent
  senders: an event goes to the lane of its subject (`lane_of`), so the events of one
  subject travel in order on one connection, and the lanes' sizes are exactly
  `split(total, parts)`. Events whose lane was full wait, in order, for the next call:
  a phase sent after the previous one was acknowledged keeps every subject's order.
* `take` hands out the next events in time order (for one sender, or a fill).

Every event the province emits is valid and, in each subject's order, accepted by the
domain; so every event of a workload is accepted when its opening, then each lane, is
sent in order (or split by `by_subject`).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Final

from ops_center.province.calendar import now
from ops_center.province.profile import Profile, load_profile
from ops_center.tools.simulator.agenda import Event
from ops_center.tools.simulator.province import Province

#: How long the pilot run that measures the rate of a sized province lasts, and how long
#: before the end the first trial of a short workload starts.
PILOT_WEEK: Final = timedelta(days=7)
PILOT_DAY: Final = timedelta(days=1)
#: Up to this many events, the start is refined by running the province itself.
REFINE_EVENTS: Final = 10_000
#: Trial runs at most, and the error in the end that is close enough (two minutes or a
#: fiftieth of the span, whichever is longer).
REFINE_PASSES: Final = 6
REFINE_WITHIN: Final = timedelta(minutes=2)
REFINE_SHARE: Final = 0.02


def lane_of(subject: str, parts: int) -> int:
    """The lane (0 to `parts` - 1) of a subject: the same in every process and run."""
    return zlib.crc32(subject.encode()) % parts


def by_subject(events: Iterable[Event], parts: int) -> list[list[Event]]:
    """`events` in `parts` lanes by subject (`lane_of`), each in the given order; the
    empty lanes are left out."""
    lanes: list[list[Event]] = [[] for _ in range(parts)]
    for event in events:
        lanes[lane_of(str(event.get("subject")), parts)].append(event)
    return [lane for lane in lanes if lane]


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible (larger shares first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def start_for(
    events: int,
    end: datetime,
    *,
    seed: int,
    profile: Profile,
    cameras: int | None,
    stations: int | None,
) -> datetime:
    """When a province of this size must start for `events` events after its opening
    to end about `end`.

    Many events (more than `REFINE_EVENTS`): a pilot of the same province runs the week
    before `end` (a week: the rhythm of working days and weekends), and the span of
    `events` is taken in proportion to the events of its week after the opening. Fewer
    (spans short enough for the hour of the day to matter): the province itself runs
    from a day before `end`, then from the start its span gives, and the start is moved
    by how far the end missed (halving the interval once one start ended too early and
    one too late), a few times. The run tag changes only identifiers: the same seed from
    the same start gives the same moments.
    """

    def ends(start: datetime) -> datetime:
        """When the `events` events after the opening end, from `start`."""
        trial = Province(
            start, seed=seed, run="pilot", profile=profile, cameras=cameras, stations=stations
        )
        trial.advance(start)  # the opening
        trial.take(events)
        return trial.clock

    if events > REFINE_EVENTS:
        week = Province(
            end - PILOT_WEEK,
            seed=seed,
            run="pilot",
            profile=profile,
            cameras=cameras,
            stations=stations,
        )
        week.advance(week.start)  # the opening
        steady = len(week.advance(end))
        span = PILOT_WEEK * (events / max(1, steady))
        return (end - span).replace(microsecond=0)
    day = end - PILOT_DAY
    span = ends(day) - day
    start = end - span
    within = max(REFINE_WITHIN, span * REFINE_SHARE)
    early: datetime | None = None  # a start whose events end before `end`
    late: datetime | None = None  # and one whose events end after it
    for _ in range(REFINE_PASSES):
        miss = end - ends(start)
        if abs(miss) <= within:
            break
        if miss > timedelta(0):
            early = start
        else:
            late = start
        if early is not None and late is not None:
            start = early + (late - early) / 2
        else:
            start += miss
    return start.replace(microsecond=0)


class Traffic:
    """A sized province's events, handed out as a benchmark sends them (see the module)."""

    def __init__(
        self,
        *,
        cameras: int,
        stations: int,
        events: int,
        seed: int,
        end: datetime | None = None,
        run: str = "bench",
        profile: Profile | None = None,
    ) -> None:
        self.profile = profile or load_profile()
        end = end or now()
        start = start_for(
            events, end, seed=seed, profile=self.profile, cameras=cameras, stations=stations
        )
        self.province = Province(
            start,
            seed=seed,
            run=run,
            profile=self.profile,
            cameras=cameras,
            stations=stations,
        )
        self._waiting: deque[Event] = deque()

    def opening(self) -> list[Event]:
        """The province's first moment (see the module); call it before any other hand-out."""
        return self.province.advance(self.province.start)

    def _next(self) -> Iterator[Event]:
        while True:
            while self._waiting:
                yield self._waiting.popleft()
            batch = self.province.take(256)
            if not batch:  # pragma: no cover - a province never runs out
                return
            self._waiting.extend(batch)

    def take(self, count: int) -> list[Event]:
        """The next `count` events in time order."""
        stream = self._next()
        return [next(stream) for _ in range(count)]

    def lanes(self, total: int, parts: int) -> list[list[Event]]:
        """The next `total` events in `parts` lanes by subject (see the module)."""
        quotas = split(total, parts)
        lanes: list[list[Event]] = [[] for _ in quotas]
        held: list[Event] = []
        missing = total
        stream = self._next()
        while missing:
            event = next(stream)
            index = lane_of(str(event["subject"]), parts)
            if len(lanes[index]) < quotas[index]:
                lanes[index].append(event)
                missing -= 1
            else:
                held.append(event)
        # what was held is older than whatever still waits (it was taken from its head)
        self._waiting.extendleft(reversed(held))
        return [lane for lane in lanes if lane]
