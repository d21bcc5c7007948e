"""Citizens' field reports (phản ánh hiện trường) through the province's app, hotline, web
portal and social media, and how the center handles them.

Rhythm: about 150 reports on a dry working day for the demo profile (a fifth fewer at
weekends), few at night, most in the morning (7-10 h) and a second, smaller wave in the
afternoon. Rain brings more: rain spells come about every four days (an hour or a few), and while it
rains the rate is 2.5 times the usual and for the 12 hours after 1.8 times, with more
blocked drains, flooding, fallen trees and broken lights.

Handling: the duty officers triage each report (within the hour in the day, the next
morning for the night's): about 6 % are rejected (out of scope, or a duplicate of a
report of the same commune a little earlier), the others assigned to the agency or the
commune responsible with a due time by category (security 8 h, traffic and utilities
48 h, environment and public health 72 h, urban order and the rest 5 days); 8 % are
reassigned once. About 88 % are resolved before the due time, 11 % late (hours to a day
or two after), 1 % stay open for weeks. 40 % of the resolved reports are rated within a
day, mostly satisfied when on time, less often when late.

Most reports from the app and social media carry the phone's position (near the commune's
centroid); hotline and web reports seldom do.

Pure like the rest of the simulator: its own `random.Random` (given by the caller), the
world's agenda and emitter, no clock of its own.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Final

from ops_center.province.profile import COMMUNE_LEVELS, Profile, Unit
from ops_center.tools.simulator.agenda import World
from ops_center.tools.simulator.rhythm import (
    VN,
    exponential,
    hourly,
    hours,
    is_working_day,
    local,
    lognormal,
    next_arrival,
)

SOURCE: Final = "/minhson/phan-anh"

#: Reports per hour at the busiest hour of a dry working day.
PEAK: Final = 15.0
#: Relative reports by local hour: midnight to noon, then noon to midnight.
_AM: Final = (0.04, 0.03, 0.03, 0.03, 0.05, 0.2, 0.5, 0.85, 1.0, 1.0, 0.8, 0.6)
_PM: Final = (0.45, 0.5, 0.55, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2, 0.1, 0.06)
HOURLY: Final = hourly((*_AM, *_PM))
WEEKEND: Final = 0.8
#: Rate factors while it rains and in the hours after.
RAINING: Final = 2.5
AFTER_RAIN: Final = 1.8
AFTER_RAIN_HOURS: Final = hours(12)
MEAN_BETWEEN_RAINS: Final = hours(96)
MEDIAN_RAIN: Final = hours(2)

CATEGORIES: Final = (
    "traffic",
    "environment",
    "urban_order",
    "security",
    "utilities",
    "public_health",
    "other",
)
DRY_MIX: Final = (0.18, 0.25, 0.22, 0.08, 0.15, 0.05, 0.07)
WET_MIX: Final = (0.22, 0.40, 0.07, 0.02, 0.25, 0.02, 0.02)
TITLES: Final = {
    "traffic": (
        "Ổ gà trên đường liên xã",
        "Đèn tín hiệu giao thông không hoạt động",
        "Cây đổ chắn ngang đường",
        "Xe tải đỗ sai quy định",
    ),
    "environment": (
        "Rác thải tập kết sai nơi quy định",
        "Cống thoát nước bị tắc",
        "Ngập úng cục bộ sau mưa",
        "Đốt rơm rạ gây khói",
    ),
    "urban_order": (
        "Lấn chiếm vỉa hè kinh doanh",
        "Xây dựng không phép",
        "Biển quảng cáo sai quy định",
    ),
    "security": ("Tụ tập gây mất trật tự", "Tiếng ồn karaoke sau 22 giờ"),
    "utilities": (
        "Đèn chiếu sáng công cộng bị hỏng",
        "Dây điện võng thấp nguy hiểm",
        "Mất nước sinh hoạt",
    ),
    "public_health": (
        "Cơ sở kinh doanh thực phẩm mất vệ sinh",
        "Nước thải chăn nuôi gây ô nhiễm",
    ),
    "other": ("Góp ý về thủ tục hành chính", "Kiến nghị của người dân"),
}
#: The agency that handles a category, and the share of reports left to the commune.
RESPONSIBLE: Final = {
    "traffic": ("SGTVT", 0.6),
    "environment": ("STNMT", 0.6),
    "urban_order": ("SXD", 0.8),
    "security": ("CAT", 0.3),
    "utilities": ("SXD", 0.5),
    "public_health": ("SYT", 0.4),
    "other": ("VPUBND", 0.5),
}
DEADLINES: Final = {
    "traffic": hours(48),
    "environment": hours(72),
    "urban_order": hours(120),
    "security": hours(8),
    "utilities": hours(48),
    "public_health": hours(72),
    "other": hours(120),
}
CHANNELS: Final = ("app", "hotline", "web", "social")
CHANNEL_MIX: Final = (0.55, 0.25, 0.1, 0.1)
#: Share of the reports of each channel that carry the reporter's position.
POSITIONED: Final = {"app": 0.85, "hotline": 0.1, "web": 0.3, "social": 0.7}

REJECTED: Final = 0.06
REASSIGNED: Final = 0.08
ON_TIME: Final = 0.88
STAY_OPEN: Final = 0.01
RATED: Final = 0.4
SATISFIED_ON_TIME: Final = 0.8
SATISFIED_LATE: Final = 0.45

#: Office moments the duty officers triage in (a report of the night waits for 07:30).
_TRIAGE_FROM: Final = time(7, 30)
_TRIAGE_UNTIL: Final = time(22, 0)


@dataclass(frozen=True)
class Spell:
    """A spell of rain."""

    start: datetime
    end: datetime


class Reports:
    """Citizens' reports arriving and the center handling them (see the module docstring)."""

    def __init__(self, world: World, profile: Profile, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.profile = profile
        self.communes = [u for u in profile.units.values() if u.level in COMMUNE_LEVELS] or [
            profile.root
        ]
        #: Rain spells known so far, in time order (drawn ahead as far as asked).
        self.spells: list[Spell] = []
        self._starts: list[datetime] = []
        self._weather = random.Random(rng.random())
        self._recent: dict[str, deque[str]] = {}
        self._count = 0

    def start(self, moment: datetime) -> None:
        self._first_rain = moment + exponential(self._weather, MEAN_BETWEEN_RAINS) / 2
        self._schedule(moment)

    # -- weather ----------------------------------------------------------------------

    def _spells_until(self, moment: datetime) -> None:
        if not self.spells:
            first = self._first_rain
            self._add(Spell(first, first + lognormal(self._weather, MEDIAN_RAIN, 0.7)))
        while self.spells[-1].start <= moment:
            last = self.spells[-1].end
            start = last + exponential(self._weather, MEAN_BETWEEN_RAINS)
            self._add(Spell(start, start + lognormal(self._weather, MEDIAN_RAIN, 0.7)))

    def _add(self, spell: Spell) -> None:
        self.spells.append(spell)
        self._starts.append(spell.start)

    def weather(self, moment: datetime) -> float:
        """The rate factor of the weather at `moment`: raining, just after rain, or 1."""
        self._spells_until(moment)
        # the latest spell begun by then decides (spells follow one another)
        index = bisect_right(self._starts, moment)
        if index == 0:
            return 1.0
        latest = self.spells[index - 1]
        if moment < latest.end:
            return RAINING
        return AFTER_RAIN if moment < latest.end + AFTER_RAIN_HOURS else 1.0

    def _rate(self, moment: datetime) -> float:
        day = 1.0 if is_working_day(local(moment).date()) else WEEKEND
        return PEAK * day * HOURLY(moment) * self.weather(moment)

    # -- arrivals -----------------------------------------------------------------------

    def _schedule(self, moment: datetime) -> None:
        self.world.agenda.at(
            next_arrival(self.rng, moment, self._rate, PEAK * RAINING), self._arrive
        )

    def _arrive(self, moment: datetime) -> None:
        self._receive(moment)
        self._schedule(moment)

    def _receive(self, moment: datetime) -> None:
        rng = self.rng
        self._count += 1
        code = f"PA-{self.world.run}-{local(moment):%y%m%d}-{self._count:06d}"
        wet = self.weather(moment) > 1.0
        category = rng.choices(CATEGORIES, WET_MIX if wet else DRY_MIX)[0]
        channel = rng.choices(CHANNELS, CHANNEL_MIX)[0]
        unit = rng.choice(self.communes)
        data: dict[str, object] = {
            "category": category,
            "title": rng.choice(TITLES[category]),
            "unit": unit.code,
            "channel": channel,
        }
        if rng.random() < POSITIONED[channel] and unit.lat is not None and unit.lon is not None:
            data["lat"] = round(unit.lat + rng.gauss(0, 0.01), 6)
            data["lon"] = round(unit.lon + rng.gauss(0, 0.01), 6)
        if channel in ("app", "social") and rng.random() < 0.6:
            data["photo_url"] = f"https://phananh.minhson.example.vn/anh/{code}.jpg"
        self.world.emitter.emit("report.received", SOURCE, code, moment, data)
        triage = self._triage_moment(moment)
        recent = self._recent.setdefault(unit.code, deque(maxlen=5))
        if rng.random() < REJECTED:
            reason = {"reason": "Nội dung không thuộc phạm vi giải quyết"}
            if recent and rng.random() < 0.6:
                reason = {"reason": "Trùng phản ánh đã tiếp nhận", "duplicate_of": recent[-1]}
            self._later(triage, code, "report.rejected", reason)
        else:
            self._handle(code, category, unit, triage)
        recent.append(code)

    def _triage_moment(self, received: datetime) -> datetime:
        """Within the hour in the day; a report of the night waits for the morning."""
        at = received + timedelta(minutes=self.rng.uniform(5, 60))
        clock = local(at).time()
        if _TRIAGE_FROM <= clock < _TRIAGE_UNTIL:
            return at
        day = local(at).date() + (timedelta(days=1) if clock >= _TRIAGE_UNTIL else timedelta(0))
        morning = datetime.combine(day, _TRIAGE_FROM, VN)
        return morning + timedelta(minutes=self.rng.uniform(0, 45))

    def _assignee(self, category: str, unit: Unit) -> str:
        agency, commune_share = RESPONSIBLE[category]
        if self.rng.random() < commune_share or not self.profile.has_agency(agency):
            return unit.code
        return agency

    def _handle(self, code: str, category: str, unit: Unit, assigned: datetime) -> None:
        rng = self.rng
        deadline = DEADLINES[category]
        due = assigned + deadline
        agency = self._assignee(category, unit)
        self._later(assigned, code, "report.assigned", {"agency": agency, "due_at": _stamp(due)})
        start = assigned
        if rng.random() < REASSIGNED:
            start = assigned + timedelta(hours=rng.uniform(2, 10))
            due = start + deadline
            other = unit.code if agency != unit.code else self._assignee(category, unit)
            self._later(
                start,
                code,
                "report.reassigned",
                {
                    "agency": other,
                    "due_at": _stamp(due),
                    "reason": "Chuyển đơn vị có thẩm quyền giải quyết",
                },
            )
        fate = rng.random()
        if fate < STAY_OPEN:
            return
        on_time = fate < STAY_OPEN + ON_TIME
        if on_time:
            resolved = start + (due - start) * rng.betavariate(1.6, 2.2)
            resolved = min(resolved, due - timedelta(minutes=1))
        else:
            resolved = due + timedelta(minutes=10) + exponential(rng, hours(20))
        result = {"result": "Đơn vị đã kiểm tra, xử lý và thông báo kết quả cho người dân"}
        self._later(resolved, code, "report.resolved", result)
        if rng.random() < RATED:
            satisfied = rng.random() < (SATISFIED_ON_TIME if on_time else SATISFIED_LATE)
            rating = "satisfied" if satisfied else "dissatisfied"
            rated = resolved + timedelta(hours=rng.uniform(0.2, 24))
            self._later(rated, code, "report.rated", {"rating": rating})

    def _later(self, moment: datetime, code: str, event_type: str, data: dict[str, Any]) -> None:
        self.world.agenda.at(
            moment,
            lambda at: self.world.emitter.emit(event_type, SOURCE, code, at, data),
        )


def _stamp(moment: datetime) -> str:
    """A due time to the second, in Vietnam time."""
    return local(moment).replace(microsecond=0).isoformat()
