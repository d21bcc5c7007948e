"""The alarm endpoints' part of the OpenAPI description (schemas and paths)."""

from __future__ import annotations

from typing import Any, Final

from ops_center.alarms.rules.observe import CAUSES
from ops_center.alarms.whatif import MAX_THRESHOLD, THRESHOLD_NAMES
from ops_center.domain.alarm import SEVERITIES, STATES
from projections.read.alarms import STATE_FILTERS
from web.alarms_whatif import MAX_SPAN
from web.openapi.building import BBOX, JSON_TYPE, REBUILDING, json_body, param, problem, ref
from web.openapi.building import TIME_PARAM as _TIME_PARAM
from web.params import MAX_PAGE

_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "the alarm's id",
    "schema": {"type": "string", "format": "uuid"},
}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_POSITION = {
    "type": "integer",
    "minimum": 0,
    "description": "the last event-log position the alarms projection has applied",
}
_COUNT = {"type": "integer", "minimum": 0}
_SECONDS = {"type": ["number", "null"], "minimum": 0}
_PERCENTILES = {
    "type": "object",
    "required": ["median", "p90"],
    "additionalProperties": False,
    "properties": {"median": _SECONDS, "p90": _SECONDS},
    "description": "interpolated; null when none",
}
_ERRORS = {
    "401": problem("no key, or an unknown or revoked key"),
    "403": problem("the key may not read"),
    "503": REBUILDING,
}

