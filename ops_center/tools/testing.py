"""Hand-made CloudEvents for tests whose expectations are exact: a factory and a small world.

`Events` builds raw CloudEvents (JSON-ready dicts) of every catalogue type with unique ids
and exactly the values a test names; `known_world` is a small world whose figures tests
work out by hand. These are test fixtures, not traffic: realistic volumes come from the
simulated province (`ops_center.tools.simulator`), and
`ops_center.tools.simulator.recording.submissions` records either with `OpsCenter.ingest`.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from ops_center.province.calendar import TZ

Raw = dict[str, Any]


def _time(value: datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


class Events:
    """Factory of raw CloudEvents with unique ids (``<prefix>-<n>``) from one source."""

    def __init__(self, source: str = "/tests", prefix: str = "evt") -> None:
        self.source = source
        self.prefix = prefix
        self._ids = itertools.count(1)

    def event(self, type_: str, subject: str, time: datetime | str, data: Raw) -> Raw:
        return {
            "specversion": "1.0",
            "id": f"{self.prefix}-{next(self._ids)}",
            "source": self.source,
            "type": type_,
            "time": _time(time),
            "subject": subject,
            "data": data,
        }

    def camera(
        self, code: str, unit: str, time: datetime | str, *, kind: str = "security", **extra: Any
    ) -> Raw:
        data = {"name": f"Camera {code}", "unit": unit, "kind": kind, **extra}
        return self.event("camera.registered", code, time, data)

    def camera_status(self, code: str, status: str, time: datetime | str) -> Raw:
        return self.event("camera.status", code, time, {"status": status})

    def camera_alert(
        self, code: str, alert_id: str, time: datetime | str, *, severity: str = "warning"
    ) -> Raw:
        data = {"alert_id": alert_id, "category": "intrusion", "severity": severity}
        return self.event("camera.alert", code, time, data)

    def station(
        self, code: str, unit: str, time: datetime | str, *, clusters: int = 4, **extra: Any
    ) -> Raw:
        data = {"name": f"Station {code}", "unit": unit, "clusters": clusters, **extra}
        return self.event("radio.station.registered", code, time, data)

    def station_status(self, code: str, status: str, time: datetime | str) -> Raw:
        return self.event("radio.station.status", code, time, {"status": status})

    def broadcast(
        self, code: str, broadcast_id: str, time: datetime | str, *, kind: str = "normal"
    ) -> Raw:
        data = {"broadcast_id": broadcast_id, "program": f"Program {broadcast_id}", "kind": kind}
        return self.event("radio.broadcast.started", code, time, data)

    def broadcast_end(self, code: str, broadcast_id: str, time: datetime | str) -> Raw:
        return self.event("radio.broadcast.ended", code, time, {"broadcast_id": broadcast_id})

    def fault(self, code: str, cluster: int, time: datetime | str, fault: str = "power") -> Raw:
        return self.event("radio.cluster.fault", code, time, {"cluster": cluster, "fault": fault})

    def restored(self, code: str, cluster: int, time: datetime | str) -> Raw:
        return self.event("radio.cluster.restored", code, time, {"cluster": cluster})

    def dossier(
        self,
        code: str,
        time: datetime | str,
        due_at: datetime | str,
        *,
        agency: str = "STTTT",
        unit: str = "MS",
        channel: str = "online",
        level: str = "full_online",
        procedure: str = "P-001",
        digitised: bool | None = None,
        fee: bool | None = None,
    ) -> Raw:
        flags = {k: v for k, v in (("digitised", digitised), ("fee", fee)) if v is not None}
        data = {
            "procedure_code": procedure,
            "procedure_name": f"Procedure {procedure}",
            "level": level,
            "channel": channel,
            "agency": agency,
            "unit": unit,
            "due_at": _time(due_at),
            **flags,
        }
        return self.event("dossier.received", code, time, data)

    def supplement(self, code: str, time: datetime | str) -> Raw:
        return self.event("dossier.supplement_requested", code, time, {"reason": "missing"})

    def completed(
        self,
        code: str,
        time: datetime | str,
        result: str = "approved",
        *,
        e_result: bool | None = None,
        paid_online: bool | None = None,
    ) -> Raw:
        data: Raw = {"result": result}
        for name, value in (("e_result", e_result), ("paid_online", paid_online)):
            if value is not None:
                data[name] = value
        return self.event("dossier.completed", code, time, data)

    def rated(self, code: str, rating: str, time: datetime | str) -> Raw:
        return self.event("dossier.rated", code, time, {"rating": rating})

    def withdrawn(self, code: str, time: datetime | str) -> Raw:
        return self.event("dossier.withdrawn", code, time, {"reason": "withdrawn"})

    def kpi(
        self,
        code: str,
        time: datetime | str,
        *,
        target: float,
        deadline: str,
        direction: str = "increase",
        owner: str = "STTTT",
        pillar: str = "digital_government",
        measure: str = "%",
    ) -> Raw:
        data = {
            "name": f"Indicator {code}",
            "measure": measure,
            "owner": owner,
            "pillar": pillar,
            "direction": direction,
            "target": target,
            "deadline": deadline,
        }
        return self.event("kpi.defined", code, time, data)

    def report(self, code: str, period: str, value: float, time: datetime | str) -> Raw:
        return self.event("kpi.reported", code, time, {"period": period, "value": value})

    def revise(self, code: str, target: float, deadline: str, time: datetime | str) -> Raw:
        return self.event(
            "kpi.target_revised", code, time, {"target": target, "deadline": deadline}
        )

    def field_report(
        self,
        code: str,
        unit: str,
        time: datetime | str,
        *,
        category: str = "environment",
        channel: str = "app",
        **extra: Any,
    ) -> Raw:
        """A citizen's field report received (``report.received``); `extra`: ``lat``,
        ``lon``, ``description``, ``photo_url``."""
        data = {
            "category": category,
            "title": f"Report {code}",
            "unit": unit,
            "channel": channel,
            **extra,
        }
        return self.event("report.received", code, time, data)

    def report_assigned(
        self, code: str, agency: str, due_at: datetime | str, time: datetime | str
    ) -> Raw:
        return self.event(
            "report.assigned", code, time, {"agency": agency, "due_at": _time(due_at)}
        )

    def report_reassigned(
        self, code: str, agency: str, due_at: datetime | str, time: datetime | str
    ) -> Raw:
        data = {"agency": agency, "due_at": _time(due_at), "reason": "reassigned"}
        return self.event("report.reassigned", code, time, data)

    def report_resolved(self, code: str, time: datetime | str, result: str = "done") -> Raw:
        return self.event("report.resolved", code, time, {"result": result})

    def report_rejected(
        self, code: str, time: datetime | str, *, duplicate_of: str | None = None
    ) -> Raw:
        data: Raw = {"reason": "duplicate" if duplicate_of else "out of scope"}
        if duplicate_of is not None:
            data["duplicate_of"] = duplicate_of
        return self.event("report.rejected", code, time, data)

    def report_rated(self, code: str, rating: str, time: datetime | str) -> Raw:
        return self.event("report.rated", code, time, {"rating": rating})


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def known_world(clock: datetime, events: Events | None = None) -> list[list[Raw]]:
    """A small world, in batches to ingest in order, whose figures tests know exactly.

    Times are relative to the local midnight of `clock` (T0) and its day before (Y0);
    late events (older `time` than what is already recorded) are in the last batch.
    The expected figures are spelt out in tests/e2e/test_queries.py.
    """
    e = events or Events()
    t0 = datetime.combine(clock.astimezone(TZ).date(), datetime.min.time(), TZ)
    y0 = t0 - timedelta(days=1)
    today = t0.date()
    m1 = _month(today.replace(day=1) - timedelta(days=1))
    m2 = _month((today.replace(day=1) - timedelta(days=1)).replace(day=1) - timedelta(days=1))
    soon = (today + timedelta(days=365)).isoformat()
    passed = (today - timedelta(days=1)).isoformat()

    def s(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    registrations = [
        e.camera("CAM-A", "MS-D01-C01", y0 + timedelta(hours=8)),
        e.camera("CAM-B", "MS-D01-C01", y0 + timedelta(hours=8)),
        e.camera("CAM-C", "MS-D02-C01", y0 + timedelta(hours=8), kind="traffic"),
        e.camera("CAM-D", "MS-D01-C02", y0 + timedelta(hours=8)),
        e.camera("CAM-E", "MS-D02-C01", y0 + timedelta(hours=8), kind="public"),
        e.station("R-1", "MS-D01-C01", y0 + timedelta(hours=8), lat=21.2, lon=106.2),
        e.station("R-2", "MS-D02-C01", y0 + timedelta(hours=8), clusters=2),
        e.kpi("K1", y0 + timedelta(hours=8), target=80, deadline=soon),
        e.kpi("K2", y0 + timedelta(hours=8), target=80, deadline=soon),
        e.kpi("K3", y0 + timedelta(hours=8), target=100, deadline=soon, owner="MS-D01"),
        e.kpi(
            "K4",
            y0 + timedelta(hours=8),
            target=5,
            deadline=passed,
            direction="decrease",
            owner="SYT",
        ),
        e.kpi(
            "K5",
            y0 + timedelta(hours=8),
            target=50,
            deadline=soon,
            owner="SYT",
            pillar="digital_economy",
        ),
    ]
    statuses = [
        e.camera_status("CAM-A", "online", s(1)),
        e.camera_status("CAM-B", "online", s(2)),
        e.camera_status("CAM-C", "degraded", s(3)),
        e.camera_status("CAM-C", "online", s(3)),  # same time, later position: wins
        e.camera_status("CAM-E", "degraded", s(3)),
        e.station_status("R-1", "online", s(1)),
        e.station_status("R-2", "offline", s(1)),
        e.fault("R-1", 2, s(4), "power"),
        e.fault("R-1", 3, s(5), "network"),
        e.restored("R-1", 3, s(6)),
    ]
    broadcasts = [
        e.broadcast("R-1", "e1", s(7), kind="emergency"),
        e.broadcast("R-1", "n1", s(8)),
        e.broadcast_end("R-1", "n1", s(9)),
        e.broadcast("R-2", "n2", s(10)),
    ]
    d01: dict[str, Any] = {"agency": "STTTT", "unit": "MS-D01-C01"}
    d02: dict[str, Any] = {"agency": "SYT", "unit": "MS-D02-C01"}
    dossiers = [
        e.dossier("D1", s(1), t0 + timedelta(days=3), **d01),
        e.dossier("D2", y0 + timedelta(hours=10), s(1), **d01),
        e.dossier("D3", y0 + timedelta(hours=11), t0 + timedelta(days=2), channel="counter", **d01),
        e.dossier("D4", y0 - timedelta(hours=10), y0 + timedelta(hours=12), **d02),
        e.dossier("D5", s(4), t0 + timedelta(days=5), **d02),
        e.dossier("D6", s(6), clock + timedelta(hours=2), channel="counter", **d02),
        e.supplement("D3", y0 + timedelta(hours=12)),
        e.completed("D3", s(2)),
        e.completed("D4", s(3), result="refused"),
        e.withdrawn("D5", s(5)),
    ]
    reports = [
        e.report("K1", m2, 70, y0 + timedelta(hours=9)),
        e.report("K1", m1, 85, y0 + timedelta(hours=9)),
        e.report("K2", m2, 10, y0 + timedelta(hours=9)),
        e.report("K2", m1, 11, y0 + timedelta(hours=9)),
        e.report("K3", m2, 10, y0 + timedelta(hours=9)),
        e.report("K3", m1, 50, y0 + timedelta(hours=9)),
        e.report("K4", m1, 10, y0 + timedelta(hours=9)),
        e.revise("K5", 40, soon, y0 + timedelta(hours=9)),
    ]
    field_reports = [
        e.field_report("P1", "MS-D01-C01", y0 + timedelta(hours=9), lat=21.24, lon=106.25),
        e.report_assigned("P1", "STTTT", y0 + timedelta(hours=20), y0 + timedelta(hours=9.25)),
        e.field_report("P2", "MS-D02-C01", s(12), category="traffic", channel="hotline"),
        e.field_report("P3", "MS-D01-C01", s(13), category="utilities"),
        e.report_assigned("P3", "SYT", t0 + timedelta(days=2), s(14)),
        e.report_resolved("P3", s(15)),
        e.report_rated("P3", "satisfied", s(16)),
        e.field_report("P4", "MS-D02-C01", y0 + timedelta(hours=10), category="urban_order"),
        e.report_assigned("P4", "MS-D02-C01", y0 + timedelta(hours=12), y0 + timedelta(hours=10.5)),
        e.report_resolved("P4", s(17)),
        e.report_rated("P4", "dissatisfied", s(18)),
        e.field_report("P5", "MS-D01-C02", s(19), category="other", channel="social"),
        e.report_rejected("P5", s(20), duplicate_of="P1"),
    ]
    late = [
        # older than P1's assignment: history only
        e.report_reassigned(
            "P1", "SYT", t0 + timedelta(days=10), y0 + timedelta(hours=9, minutes=10)
        ),
        e.camera_status("CAM-A", "offline", s(20)),
        e.camera_status("CAM-B", "offline", s(1)),  # older than its online: history only
        e.restored("R-1", 2, s(3)),  # older than the fault: history only
        e.report("K1", m1, 10, y0 + timedelta(hours=8, minutes=30)),  # older: history only
        e.revise("K1", 90, soon, y0 + timedelta(hours=7)),  # older than the definition
        e.camera_alert("CAM-C", "a1", s(11), severity="critical"),
    ]
    return [registrations, statuses, broadcasts, dossiers, reports, field_reports, late]
