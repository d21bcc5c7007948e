"""Security cameras of the province's surveillance centres.

Two to four cameras per commune-level unit (security and public), traffic cameras at
each district seat and at the province: about 450 for the demo profile. A sized province
(`count` given, as the benchmarks ask) spreads that many cameras over the commune-level
units in turn instead, with the same shares of kinds.

Rhythms (per camera): an incident about every 3 days (70 % offline, 30 % degraded
picture), over after ~40 minutes (median): about 98-99 % availability; an analytics alert
about every 18 hours while the camera sees (mostly info and warnings; critical alerts
are rare, about 1 in 25).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ops_center.province.profile import COMMUNE_LEVELS, Profile, Unit
from ops_center.tools.simulator.agenda import World, commune_units
from ops_center.tools.simulator.rhythm import Weighted, exponential, hours, lognormal

SOURCE: Final = "/minhson/vms"

MEAN_UP: Final = hours(72)
MEDIAN_DOWN: Final = hours(0.7)
MEAN_BETWEEN_ALERTS: Final = hours(18)

PLACES: Final = {
    "security": ("Cổng UBND", "Trạm y tế", "Trường THCS", "Nhà văn hóa", "Chợ"),
    "public": ("Quảng trường", "Công viên", "Bến xe", "Chợ trung tâm"),
    "traffic": ("Ngã tư trung tâm", "Cầu", "Quốc lộ, km", "Vòng xuyến", "Ngã ba"),
}
ALERTS: Final = {
    "security": (("intrusion", 5), ("tamper", 2), ("fire", 1), ("crowd", 2)),
    "public": (("crowd", 5), ("fire", 1), ("tamper", 1), ("intrusion", 1)),
    "traffic": (("traffic_violation", 8), ("watchlist_plate", 2), ("crowd", 1)),
}
#: The kinds and their shares in the demo profile's natural layout (for a sized province).
KINDS: Final = ("security", "public", "traffic")
KIND_WEIGHTS: Final = (55, 29, 16)
SEVERITIES: Final = ("info", "warning", "critical")
SEVERITY_WEIGHTS: Final = (0.55, 0.41, 0.04)
PLATE_SERIES: Final = ("98", "99", "29", "20", "12", "14")
_KIND: Final = Weighted(KINDS, KIND_WEIGHTS)
_CATEGORY: Final = {
    kind: Weighted([c for c, _ in alerts], [w for _, w in alerts])
    for kind, alerts in ALERTS.items()
}
_SEVERITY: Final = Weighted(SEVERITIES, SEVERITY_WEIGHTS)


@dataclass
class Camera:
    code: str
    unit: Unit
    kind: str
    place: str
    status: str = "online"


class Cameras:
    """The province's cameras, their status and their analytics alerts."""

    def __init__(self, world: World, profile: Profile, count: int | None = None) -> None:
        self.world = world
        self.cameras: list[Camera] = []
        if count is None:
            self._natural(profile)
        else:
            self._sized(profile, count)

    def _natural(self, profile: Profile) -> None:
        """The layout of a real province: by the level of each unit."""
        rng = self.world.rng
        for unit in profile.units.values():
            if unit.level in COMMUNE_LEVELS:
                kinds = ["security"] * rng.randint(1, 3) + ["public"]
            elif unit.level == "district":
                kinds = ["traffic"] * rng.randint(5, 9)
            else:
                kinds = ["traffic"] * 6 + ["public"] * 4
            for index, kind in enumerate(kinds, start=1):
                place = rng.choice(PLACES[kind])
                self.cameras.append(Camera(f"CAM-{unit.code}-{index:02d}", unit, kind, place))

    def _sized(self, profile: Profile, count: int) -> None:
        """`count` cameras over the commune-level units in turn (every unit when none)."""
        rng = self.world.rng
        units = commune_units(profile)
        for n in range(count):
            unit = units[n % len(units)]
            kind = _KIND.pick(rng)
            place = rng.choice(PLACES[kind])
            code = f"CAM-{unit.code}-{n // len(units) + 1:02d}"
            self.cameras.append(Camera(code, unit, kind, place))

    def start(self, moment: datetime) -> None:
        """Register every camera at `moment`, then let them live."""
        self.world.agenda.at(moment, self._register_all)

    def _register_all(self, moment: datetime) -> None:
        rng, emit = self.world.rng, self.world.emitter.emit
        for camera in self.cameras:
            unit = camera.unit
            data: dict[str, object] = {
                "name": f"Camera {camera.place} - {unit.name}",
                "unit": unit.code,
                "kind": camera.kind,
            }
            if unit.lat is not None and unit.lon is not None:
                data["lat"] = round(unit.lat + rng.uniform(-0.01, 0.01), 6)
                data["lon"] = round(unit.lon + rng.uniform(-0.01, 0.01), 6)
            emit("camera.registered", SOURCE, camera.code, moment, data)
            draw = rng.random()
            camera.status = "online" if draw < 0.97 else "degraded" if draw < 0.98 else "offline"
            emit("camera.status", SOURCE, camera.code, moment, {"status": camera.status})
            if camera.status == "online":
                self._schedule_incident(camera, moment)
            else:
                self._schedule_repair(camera, moment)
            self._schedule_alert(camera, moment)

    def _schedule_incident(self, camera: Camera, moment: datetime) -> None:
        self.world.agenda.at(
            moment + exponential(self.world.rng, MEAN_UP), lambda at: self._incident(camera, at)
        )

    def _schedule_repair(self, camera: Camera, moment: datetime) -> None:
        self.world.agenda.at(
            moment + lognormal(self.world.rng, MEDIAN_DOWN, 1.0),
            lambda at: self._repair(camera, at),
        )

    def _incident(self, camera: Camera, moment: datetime) -> None:
        camera.status = "offline" if self.world.rng.random() < 0.7 else "degraded"
        self._report(camera, moment)
        self._schedule_repair(camera, moment)

    def _repair(self, camera: Camera, moment: datetime) -> None:
        camera.status = "online"
        self._report(camera, moment)
        self._schedule_incident(camera, moment)

    def _report(self, camera: Camera, moment: datetime) -> None:
        self.world.emitter.emit(
            "camera.status", SOURCE, camera.code, moment, {"status": camera.status}
        )

    def _schedule_alert(self, camera: Camera, moment: datetime) -> None:
        self.world.agenda.at(
            moment + exponential(self.world.rng, MEAN_BETWEEN_ALERTS),
            lambda at: self._alert(camera, at),
        )

    def _alert(self, camera: Camera, moment: datetime) -> None:
        rng = self.world.rng
        if camera.status != "offline":
            category = _CATEGORY[camera.kind].pick(rng)
            severity = _SEVERITY.pick(rng)
            if category == "fire" and severity == "info":
                severity = "warning"
            alert_id = self.world.serial("A")
            data: dict[str, object] = {
                "alert_id": alert_id,
                "category": category,
                "severity": severity,
                "snapshot_url": f"https://vms.minhson.example.vn/snapshots/{alert_id}.jpg",
            }
            if category in ("traffic_violation", "watchlist_plate"):
                data["plate"] = _plate(rng)
            self.world.emitter.emit("camera.alert", SOURCE, camera.code, moment, data)
        self._schedule_alert(camera, moment)


def _plate(rng: random.Random) -> str:
    """A Vietnamese-style plate such as ``98A-123.45``."""
    digits = f"{rng.randrange(100_000):05d}"
    return f"{rng.choice(PLATE_SERIES)}{rng.choice('ABCDEFGHK')}-{digits[:3]}.{digits[3:]}"
