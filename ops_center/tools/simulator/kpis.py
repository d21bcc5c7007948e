"""Indicators of the province's digital-transformation resolution, reported monthly.

The kinds the provinces' own reports name: the share of dossiers handled online and on
time, disbursement of the digital-transformation budget against its allocation (Bình
Định disbursed 3.5 of 50 billion VND in 2021), personal digital signatures issued,
community digital-technology teams (843 village teams in one province in 2022), the
commune smart-radio rollout, and the digital economy's share of GRDP (quarterly).

At the start, every indicator is defined (targets due at the end of the year) and the
months of the year so far are reported as a backfill. Then, on the 5th of each month at
09:00, the past month is reported; the dossier shares come from what the simulated
one-stop-shop system counted that month when the run covered the whole month.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from ops_center.province.profile import Profile
from ops_center.tools.simulator.agenda import World
from ops_center.tools.simulator.dossiers import Ledger
from ops_center.tools.simulator.rhythm import VN, local

SOURCE: Final = "/minhson/kpi-reporting"
REFERENCE: Final = "Nghị quyết 05-NQ/TU về chuyển đổi số tỉnh Minh Sơn"
#: A month's measured share replaces the trend only above this many dossiers.
ENOUGH_DOSSIERS: Final = 500

#: month index (1-12) and the random source -> the value reported for that month
Trend = Callable[[int, float], float]


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str
    measure: str
    owner: str
    pillar: str
    target: float
    trend: Trend
    quarterly: bool = False
    digits: int = 1


INDICATORS: Final = (
    Indicator(
        "KPI-DVC-ONLINE",
        "Tỷ lệ hồ sơ thủ tục hành chính được xử lý trực tuyến",
        "%",
        "TTPVHCC",
        "digital_government",
        80.0,
        lambda m, z: 50.0 + 1.2 * m + 1.5 * z,
    ),
    Indicator(
        "KPI-DVC-ONTIME",
        "Tỷ lệ hồ sơ giải quyết đúng hạn",
        "%",
        "VPUBND",
        "digital_government",
        98.0,
        lambda m, z: 94.0 + 0.15 * m + 0.8 * z,
    ),
    Indicator(
        "KPI-CDS-DISBURSED",
        "Tỷ lệ giải ngân kinh phí chuyển đổi số so với kế hoạch vốn giao",
        "%",
        "STC",
        "digital_government",
        95.0,
        lambda m, z: 62.0 * (m / 12) ** 1.8 + 0.8 * abs(z),
    ),
    Indicator(
        "KPI-CDS-DISBURSED-VND",
        "Kinh phí chuyển đổi số đã giải ngân (kế hoạch 50 tỷ đồng)",
        "VND bn",
        "STC",
        "digital_government",
        50.0,
        lambda m, z: 0.5 * (62.0 * (m / 12) ** 1.8 + 0.8 * abs(z)),
        digits=2,
    ),
    Indicator(
        "KPI-CKS-CANHAN",
        "Số chữ ký số cá nhân đã cấp cho người dân",
        "count",
        "STTTT",
        "digital_society",
        250_000.0,
        lambda m, z: 118_000 + 10_400 * m + 900 * z,
        digits=0,
    ),
    Indicator(
        "KPI-TO-CNSCD",
        "Số tổ công nghệ số cộng đồng được thành lập",
        "count",
        "STTTT",
        "digital_society",
        1_050.0,
        lambda m, z: 936 + 9 * m + abs(2 * z),
        digits=0,
    ),
    Indicator(
        "KPI-DTT-THONGMINH",
        "Tỷ lệ xã có đài truyền thanh ứng dụng công nghệ thông tin - viễn thông",
        "%",
        "STTTT",
        "infrastructure",
        100.0,
        lambda m, z: min(100.0, 84.0 + 1.4 * m + 0.3 * abs(z)),
    ),
    Indicator(
        "KPI-KTS-GRDP",
        "Tỷ trọng kinh tế số trong GRDP",
        "%",
        "SKHDT",
        "digital_economy",
        20.0,
        lambda m, z: 11.0 + 0.25 * m + 0.3 * z,
        quarterly=True,
    ),
)


class Kpis:
    """Defines the indicators and reports them as the months go by."""

    def __init__(self, world: World, profile: Profile, ledger: Ledger) -> None:
        self.world = world
        self.ledger = ledger
        self.first_month = ""
        self.indicators = [
            i for i in INDICATORS if profile.has_agency(i.owner) or profile.has_unit(i.owner)
        ]

    def start(self, moment: datetime) -> None:
        self.world.agenda.at(moment, self._define_and_backfill)

    def _define_and_backfill(self, moment: datetime) -> None:
        today = local(moment).date()
        self.first_month = today.strftime("%Y-%m")
        deadline = date(today.year, 12, 31).isoformat()
        for indicator in self.indicators:
            self.world.emitter.emit(
                "kpi.defined",
                SOURCE,
                indicator.code,
                moment,
                {
                    "name": indicator.name,
                    "measure": indicator.measure,
                    "owner": indicator.owner,
                    "pillar": indicator.pillar,
                    "direction": "increase",
                    "target": indicator.target,
                    "deadline": deadline,
                    "reference": REFERENCE,
                },
            )
        for month in range(1, today.month):
            self._report(moment, today.year, month)
        self.world.agenda.at(_next_report_time(moment), self._monthly)

    def _monthly(self, moment: datetime) -> None:
        first = local(moment).date().replace(day=1)
        last_month = first - timedelta(days=1)
        self._report(moment, last_month.year, last_month.month)
        self.world.agenda.at(_next_report_time(moment + timedelta(days=1)), self._monthly)

    def _report(self, moment: datetime, year: int, month: int) -> None:
        rng = self.world.rng
        key = f"{year}-{month:02d}"
        for indicator in self.indicators:
            if indicator.quarterly and month % 3:
                continue
            period = f"{year}-Q{month // 3}" if indicator.quarterly else key
            value = self._measured(indicator.code, key)
            if value is None:
                value = indicator.trend(month, rng.gauss(0.0, 1.0))
            if indicator.measure == "%":
                value = max(0.0, min(100.0, value))
            rounded: float | int = round(value, indicator.digits)
            if indicator.digits == 0:
                rounded = int(rounded)
            self.world.emitter.emit(
                "kpi.reported", SOURCE, indicator.code, moment, {"period": period, "value": rounded}
            )

    def _measured(self, code: str, month: str) -> float | None:
        """The share the one-stop shop counted in `month`, when it ran all that month."""
        ledger = self.ledger
        if month <= self.first_month:
            return None
        if code == "KPI-DVC-ONLINE" and ledger.received[month] >= ENOUGH_DOSSIERS:
            return 100.0 * ledger.received_online[month] / ledger.received[month]
        completed = ledger.on_time[month] + ledger.late[month]
        if code == "KPI-DVC-ONTIME" and completed >= ENOUGH_DOSSIERS:
            return 100.0 * ledger.on_time[month] / completed
        return None


def _next_report_time(after: datetime) -> datetime:
    """The next 5th of a month at 09:00 (Vietnam time) after `after`."""
    day = local(after).date()
    candidate = datetime.combine(day.replace(day=5), time(9, 0), VN)
    if candidate <= after:
        following = (day.replace(day=28) + timedelta(days=4)).replace(day=5)
        candidate = datetime.combine(following, time(9, 0), VN)
    return candidate
