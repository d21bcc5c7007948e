"""What the alarm rules know of each subject, folded from its stored events. No I/O.

`fold` applies one stored domain event (short name such as ``Camera.StatusReported``, its
JSON state, and its CloudEvent time) to a subject's facts, a JSON-ready dict, and returns
them (a new subject's facts start at its registration; an event of a subject the rules
never saw registered gives None). Late events follow the aggregates' rule: an event
older (by CloudEvent time) than what is known is history only.

Facts by kind (times are RFC 3339 strings):

* camera: ``code``, ``name``, ``unit``, ``status``, ``status_at``, ``bad_since`` (start of
  the current offline/degraded run), ``alert`` (the latest critical alert);
* radio: the same without ``alert``, plus ``clusters`` (``{"n": {"fault", "at"}}``) and
  ``emergency`` (emergency broadcasts on air: ``{broadcast_id: {"program", "at"}}``);
* dossier: ``code``, ``unit``, ``agency``, ``due_at``, ``open``;
* report: ``code``, ``unit``, ``category``, ``title``, ``open``, and the assignment in
  effect (the latest by CloudEvent time): ``agency``, ``due_at``, ``assigned_at`` (all
  None until the report is assigned);
* kpi: ``code``, ``name``, ``owner``, ``direction``, ``target``, ``deadline`` and
  ``values`` (``{period: [value, at]}``).

Every kind also keeps ``clock``: the latest moment the rules evaluated the subject at (see
`ops_center.alarms.rules.book`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from ops_center.domain.camera import Camera
from ops_center.domain.dossier import Dossier
from ops_center.domain.events import names_of
from ops_center.domain.indicator import Indicator
from ops_center.domain.radio import RadioStation
from ops_center.domain.report import Report

Facts = dict[str, Any]

CAMERA: Final = "camera"
RADIO: Final = "radio"
DOSSIER: Final = "dossier"
KPI: Final = "kpi"
REPORT: Final = "report"

_KINDS: Final = {
    "Camera": CAMERA,
    "RadioStation": RADIO,
    "Dossier": DOSSIER,
    "Indicator": KPI,
    "Report": REPORT,
}

#: The stored events the rules follow (short names).
EVENTS: Final = (
    names_of(Camera, "Registered", "Reregistered", "StatusReported", "AlertRaised")
    | names_of(
        RadioStation,
        "Registered",
        "Reregistered",
        "StatusReported",
        "BroadcastStarted",
        "BroadcastEnded",
        "ClusterFaulted",
        "ClusterRestored",
    )
    | names_of(Dossier, "Received", "Completed", "Withdrawn")
    | names_of(Indicator, "Defined", "Redefined", "Reported", "TargetRevised")
    | names_of(Report, "Received", "Assigned", "Reassigned", "Resolved", "Rejected")
)

#: Statuses that count as a device being down.
BAD_STATUSES: Final = {CAMERA: frozenset({"offline", "degraded"}), RADIO: frozenset({"offline"})}


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _newer(moment: datetime, known: str | None) -> bool:
    return known is None or moment >= datetime.fromisoformat(known)


def fold(
    facts: Facts | None, name: str, state: Mapping[str, Any], moment: datetime
) -> Facts | None:
    """The subject's facts after the event (`facts` is not modified)."""
    aggregate, _, what = name.partition(".")
    kind = _KINDS.get(aggregate)
    if kind is None or name not in EVENTS:
        return facts
    at = moment.isoformat()
    if what in ("Registered", "Received", "Defined"):
        if facts is not None and what != "Registered":
            return facts
        return _created(kind, state, at)
    if facts is None:
        return None
    out = dict(facts)
    if what in ("Reregistered", "Redefined"):
        if _newer(moment, out.get("registered_at")):
            # a repeated registration carries the new attributes, not the subject's code
            for field in ("name", "unit", "owner", "direction"):
                if field in state:
                    out[field] = state[field]
            out["registered_at"] = at
        if kind == KPI and _newer(moment, out.get("target_at")):
            out["target"], out["deadline"], out["target_at"] = (
                state["target"],
                state["deadline"],
                at,
            )
    elif what == "StatusReported":
        if _newer(moment, out.get("status_at")):
            bad = BAD_STATUSES[kind]
            was_bad = out.get("status") in bad
            out["status"], out["status_at"] = state["status"], at
            if state["status"] not in bad:
                out["bad_since"] = None
            elif not was_bad:
                out["bad_since"] = at
    elif what == "AlertRaised":
        if state.get("severity") == "critical" and _newer(
            moment, (out.get("alert") or {}).get("at")
        ):
            out["alert"] = {
                "alert_id": state["alert_id"],
                "category": state["category"],
                "plate": state.get("plate"),
                "at": at,
            }
    elif what in ("ClusterFaulted", "ClusterRestored"):
        clusters = dict(out.get("clusters") or {})
        key = str(state["cluster"])
        if _newer(moment, (clusters.get(key) or {}).get("at")):
            fault = state["fault"] if what == "ClusterFaulted" else None
            clusters[key] = {"fault": fault, "at": at}
            out["clusters"] = clusters
    elif what == "BroadcastStarted":
        if state.get("kind") == "emergency":
            emergency = dict(out.get("emergency") or {})
            emergency[state["broadcast_id"]] = {"program": state["program"], "at": at}
            out["emergency"] = emergency
    elif what == "BroadcastEnded":
        emergency = dict(out.get("emergency") or {})
        if emergency.pop(state["broadcast_id"], None) is not None:
            out["emergency"] = emergency
    elif what in ("Completed", "Withdrawn", "Resolved", "Rejected"):
        out["open"] = False
        out["closed_at"] = at
    elif what in ("Assigned", "Reassigned"):
        if _newer(moment, out.get("assigned_at")):
            out["agency"] = state["agency"]
            out["due_at"] = datetime.fromisoformat(state["due_at"]).isoformat()
            out["assigned_at"] = at
    elif what == "Reported":
        values = dict(out.get("values") or {})
        known = values.get(state["period"])
        if known is None or _newer(moment, known[1]):
            values[state["period"]] = [state["value"], at]
            out["values"] = values
    elif what == "TargetRevised" and _newer(moment, out.get("target_at")):
        out["target"], out["deadline"], out["target_at"] = state["target"], state["deadline"], at
    return out


def _created(kind: str, state: Mapping[str, Any], at: str) -> Facts:
    g = state.get
    if kind in (CAMERA, RADIO):
        facts: Facts = {
            "kind": kind,
            "code": state["code"],
            "name": state["name"],
            "unit": state["unit"],
            "registered_at": at,
            "status": None,
            "status_at": None,
            "bad_since": None,
        }
        if kind == RADIO:
            facts["clusters"] = {}
            facts["emergency"] = {}
        else:
            facts["alert"] = None
        return facts
    if kind == DOSSIER:
        return {
            "kind": kind,
            "code": state["code"],
            "unit": state["unit"],
            "agency": state["agency"],
            "procedure": g("procedure_name") or state["procedure_code"],
            "due_at": datetime.fromisoformat(state["due_at"]).isoformat(),
            "open": True,
        }
    if kind == REPORT:
        return {
            "kind": kind,
            "code": state["code"],
            "unit": state["unit"],
            "category": state["category"],
            "title": state["title"],
            "agency": None,
            "due_at": None,
            "assigned_at": None,
            "open": True,
        }
    return {
        "kind": kind,
        "code": state["code"],
        "name": state["name"],
        "owner": state["owner"],
        "direction": state["direction"],
        "target": state["target"],
        "deadline": state["deadline"],
        "registered_at": at,
        "target_at": at,
        "values": {},
    }
