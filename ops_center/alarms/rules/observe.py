"""The causes of alarms, observed on a subject's facts at a moment. No I/O.

`observe(cause, facts, clock, ...)` says whether the cause is present at `clock` and, if
not yet, from when it will be (`starts_at`: a grace period running, a due time ahead);
if present, until when by itself (`ends_at`: a critical alert's hold). The rules:

* ``device_offline`` (camera, radio): a camera offline or degraded, or a station offline,
  for at least `offline_grace`; severity warning (camera degraded: info);
* ``cluster_fault`` (radio): at least one loudspeaker cluster has a fault; warning;
* ``emergency_broadcast`` (radio): an emergency bulletin is on air; critical;
* ``camera_alert`` (camera): within `alert_hold` of the camera's latest critical alert;
  critical;
* ``dossier_overdue`` (dossier): open and `dossier_grace` past its due time; warning;
* ``report_overdue`` (report): assigned, neither resolved nor rejected, and at or past the
  due time of the assignment in effect; warning (a reassignment to a later due time, a
  resolution or a rejection clears it);
* ``kpi_off_track`` (kpi): the indicator's status is ``off_track``
  (`ops_center.domain.kpi_status`, on the local date of the clock); info.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from ops_center.alarms.rules.facts import (
    BAD_STATUSES,
    CAMERA,
    DOSSIER,
    KPI,
    RADIO,
    REPORT,
    Facts,
    when,
)
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain.kpi_status import kpi_status
from ops_center.province.calendar import TZ, local_date, period_key

DEVICE_OFFLINE: Final = "device_offline"
CLUSTER_FAULT: Final = "cluster_fault"
EMERGENCY_BROADCAST: Final = "emergency_broadcast"
CAMERA_ALERT: Final = "camera_alert"
DOSSIER_OVERDUE: Final = "dossier_overdue"
KPI_OFF_TRACK: Final = "kpi_off_track"
REPORT_OVERDUE: Final = "report_overdue"

CAUSES: Final = (
    DEVICE_OFFLINE,
    CLUSTER_FAULT,
    EMERGENCY_BROADCAST,
    CAMERA_ALERT,
    DOSSIER_OVERDUE,
    KPI_OFF_TRACK,
    REPORT_OVERDUE,
)

#: The causes that can concern a subject of each kind.
CAUSES_BY_KIND: Final[dict[str, tuple[str, ...]]] = {
    CAMERA: (DEVICE_OFFLINE, CAMERA_ALERT),
    RADIO: (DEVICE_OFFLINE, CLUSTER_FAULT, EMERGENCY_BROADCAST),
    DOSSIER: (DOSSIER_OVERDUE,),
    KPI: (KPI_OFF_TRACK,),
    REPORT: (REPORT_OVERDUE,),
}

#: The unit of a KPI owner (an agency's unit, or the unit itself); None when unknown.
UnitOf = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Observation:
    """A cause on a subject at a moment.

    `since`: when a present cause qualified (the alarm's raising time). `starts_at`: when
    an absent cause will be present if nothing changes. `ends_at`: when a present cause
    stops by itself. `cleared_at`: when an absent cause stopped by itself (expiry).
    """

    present: bool
    unit: str | None
    severity: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cleared_at: datetime | None = None


def observe(
    cause: str, facts: Facts, clock: datetime, thresholds: Thresholds, unit_of: UnitOf
) -> Observation:
    """The cause on the subject whose `facts` are given, at `clock`."""
    match cause:
        case "device_offline":
            return _device_offline(facts, clock, thresholds.offline_grace)
        case "cluster_fault":
            return _cluster_fault(facts)
        case "emergency_broadcast":
            return _emergency(facts)
        case "camera_alert":
            return _camera_alert(facts, clock, thresholds.alert_hold)
        case "dossier_overdue":
            return _dossier_overdue(facts, clock, thresholds.dossier_grace)
        case "kpi_off_track":
            return _kpi_off_track(facts, clock, unit_of)
        case "report_overdue":
            return _report_overdue(facts, clock)
    raise ValueError(f"unknown cause {cause!r}")


def _absent(facts: Facts, severity: str, starts_at: datetime | None = None) -> Observation:
    return Observation(False, facts.get("unit"), severity, "", starts_at=starts_at)


def _label(facts: Facts) -> str:
    what = "Camera" if facts["kind"] == CAMERA else "Radio station"
    return f"{what} {facts['code']} ({facts['name']})"


def _device_offline(facts: Facts, clock: datetime, grace: timedelta) -> Observation:
    status = facts.get("status")
    bad_since = when(facts.get("bad_since"))
    if status not in BAD_STATUSES[facts["kind"]] or bad_since is None:
        return _absent(facts, "warning")
    severity = "info" if status == "degraded" else "warning"
    qualifies = bad_since + grace
    if qualifies > clock:
        return _absent(facts, severity, starts_at=qualifies)
    return Observation(
        True,
        facts["unit"],
        severity,
        f"{_label(facts)} is {status}",
        {"status": status, "since": facts["bad_since"]},
        since=qualifies,
    )


def _cluster_fault(facts: Facts) -> Observation:
    faults = sorted(
        (
            (int(n), c["fault"], c["at"])
            for n, c in (facts.get("clusters") or {}).items()
            if c["fault"]
        ),
    )
    if not faults:
        return _absent(facts, "warning")
    listed = ", ".join(f"{n} ({fault})" for n, fault, _ in faults)
    return Observation(
        True,
        facts["unit"],
        "warning",
        f"{_label(facts)}: loudspeaker cluster {listed} faulty",
        {"clusters": [{"cluster": n, "fault": fault} for n, fault, _ in faults]},
        since=min(datetime.fromisoformat(at) for _, _, at in faults),
    )


def _emergency(facts: Facts) -> Observation:
    on_air = sorted(
        (b["at"], bid, b["program"]) for bid, b in (facts.get("emergency") or {}).items()
    )
    if not on_air:
        return _absent(facts, "critical")
    programs = "; ".join(program for _, _, program in on_air)
    return Observation(
        True,
        facts["unit"],
        "critical",
        f"Emergency bulletin on air at {_label(facts)}: {programs}",
        {"broadcasts": [{"broadcast_id": bid, "program": p} for _, bid, p in on_air]},
        since=min(datetime.fromisoformat(at) for at, _, _ in on_air),
    )


def _camera_alert(facts: Facts, clock: datetime, hold: timedelta) -> Observation:
    alert = facts.get("alert")
    if not alert:
        return _absent(facts, "critical")
    at = datetime.fromisoformat(alert["at"])
    ends = at + hold
    if ends <= clock:
        return Observation(False, facts["unit"], "critical", "", cleared_at=ends)
    return Observation(
        True,
        facts["unit"],
        "critical",
        f"Critical {alert['category']} alert on {_label(facts)}",
        {k: v for k, v in alert.items() if v is not None},
        since=at,
        ends_at=ends,
    )


def _dossier_overdue(facts: Facts, clock: datetime, grace: timedelta) -> Observation:
    if not facts.get("open"):
        return _absent(facts, "warning")
    due = datetime.fromisoformat(facts["due_at"])
    qualifies = due + grace
    if qualifies > clock:
        return _absent(facts, "warning", starts_at=qualifies)
    return Observation(
        True,
        facts["unit"],
        "warning",
        f"Dossier {facts['code']} ({facts['procedure']}) is past its due time",
        {"due_at": facts["due_at"], "agency": facts["agency"]},
        since=qualifies,
    )


def _report_overdue(facts: Facts, clock: datetime) -> Observation:
    due_text = facts.get("due_at")
    if not facts.get("open") or due_text is None:
        return _absent(facts, "warning")
    due = datetime.fromisoformat(due_text)
    if due > clock:
        return _absent(facts, "warning", starts_at=due)
    return Observation(
        True,
        facts["unit"],
        "warning",
        f"Report {facts['code']} ({facts['title']}) is past its due time",
        {"due_at": due_text, "agency": facts["agency"], "category": facts["category"]},
        since=due,
    )


def _day_after(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), TZ)


def _kpi_off_track(facts: Facts, clock: datetime, unit_of: UnitOf) -> Observation:
    values: dict[str, list[Any]] = facts.get("values") or {}
    ordered = sorted(values, key=period_key)
    first = (ordered[0], float(values[ordered[0]][0])) if ordered else None
    latest = (ordered[-1], float(values[ordered[-1]][0])) if ordered else None
    deadline = date.fromisoformat(facts["deadline"])
    target = float(facts["target"])
    direction = facts["direction"]
    unit = unit_of(facts["owner"])
    status = kpi_status(direction, target, deadline, first, latest, local_date(clock))
    if status == "met":
        return Observation(False, unit, "info", "")
    if status == "on_track":
        return Observation(False, unit, "info", "", starts_at=_day_after(deadline))
    by_trend = kpi_status(direction, target, deadline, first, latest, deadline) == "off_track"
    times = [datetime.fromisoformat(v[1]) for v in values.values()]
    times.append(datetime.fromisoformat(facts["target_at"]))
    since = max(times) if by_trend else _day_after(deadline)
    return Observation(
        True,
        unit,
        "info",
        f"KPI {facts['code']} ({facts['name']}) is off track",
        {
            "owner": facts["owner"],
            "target": target,
            "deadline": facts["deadline"],
            "latest": None if latest is None else {"period": latest[0], "value": latest[1]},
        },
        since=min(since, clock),
    )
