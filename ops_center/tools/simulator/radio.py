"""Commune smart-radio stations: one per commune-level unit, as provinces deploy them.

A sized province (`count` given, as the benchmarks ask) spreads that many stations over
the commune-level units in turn instead (``DTT-<unit>``, then ``DTT-<unit>-2``, ...).

Rhythms (rates are per station unless said otherwise):

* a station loses its link about every 4 days and is back after ~1.5 h (median; some
  outages last much longer): about 98 % availability;
* a speaker cluster faults about every 5 days (power, network, speaker) and is restored
  after ~5 h (median);
* two daily bulletins, morning (06:00) and afternoon (17:30), 30 minutes, on every
  station that is online, each a few minutes apart;
* priority notices about twice a day, on the stations of one district;
* emergency bulletins (storm, flood, landslide warnings) about every 2 days on the
  stations of one district, the first (a drill) within the first hours of a run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Final

from ops_center.province.profile import COMMUNE_LEVELS, Profile, Unit
from ops_center.tools.simulator.agenda import Happening, World, commune_units
from ops_center.tools.simulator.rhythm import (
    VN,
    Weighted,
    exponential,
    hours,
    local,
    lognormal,
)

SOURCE: Final = "/minhson/radio-platform"

MEAN_UP: Final = hours(96)
MEDIAN_DOWN: Final = hours(1.5)
MEAN_BETWEEN_FAULTS: Final = hours(120)
MEDIAN_REPAIR: Final = hours(5)
MEAN_BETWEEN_NOTICES: Final = hours(12)
MEAN_BETWEEN_EMERGENCIES: Final = hours(48)
#: Scheduled daily bulletins: local start time, programme, minutes on air.
BULLETINS: Final = (
    (time(6, 0), "Bản tin sáng: thời sự và thông tin của xã", 30),
    (time(17, 30), "Bản tin chiều: chính sách, pháp luật, chuyển đổi số", 30),
)
NOTICES: Final = (
    "Thông báo lịch tiêm chủng mở rộng",
    "Thông báo thu thuế sử dụng đất phi nông nghiệp",
    "Hướng dẫn nộp hồ sơ dịch vụ công trực tuyến",
    "Thông báo lịch cắt điện",
    "Tuyên truyền phòng chống lừa đảo qua mạng",
)
EMERGENCIES: Final = (
    "Cảnh báo mưa lớn, nguy cơ lũ quét và sạt lở đất",
    "Thông báo khẩn: bão đổ bộ, đề nghị nhân dân không ra khỏi nhà",
    "Cảnh báo cháy rừng cấp cực kỳ nguy hiểm",
    "Thông báo khẩn: xả lũ hồ chứa, sơ tán dân vùng hạ du",
)
DRILL: Final = "Diễn tập phòng chống thiên tai: phát bản tin cảnh báo khẩn cấp"
FAULTS: Final = ("power", "network", "speaker")
FAULT_WEIGHTS: Final = (0.45, 0.35, 0.2)
_FAULT: Final = Weighted(FAULTS, FAULT_WEIGHTS)


@dataclass
class Station:
    code: str
    unit: Unit
    clusters: int
    online: bool = True
    faults: set[int] = field(default_factory=set)
    on_air: dict[str, str] = field(default_factory=dict)


class Radio:
    """The province's radio stations and their broadcasts."""

    def __init__(self, world: World, profile: Profile, count: int | None = None) -> None:
        self.world = world
        rng = world.rng
        if count is None:
            self.stations = [
                Station(f"DTT-{unit.code}", unit, rng.randint(3, 8))
                for unit in profile.units.values()
                if unit.level in COMMUNE_LEVELS
            ]
        else:
            units = commune_units(profile)
            self.stations = []
            for n in range(count):
                unit, round_ = units[n % len(units)], n // len(units)
                code = f"DTT-{unit.code}" + (f"-{round_ + 1}" if round_ else "")
                self.stations.append(Station(code, unit, rng.randint(3, 8)))
        groups: defaultdict[str, list[Station]] = defaultdict(list)
        for station in self.stations:
            groups[station.unit.parent or station.unit.code].append(station)
        self.groups = list(groups.values())

    # -- registration -----------------------------------------------------------------

    def start(self, moment: datetime) -> None:
        """Register every station at `moment`, then let them live."""
        self.world.agenda.at(moment, self._register_all)
        for clock, programme, minutes in BULLETINS:
            first = _next_local(moment, clock)
            self.world.agenda.at(first, self._bulletin(clock, programme, minutes))
        rng = self.world.rng
        self.world.agenda.at(moment + exponential(rng, MEAN_BETWEEN_NOTICES), self._notice)
        drill = moment + hours(rng.uniform(0.5, 3.0))
        self.world.agenda.at(drill, lambda at: self._emergency(at, DRILL))

    def _register_all(self, moment: datetime) -> None:
        rng, emit = self.world.rng, self.world.emitter.emit
        for station in self.stations:
            unit = station.unit
            data: dict[str, object] = {
                "name": f"Đài truyền thanh {unit.name}",
                "unit": unit.code,
                "clusters": station.clusters,
            }
            if unit.lat is not None and unit.lon is not None:
                data["lat"] = round(unit.lat + rng.uniform(-0.004, 0.004), 6)
                data["lon"] = round(unit.lon + rng.uniform(-0.004, 0.004), 6)
            emit("radio.station.registered", SOURCE, station.code, moment, data)
            station.online = rng.random() < 0.98
            status = "online" if station.online else "offline"
            emit("radio.station.status", SOURCE, station.code, moment, {"status": status})
            if station.online:
                self._schedule_drop(station, moment)
            else:
                self._schedule_return(station, moment)
            self._schedule_fault(station, moment)

    # -- links --------------------------------------------------------------------------

    def _schedule_drop(self, station: Station, moment: datetime) -> None:
        self.world.agenda.at(
            moment + exponential(self.world.rng, MEAN_UP), lambda at: self._drop(station, at)
        )

    def _schedule_return(self, station: Station, moment: datetime) -> None:
        self.world.agenda.at(
            moment + lognormal(self.world.rng, MEDIAN_DOWN, 0.9),
            lambda at: self._return(station, at),
        )

    def _drop(self, station: Station, moment: datetime) -> None:
        station.online = False
        self.world.emitter.emit(
            "radio.station.status", SOURCE, station.code, moment, {"status": "offline"}
        )
        self._schedule_return(station, moment)

    def _return(self, station: Station, moment: datetime) -> None:
        station.online = True
        self.world.emitter.emit(
            "radio.station.status", SOURCE, station.code, moment, {"status": "online"}
        )
        self._schedule_drop(station, moment)

    # -- speaker clusters ---------------------------------------------------------------

    def _schedule_fault(self, station: Station, moment: datetime) -> None:
        self.world.agenda.at(
            moment + exponential(self.world.rng, MEAN_BETWEEN_FAULTS),
            lambda at: self._fault(station, at),
        )

    def _fault(self, station: Station, moment: datetime) -> None:
        rng = self.world.rng
        working = [c for c in range(1, station.clusters + 1) if c not in station.faults]
        if working:
            cluster = rng.choice(working)
            fault = _FAULT.pick(rng)
            station.faults.add(cluster)
            self.world.emitter.emit(
                "radio.cluster.fault",
                SOURCE,
                station.code,
                moment,
                {"cluster": cluster, "fault": fault},
            )
            self.world.agenda.at(
                moment + lognormal(rng, MEDIAN_REPAIR, 0.8),
                lambda at: self._restore(station, cluster, at),
            )
        self._schedule_fault(station, moment)

    def _restore(self, station: Station, cluster: int, moment: datetime) -> None:
        station.faults.discard(cluster)
        self.world.emitter.emit(
            "radio.cluster.restored", SOURCE, station.code, moment, {"cluster": cluster}
        )

    # -- broadcasts ---------------------------------------------------------------------

    def _bulletin(self, clock: time, programme: str, minutes: int) -> Happening:
        def happen(moment: datetime) -> None:
            rng = self.world.rng
            for station in self.stations:
                delay = timedelta(seconds=rng.uniform(0, 300))
                self._on_air(station, moment + delay, programme, "normal", minutes)
            self.world.agenda.at(_next_local(moment + timedelta(minutes=1), clock), happen)

        return happen

    def _notice(self, moment: datetime) -> None:
        rng = self.world.rng
        hour = local(moment).hour
        if 7 <= hour < 20:
            programme = rng.choice(NOTICES)
            for station in self._some_group():
                delay = timedelta(seconds=rng.uniform(0, 120))
                self._on_air(station, moment + delay, programme, "priority", rng.randint(5, 15))
        self.world.agenda.at(moment + exponential(rng, MEAN_BETWEEN_NOTICES), self._notice)

    def _emergency(self, moment: datetime, programme: str | None = None) -> None:
        rng = self.world.rng
        programme = programme or rng.choice(EMERGENCIES)
        for station in self._some_group():
            delay = timedelta(seconds=rng.uniform(0, 60))
            self._on_air(station, moment + delay, programme, "emergency", rng.randint(10, 25))
        self.world.agenda.at(moment + exponential(rng, MEAN_BETWEEN_EMERGENCIES), self._emergency)

    def _some_group(self) -> list[Station]:
        """The stations of one district (at most 15 of them in a two-tier province)."""
        rng = self.world.rng
        group = rng.choice(self.groups)
        if len(group) > 15:
            group = rng.sample(group, rng.randint(8, 15))
        return group

    def _on_air(
        self, station: Station, moment: datetime, programme: str, kind: str, minutes: int
    ) -> None:
        broadcast_id = self.world.serial("B")

        def start(at: datetime) -> None:
            if not station.online:
                return
            station.on_air[broadcast_id] = kind
            self.world.emitter.emit(
                "radio.broadcast.started",
                SOURCE,
                station.code,
                at,
                {"broadcast_id": broadcast_id, "program": programme, "kind": kind},
            )
            self.world.agenda.at(at + timedelta(minutes=minutes), end)

        def end(at: datetime) -> None:
            self.end(station, broadcast_id, at)

        self.world.agenda.at(moment, start)

    def end(self, station: Station, broadcast_id: str, moment: datetime) -> None:
        """Take a broadcast off air (nothing if it already ended)."""
        if station.on_air.pop(broadcast_id, None) is not None:
            self.world.emitter.emit(
                "radio.broadcast.ended",
                SOURCE,
                station.code,
                moment,
                {"broadcast_id": broadcast_id},
            )

    def wind_down(self, moment: datetime) -> None:
        """End every broadcast on air now (a run that stops leaves nothing on air)."""
        for station in self.stations:
            for broadcast_id in list(station.on_air):
                self.end(station, broadcast_id, moment)


def _next_local(after: datetime, clock: time) -> datetime:
    """The first moment at local `clock` at or after `after`."""
    day = local(after).date()
    candidate = datetime.combine(day, clock, VN)
    if candidate < after:
        candidate = datetime.combine(day + timedelta(days=1), clock, VN)
    return candidate
