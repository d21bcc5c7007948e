"""The benchmark's workload: valid CloudEvents for the demo province, in a realistic mix.

Cameras and radio stations are registered first (on units of the profile), then each
connection gets its own stream of events ("lane") whose order is valid when sent in
sequence: a dossier is completed after it was received, a broadcast ends after it
started. Devices are shared by all lanes; ids of dossiers, broadcasts and alerts carry
the lane's prefix so that lanes never collide.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar
from uuid import UUID

from ops_center.ingest.catalogue import (
    ALERT_CATEGORIES,
    CAMERA_KINDS,
    CHANNELS,
    CLUSTER_FAULTS,
    SERVICE_LEVELS,
)
from ops_center.province.calendar import TZ
from ops_center.province.profile import COMMUNE_LEVELS, Profile, Unit

_T = TypeVar("_T")

#: Event types of the measured phases and their weights (registrations come first).
MIX: Final[tuple[tuple[str, int], ...]] = (
    ("camera.status", 30),
    ("camera.alert", 14),
    ("radio.station.status", 14),
    ("radio.broadcast.started", 4),
    ("radio.broadcast.ended", 4),
    ("radio.cluster.fault", 3),
    ("radio.cluster.restored", 3),
    ("dossier.received", 14),
    ("dossier.completed", 14),
)


VIETNAM = TZ
CAMERA_SOURCES: Final = tuple(f"https://vms.minhson.gov.vn/gateways/{n}" for n in range(1, 5))
RADIO_SOURCE: Final = "https://truyenthanh.minhson.gov.vn/controller"
DOSSIER_SOURCE: Final = "https://dichvucong.minhson.gov.vn/motcua"
PROGRAMS: Final = (
    "Bản tin thời sự buổi sáng",
    "Thông báo lịch tiêm chủng",
    "Tuyên truyền phòng chống lụt bão",
    "Hướng dẫn dịch vụ công trực tuyến",
    "Bản tin nông nghiệp",
)
PROCEDURES: Final = (
    "Đăng ký khai sinh",
    "Chứng thực bản sao từ bản chính",
    "Cấp giấy phép xây dựng nhà ở riêng lẻ",
    "Đăng ký thường trú",
    "Cấp đổi giấy chứng nhận quyền sử dụng đất",
    "Đăng ký hộ kinh doanh",
)
PLATE_SERIES: Final = ("29A", "30F", "98C", "99A", "12B", "20K")


class Workload:
    """Generates valid CloudEvents: registrations, then per-connection streams ("lanes").

    A lane is sent in order on one connection, each request after the previous one was
    acknowledged, so an event in a lane may depend on earlier events of the same lane (a
    dossier is completed after it was received, a broadcast ends after it started).
    Devices are shared by all lanes. Event times increase by one millisecond per event.
    """

    def __init__(self, profile: Profile, *, cameras: int, stations: int, seed: int) -> None:
        self._rng = random.Random(seed)
        units = [u for u in profile.units.values() if u.level in COMMUNE_LEVELS]
        self._units: list[Unit] = units or list(profile.units.values())
        self._agencies = list(profile.agencies) or [profile.root.code]
        self._camera_count = cameras
        self._station_count = stations
        self.cameras: list[str] = []
        self.stations: list[tuple[str, int]] = []
        self._clock = datetime.now(VIETNAM).replace(microsecond=0) - timedelta(hours=6)
        self._tick = 0
        names = [name for name, _ in MIX]
        weights = [weight for _, weight in MIX]
        self._types = names
        self._cum_weights = [sum(weights[: i + 1]) for i in range(len(weights))]

    def _uuid(self) -> str:
        return str(UUID(int=self._rng.getrandbits(128), version=4))

    def _now(self) -> datetime:
        self._tick += 1
        return self._clock + timedelta(milliseconds=self._tick)

    def _event(self, kind: str, source: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self._uuid(),
            "source": source,
            "type": kind,
            "time": self._now().isoformat(timespec="milliseconds"),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": data,
        }

    def _place(self, unit: Unit, data: dict[str, Any]) -> dict[str, Any]:
        if unit.lat is not None and unit.lon is not None:
            data["lat"] = round(unit.lat + self._rng.uniform(-0.02, 0.02), 6)
            data["lon"] = round(unit.lon + self._rng.uniform(-0.02, 0.02), 6)
        return data

    def registrations(self) -> list[dict[str, Any]]:
        """``camera.registered`` and ``radio.station.registered`` for every device."""
        rng = self._rng
        events = []
        for i in range(1, self._camera_count + 1):
            unit = rng.choice(self._units)
            code = f"CAM-{i:05d}"
            data: dict[str, Any] = {
                "name": f"Camera {i:05d} - {unit.name}",
                "unit": unit.code,
                "kind": rng.choice(CAMERA_KINDS),
            }
            events.append(
                self._event(
                    "camera.registered", rng.choice(CAMERA_SOURCES), code, self._place(unit, data)
                )
            )
            self.cameras.append(code)
        for i in range(1, self._station_count + 1):
            unit = rng.choice(self._units)
            code = f"RADIO-{i:04d}"
            clusters = rng.randint(2, 12)
            data = {
                "name": f"Đài truyền thanh {unit.name} #{i}",
                "unit": unit.code,
                "clusters": clusters,
            }
            events.append(
                self._event("radio.station.registered", RADIO_SOURCE, code, self._place(unit, data))
            )
            self.stations.append((code, clusters))
        return events

    def lane(self, prefix: str, count: int) -> list[dict[str, Any]]:
        """`count` events of the mix for one connection; `prefix` keeps its ids unique."""
        rng = self._rng
        open_dossiers: list[str] = []
        on_air: list[tuple[str, str]] = []
        dossiers = broadcasts = alerts = 0
        events: list[dict[str, Any]] = []
        for kind in rng.choices(self._types, cum_weights=self._cum_weights, k=count):
            if kind == "dossier.completed" and not open_dossiers:
                kind = "dossier.received"
            if kind == "radio.broadcast.ended" and not on_air:
                kind = "radio.broadcast.started"
            if kind == "camera.status":
                status = rng.choices(("online", "offline", "degraded"), (70, 20, 10))[0]
                camera = rng.choice(self.cameras)
                source = rng.choice(CAMERA_SOURCES)
                events.append(self._event(kind, source, camera, {"status": status}))
            elif kind == "camera.alert":
                alerts += 1
                alert_id = f"AL-{prefix}-{alerts:06d}"
                category = rng.choice(ALERT_CATEGORIES)
                data: dict[str, Any] = {
                    "alert_id": alert_id,
                    "category": category,
                    "severity": rng.choices(("info", "warning", "critical"), (60, 30, 10))[0],
                    "snapshot_url": f"https://vms.minhson.gov.vn/snapshots/{alert_id}.jpg",
                }
                if category in ("traffic_violation", "watchlist_plate"):
                    data["plate"] = (
                        f"{rng.choice(PLATE_SERIES)}-{rng.randint(100, 999)}.{rng.randint(10, 99)}"
                    )
                camera = rng.choice(self.cameras)
                events.append(self._event(kind, rng.choice(CAMERA_SOURCES), camera, data))
            elif kind == "radio.station.status":
                station, _ = rng.choice(self.stations)
                status = "online" if rng.random() < 0.8 else "offline"
                events.append(self._event(kind, RADIO_SOURCE, station, {"status": status}))
            elif kind == "radio.broadcast.started":
                broadcasts += 1
                station, _ = rng.choice(self.stations)
                broadcast_id = f"BC-{prefix}-{broadcasts:06d}"
                data = {
                    "broadcast_id": broadcast_id,
                    "program": rng.choice(PROGRAMS),
                    "kind": rng.choices(("normal", "priority", "emergency"), (85, 12, 3))[0],
                }
                events.append(self._event(kind, RADIO_SOURCE, station, data))
                on_air.append((station, broadcast_id))
            elif kind == "radio.broadcast.ended":
                station, broadcast_id = _take(rng, on_air)
                data = {"broadcast_id": broadcast_id}
                events.append(self._event(kind, RADIO_SOURCE, station, data))
            elif kind in ("radio.cluster.fault", "radio.cluster.restored"):
                station, clusters = rng.choice(self.stations)
                data = {"cluster": rng.randint(1, clusters)}
                if kind == "radio.cluster.fault":
                    data["fault"] = rng.choice(CLUSTER_FAULTS)
                events.append(self._event(kind, RADIO_SOURCE, station, data))
            elif kind == "dossier.received":
                dossiers += 1
                code = f"HS-{prefix}-{dossiers:06d}"
                received = self._now()
                due = received + timedelta(days=rng.randint(3, 15))
                data = {
                    "procedure_code": f"1.{rng.randint(1000, 13000):06d}",
                    "procedure_name": rng.choice(PROCEDURES),
                    "level": rng.choice(SERVICE_LEVELS),
                    "channel": rng.choice(CHANNELS),
                    "agency": rng.choice(self._agencies),
                    "unit": rng.choice(self._units).code,
                    "due_at": due.isoformat(timespec="seconds"),
                }
                events.append(self._event(kind, DOSSIER_SOURCE, code, data))
                open_dossiers.append(code)
            else:  # dossier.completed
                code = _take(rng, open_dossiers)
                result = "approved" if rng.random() < 0.92 else "refused"
                events.append(self._event(kind, DOSSIER_SOURCE, code, {"result": result}))
        return events


def _take(rng: random.Random, items: list[_T]) -> _T:
    """Remove and return a random item (order of the rest is not kept)."""
    i = rng.randrange(len(items))
    items[i], items[-1] = items[-1], items[i]
    return items.pop()


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible (larger shares first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
