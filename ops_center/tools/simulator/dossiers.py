"""Dossiers of the one-stop-shop system: a working day's rhythm of public services.

Two streams of applications arrive:

* at the counters (and by post) during office hours of working days, peaking mid-morning:
  about 1,000 a working day;
* online, every day, peaking in office hours with an evening bump and a quiet night:
  about 1,600 a working day and a third of that at weekends.

So about 60-65 % of the dossiers are filed online. Each dossier falls due at 17:00 on
the last of the procedure's working days. About 95 % are completed on time (at an office
moment before they fall due), 3.5 % late (one to a few working days after), 1.5 % are
withdrawn; 8 % get a request for supplementary documents first; 3 % are refused.

The facts of Decision 766's service index: the input documents are digitised at intake for
97 % of online filings and 78 % at the counters; a completed dossier's result is issued
electronically for 85 % of online filings and 50 % of the others; of the procedures that
charge a fee (`FEE_PROCEDURES`), 75 % of online filings and 20 % of the others pay online;
35 % of completed dossiers are rated by their applicant within three days (91 % very
satisfied or satisfied, fewer when the dossier was late). The demo province's index so
lands around 80 of 100.

Procedure codes follow the national format but are invented, like the province.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from ops_center.province.profile import COMMUNE_LEVELS, Profile, Unit
from ops_center.tools.simulator.agenda import World
from ops_center.tools.simulator.rhythm import (
    DUE_TIME,
    VN,
    Weighted,
    add_working_days,
    hourly,
    in_office_hours,
    is_working_day,
    local,
    next_arrival,
    next_working_day,
    office_moment,
)

SOURCE: Final = "/minhson/one-stop-shop"

#: Applications per hour at the counters, at the busiest hour.
COUNTER_PEAK: Final = 180.0
#: Applications per hour online, at the busiest hour of a working day.
ONLINE_PEAK: Final = 150.0
COUNTER_HOURLY: Final = hourly(
    (0, 0, 0, 0, 0, 0, 0, 0.55, 0.9, 1.0, 0.9, 0.45, 0, 0.35, 0.8, 0.8, 0.55, 0) + (0,) * 6
)
#: Relative online filings by local hour: midnight to noon, then noon to midnight.
_ONLINE_AM: Final = (0.07, 0.04, 0.03, 0.03, 0.04, 0.1, 0.3, 0.6, 0.9, 1.0, 0.9, 0.7)
_ONLINE_PM: Final = (0.4, 0.55, 0.85, 0.9, 0.75, 0.55, 0.4, 0.45, 0.5, 0.45, 0.3, 0.15)
ONLINE_HOURLY: Final = hourly((*_ONLINE_AM, *_ONLINE_PM))
WEEKEND_ONLINE: Final = 0.35

ON_TIME: Final = 0.95
LATE: Final = 0.035
SUPPLEMENT: Final = 0.08
REFUSED: Final = 0.03
#: Shares by channel (online, other) of the service index's facts.
DIGITISED: Final = (0.97, 0.78)
E_RESULT: Final = (0.85, 0.5)
PAID_ONLINE: Final = (0.75, 0.2)
RATED: Final = 0.35
#: Ratings of a dossier completed on time, and of one completed late.
RATINGS_ON_TIME: Final = (("very_satisfied", 0.52), ("satisfied", 0.39), ("dissatisfied", 0.09))
RATINGS_LATE: Final = (("very_satisfied", 0.2), ("satisfied", 0.45), ("dissatisfied", 0.35))


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    agency: str
    tier: str  # "commune" | "district" | "province": where dossiers are handled
    level: str  # full_online | partial_online | offline
    days: int  # working days allowed
    weight: float  # relative frequency


PROCEDURES: Final = (
    Procedure("1.001193", "Đăng ký khai sinh", "STP", "commune", "full_online", 1, 14),
    Procedure("2.000635", "Cấp bản sao trích lục hộ tịch", "STP", "commune", "full_online", 1, 10),
    Procedure(
        "2.000815", "Chứng thực bản sao từ bản chính", "STP", "commune", "partial_online", 1, 18
    ),
    Procedure("1.000894", "Đăng ký kết hôn", "STP", "commune", "partial_online", 3, 4),
    Procedure(
        "1.004946", "Trợ cấp xã hội hằng tháng", "SLDTBXH", "commune", "partial_online", 10, 3
    ),
    Procedure("1.003596", "Xác nhận đơn vay vốn", "SNNPTNT", "commune", "offline", 2, 3),
    Procedure(
        "1.009972", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "SXD", "district", "full_online", 15, 5
    ),
    Procedure(
        "2.000575", "Đăng ký thành lập hộ kinh doanh", "SKHDT", "district", "full_online", 3, 6
    ),
    Procedure(
        "1.004227", "Đăng ký biến động đất đai", "STNMT", "district", "partial_online", 10, 8
    ),
    Procedure(
        "2.001610", "Đăng ký thành lập doanh nghiệp", "SKHDT", "province", "full_online", 3, 5
    ),
    Procedure("1.002804", "Cấp đổi giấy phép lái xe", "SGTVT", "province", "full_online", 5, 7),
    Procedure("2.000488", "Cấp phiếu lý lịch tư pháp", "STP", "province", "full_online", 10, 5),
    Procedure(
        "1.004746",
        "Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh",
        "SYT",
        "province",
        "partial_online",
        20,
        1,
    ),
    Procedure(
        "2.000190",
        "Cấp giấy phép lao động cho người nước ngoài",
        "SLDTBXH",
        "province",
        "full_online",
        5,
        1,
    ),
    Procedure(
        "1.001612",
        "Cấp giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm",
        "SCT",
        "province",
        "offline",
        15,
        1,
    ),
)


#: Procedures that charge a fee (lệ phí), by code.
FEE_PROCEDURES: Final = frozenset(
    {
        "2.000635",
        "2.000815",
        "1.009972",
        "2.000575",
        "1.004227",
        "2.001610",
        "1.002804",
        "2.000488",
        "1.004746",
        "2.000190",
        "1.001612",
    }
)


@dataclass
class Ledger:
    """What the one-stop-shop system counts, by local month ``YYYY-MM``."""

    received: Counter[str] = field(default_factory=Counter)
    received_online: Counter[str] = field(default_factory=Counter)
    on_time: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)


def month_of(moment: datetime) -> str:
    """``YYYY-MM`` of the local date."""
    day = local(moment)
    return f"{day.year:04d}-{day.month:02d}"


class Dossiers:
    """Applications arriving, handled and closed by the province's agencies."""

    def __init__(self, world: World, profile: Profile) -> None:
        self.world = world
        self.ledger = Ledger()
        self.profile = profile
        self.province = profile.root
        self.districts = [u for u in profile.units.values() if u.level == "district"]
        self.communes = [u for u in profile.units.values() if u.level in COMMUNE_LEVELS]
        usable = [p for p in PROCEDURES if profile.has_agency(p.agency)]
        self.counter_procedures = Weighted(usable, [p.weight for p in usable])
        online = [p for p in usable if p.level != "offline"]
        self.online_procedures = Weighted(online, [p.weight for p in online])
        self._count = 0

    def start(self, moment: datetime) -> None:
        rng = self.world.rng
        self.world.agenda.at(
            next_arrival(rng, moment, _counter_rate, COUNTER_PEAK), self._at_counter
        )
        self.world.agenda.at(next_arrival(rng, moment, _online_rate, ONLINE_PEAK), self._online)

    def _at_counter(self, moment: datetime) -> None:
        rng = self.world.rng
        channel = "postal" if rng.random() < 0.06 else "counter"
        self._receive(moment, self._pick(self.counter_procedures), channel)
        self.world.agenda.at(
            next_arrival(rng, moment, _counter_rate, COUNTER_PEAK), self._at_counter
        )

    def _online(self, moment: datetime) -> None:
        rng = self.world.rng
        self._receive(moment, self._pick(self.online_procedures), "online")
        self.world.agenda.at(next_arrival(rng, moment, _online_rate, ONLINE_PEAK), self._online)

    def _pick(self, procedures: Weighted[Procedure]) -> Procedure:
        return procedures.pick(self.world.rng)

    def _unit(self, procedure: Procedure) -> Unit:
        rng = self.world.rng
        if procedure.tier == "commune" and self.communes:
            return rng.choice(self.communes)
        if procedure.tier == "district" and self.districts:
            return rng.choice(self.districts)
        return self.province

    def _receive(self, moment: datetime, procedure: Procedure, channel: str) -> None:
        rng = self.world.rng
        self._count += 1
        unit = self._unit(procedure)
        there = local(moment)
        day = f"{there.year % 100:02d}{there.month:02d}{there.day:02d}"
        code = f"HS-{self.world.run}-{day}-{self._count:06d}"
        due = datetime.combine(add_working_days(local(moment).date(), procedure.days), DUE_TIME, VN)
        online = 0 if channel == "online" else 1
        fee = procedure.code in FEE_PROCEDURES
        self.world.emitter.emit(
            "dossier.received",
            SOURCE,
            code,
            moment,
            {
                "procedure_code": procedure.code,
                "procedure_name": procedure.name,
                "level": procedure.level,
                "channel": channel,
                "agency": procedure.agency,
                "unit": unit.code,
                "due_at": due.isoformat(),
                "digitised": rng.random() < DIGITISED[online],
                "fee": fee,
            },
        )
        month = month_of(moment)
        self.ledger.received[month] += 1
        if channel == "online":
            self.ledger.received_online[month] += 1

        fate = rng.random()
        if fate < ON_TIME + LATE:
            if fate < ON_TIME:
                closing = self._before(moment, due)
                result = "refused" if rng.random() < REFUSED else "approved"
            else:
                overdue_days = 1 + int(rng.expovariate(0.6))
                closing = office_moment(rng, add_working_days(due.date(), overdue_days))
                result = "approved"
            done = {
                "result": result,
                "e_result": rng.random() < E_RESULT[online],
                "paid_online": fee and rng.random() < PAID_ONLINE[online],
            }
            self._later(closing, code, "dossier.completed", done, due)
            if rng.random() < RATED:
                ratings = RATINGS_ON_TIME if fate < ON_TIME else RATINGS_LATE
                rating = rng.choices([r for r, _ in ratings], [w for _, w in ratings])[0]
                rated = closing + timedelta(hours=rng.uniform(0.5, 72))
                self._later(rated, code, "dossier.rated", {"rating": rating})
        else:
            closing = self._before(moment, due)
            self._later(closing, code, "dossier.withdrawn", {"reason": "Người nộp rút hồ sơ"})
        if rng.random() < SUPPLEMENT:
            asked = moment + (closing - moment) * rng.uniform(0.1, 0.5)
            self._later(
                asked,
                code,
                "dossier.supplement_requested",
                {"reason": "Bổ sung bản sao giấy tờ tùy thân"},
            )

    def _before(self, received: datetime, due: datetime) -> datetime:
        """An office moment after `received` and no later than `due`, more often early."""
        rng = self.world.rng
        first = next_working_day(local(received).date())
        span = (due.date() - first).days
        day = first + timedelta(days=round(span * rng.betavariate(1.3, 1.8)))
        moment = office_moment(rng, next_working_day(day))
        if moment <= received:
            following = add_working_days(local(received).date(), 1)
            if following <= due.date():
                moment = office_moment(rng, following)
            else:
                moment = received + timedelta(minutes=rng.uniform(10, 120))
        return min(moment, due - timedelta(minutes=1))

    def _later(
        self,
        moment: datetime,
        code: str,
        event_type: str,
        data: dict[str, object],
        due: datetime | None = None,
    ) -> None:
        def happen(at: datetime) -> None:
            self.world.emitter.emit(event_type, SOURCE, code, at, data)
            if due is not None:
                tally = self.ledger.on_time if at <= due else self.ledger.late
                tally[month_of(at)] += 1

        self.world.agenda.at(moment, happen)


def _counter_rate(moment: datetime) -> float:
    if not in_office_hours(moment):
        return 0.0
    return COUNTER_PEAK * COUNTER_HOURLY(moment)


def _online_rate(moment: datetime) -> float:
    factor = 1.0 if is_working_day(local(moment).date()) else WEEKEND_ONLINE
    return ONLINE_PEAK * factor * ONLINE_HOURLY(moment)