ALARM_SCHEMAS: Final[dict[str, Any]] = {
    "Alarm": {
        "type": "object",
        "required": [
            "id",
            "cause",
            "subject_kind",
            "subject",
            "occurrence",
            "unit",
            "severity",
            "state",
            "summary",
            "detail",
            "raised_at",
            "updated_at",
            "repeats",
            "acknowledged",
            "resolved",
        ],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "cause": {"enum": list(CAUSES)},
            "subject_kind": {"enum": ["camera", "radio", "dossier", "kpi", "report"]},
            "subject": {"type": "string", "description": "the subject's code"},
            "occurrence": {
                "type": "integer",
                "minimum": 1,
                "description": "1 for the cause's first alarm on the subject, "
                "then 2, ... (a new occurrence after a resolution)",
            },
            "unit": _NULLABLE_TEXT,
            "severity": {"enum": list(SEVERITIES)},
            "state": {"enum": list(STATES)},
            "summary": {"type": "string"},
            "detail": {"type": "object", "description": "what the cause shows (by cause)"},
            "raised_at": _TIME,
            "updated_at": _TIME,
            "repeats": {
                "type": "integer",
                "minimum": 0,
                "description": "changes of the cause while the alarm was open",
            },
            "acknowledged": {
                "type": ["object", "null"],
                "properties": {"at": _TIME, "by": {"type": "string"}, "note": _NULLABLE_TEXT},
            },
            "resolved": {
                "type": ["object", "null"],
                "properties": {
                    "at": _TIME,
                    "by": {"type": "string", "description": "a key's name, or `rules`"},
                    "note": _NULLABLE_TEXT,
                    "automatic": {"type": "boolean", "description": "the cause cleared"},
                },
            },
        },
    },
    "AlarmList": {
        "type": "object",
        "required": ["position", "total", "limit", "offset", "items"],
        "properties": {
            "position": _POSITION,
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "items": {
                "type": "array",
                "items": ref("Alarm"),
                "description": "newest first (raised_at, then id, descending)",
            },
        },
    },
    "AlarmDetail": {
        "allOf": [
            ref("Alarm"),
            {
                "type": "object",
                "required": ["position", "history", "periods", "occurrences"],
                "properties": {
                    "position": _POSITION,
                    "history": {
                        "type": "array",
                        "description": "every event of the alarm, oldest first",
                        "items": {
                            "type": "object",
                            "properties": {
                                "position": {"type": "integer"},
                                "event": {
                                    "enum": ["raised", "repeated", "acknowledged", "resolved"]
                                },
                                "at": _TIME,
                                "recorded_at": _TIME,
                                "by": _NULLABLE_TEXT,
                                "note": _NULLABLE_TEXT,
                                "state": {"enum": list(STATES)},
                                "severity": {"enum": list(SEVERITIES)},
                                "summary": {"type": "string"},
                                "detail": {"type": "object"},
                            },
                        },
                    },
                    "periods": {
                        "type": "array",
                        "description": "how long the alarm was active, then acknowledged "
                        "(oldest first; `to` null while it lasts)",
                        "items": {
                            "type": "object",
                            "required": ["state", "from", "to"],
                            "additionalProperties": False,
                            "properties": {
                                "state": {"enum": ["active", "acknowledged"]},
                                "from": _TIME,
                                "to": {"type": ["string", "null"], "format": "date-time"},
                            },
                        },
                    },
                    "occurrences": {
                        "type": "array",
                        "description": "every alarm of the same cause on the same subject "
                        "(its active periods), by occurrence",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string", "format": "uuid"},
                                "occurrence": {"type": "integer"},
                                "state": {"enum": list(STATES)},
                                "raised_at": _TIME,
                                "resolved_at": {"type": ["string", "null"], "format": "date-time"},
                            },
                        },
                    },
                },
            },
        ]
    },
    "AlarmStats": {
        "type": "object",
        "required": ["from", "to", "position", "items"],
        "additionalProperties": False,
        "properties": {
            "from": _TIME,
            "to": _TIME,
            "position": _POSITION,
            "items": {
                "type": "array",
                "description": "per cause and unit of the alarms raised in [from, to), "
                "judged at `to` or now, whichever is earlier",
                "items": {
                    "type": "object",
                    "required": [
                        "cause",
                        "unit",
                        "raised",
                        "acknowledged",
                        "resolved_by_operator",
                        "resolved_by_itself",
                        "seconds_to_acknowledge",
                        "seconds_to_resolve",
                        "active_seconds",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "cause": {"enum": list(CAUSES)},
                        "unit": _NULLABLE_TEXT,
                        "raised": _COUNT,
                        "acknowledged": _COUNT,
                        "resolved_by_operator": _COUNT,
                        "resolved_by_itself": _COUNT,
                        "seconds_to_acknowledge": _PERCENTILES,
                        "seconds_to_resolve": _PERCENTILES,
                        "active_seconds": {
                            "type": "number",
                            "minimum": 0,
                            "description": "seconds open (active or acknowledged), an "
                            "alarm still open counting up to `to` or now",
                        },
                    },
                },
            },
        },
    },
    "AlarmAction": {
        "type": "object",
        "required": ["position", "id", "state", "by", "note", "at"],
        "properties": {
            "position": {"type": "integer", "description": "log position of the stored event"},
            "id": {"type": "string", "format": "uuid"},
            "state": {"enum": list(STATES)},
            "by": {"type": "string", "description": "the key's name"},
            "note": _NULLABLE_TEXT,
            "at": _TIME,
        },
    },
    "AlarmWhatIfItem": {
        "type": "object",
        "required": ["cause", "subject", "unit", "raised_at", "resolved_at"],
        "additionalProperties": False,
        "properties": {
            "cause": {"enum": list(CAUSES)},
            "subject": {"type": "string"},
            "unit": _NULLABLE_TEXT,
            "raised_at": _TIME,
            "resolved_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "null when not resolved before `to`",
            },
        },
    },
    "AlarmWhatIf": {
        "type": "object",
        "required": ["from", "to", "thresholds", "would_raise", "raised", "summary"],
        "additionalProperties": False,
        "properties": {
            "from": _TIME,
            "to": _TIME,
            "thresholds": {
                "type": "object",
                "description": "every threshold in force for the run, in seconds",
                "required": list(THRESHOLD_NAMES),
                "additionalProperties": False,
                "properties": {name: {"type": "number", "minimum": 0} for name in THRESHOLD_NAMES},
            },
            "would_raise": {
                "type": "array",
                "items": ref("AlarmWhatIfItem"),
                "description": "the alarms the rules raise in [from, to) with these thresholds",
            },
            "raised": {
                "type": "array",
                "items": ref("AlarmWhatIfItem"),
                "description": "the alarms really raised in [from, to) (the read model)",
            },
            "summary": {
                "type": "object",
                "required": ["would_raise", "raised", "only_what_if", "only_raised"],
                "additionalProperties": False,
                "properties": {
                    "would_raise": _COUNT,
                    "raised": _COUNT,
                    "only_what_if": _COUNT,
                    "only_raised": _COUNT,
                },
            },
        },
    },
}


def _action(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["alarms"],
            "parameters": [_ID],
            "requestBody": {
                "required": False,
                "content": {
                    JSON_TYPE: {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"note": {"type": "string", "maxLength": 2000}},
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(ref("AlarmAction"), "done; the event is stored"),
                "400": problem("the body is not a JSON object with an optional string note"),
                "401": _ERRORS["401"],
                "403": problem("the key is not an operator or admin key"),
                "404": problem("no alarm with this id"),
                "409": problem("the alarm's state does not allow it (`state` says which)"),
                "503": problem("the event store is unavailable; nothing changed"),
            },
        }
    }


ALARM_PATHS: Final[dict[str, Any]] = {
    "/api/v1/alarms": {
        "get": {
            "summary": "Alarms, newest first",
            "tags": ["alarms"],
            "parameters": [
                param("state", "`open`: active or acknowledged", {"enum": list(STATE_FILTERS)}),
                param("unit", "a unit code; includes its descendants", {"type": "string"}),
                param("severity", "severity", {"enum": list(SEVERITIES)}),
                param("cause", "the rule that raised it", {"enum": list(CAUSES)}),
                BBOX,
                param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                param("offset", "rows to skip", {"type": "integer", "minimum": 0}),
            ],
            "responses": {
                "200": json_body(ref("AlarmList"), "alarms"),
                "400": problem("a bad parameter (`invalid_params` names it)"),
                **_ERRORS,
            },
        }
    },
    "/api/v1/alarms/stats": {
        "get": {
            "summary": "How long the alarms raised in [from, to) stayed open, per cause and unit",
            "tags": ["alarms"],
            "parameters": [
                param("from", "start (inclusive)", _TIME_PARAM, required=True),
                param("to", "end (exclusive)", _TIME_PARAM, required=True),
                param("cause", "the rule that raised it", {"enum": list(CAUSES)}),
                param("unit", "a unit code; includes its descendants", {"type": "string"}),
            ],
            "responses": {
                "200": json_body(ref("AlarmStats"), "statistics"),
                "400": problem("a bad parameter (`invalid_params` names it)"),
                **_ERRORS,
            },
        }
    },
    "/api/v1/alarms/what-if": {
        "post": {
            "summary": "The alarm rules over [from, to) of the history with other thresholds "
            "(operator, admin; nothing is written)",
            "tags": ["alarms"],
            "requestBody": {
                "required": True,
                "content": {
                    JSON_TYPE: {
                        "schema": {
                            "type": "object",
                            "required": ["from", "to"],
                            "additionalProperties": False,
                            "properties": {
                                "from": {**_TIME, "description": "start (inclusive)"},
                                "to": {
                                    **_TIME,
                                    "description": f"end (exclusive), at most "
                                    f"{MAX_SPAN.days} days after from",
                                },
                                "thresholds": {
                                    "type": "object",
                                    "description": "seconds by threshold name; those not "
                                    "named keep the server's settings",
                                    "additionalProperties": False,
                                    "properties": {
                                        name: {
                                            "type": "number",
                                            "minimum": 0,
                                            "maximum": MAX_THRESHOLD,
                                        }
                                        for name in THRESHOLD_NAMES
                                    },
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(ref("AlarmWhatIf"), "what the rules would raise, and what was"),
                "400": problem(
                    "a bad body, time or threshold (`invalid_params` names them, every "
                    "unknown threshold)"
                ),
                "401": _ERRORS["401"],
                "403": problem("the key is not an operator or admin key"),
            },
        }
    },
    "/api/v1/alarms/{id}": {
        "get": {
            "summary": "One alarm with its full history and its periods",
            "tags": ["alarms"],
            "parameters": [_ID],
            "responses": {
                "200": json_body(ref("AlarmDetail"), "the alarm"),
                **_ERRORS,
                "404": problem("no alarm with this id"),
            },
        }
    },
    "/api/v1/alarms/{id}/ack": _action("Acknowledge an active alarm (operator, admin)"),
    "/api/v1/alarms/{id}/resolve": _action("Resolve an open alarm (operator, admin)"),
}
