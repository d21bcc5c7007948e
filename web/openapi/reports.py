"""The citizens' field reports' part of the OpenAPI description (schemas and paths)."""

from __future__ import annotations

from typing import Any, Final

from ops_center.ingest.catalogue import REPORT_CATEGORIES, REPORT_CHANNELS, REPORT_RATINGS
from projections.read.reports import STATE_FILTERS
from web.openapi.building import (
    BBOX,
    COUNT,
    LOCATED_BY,
    NULLABLE_RATE,
    NULLABLE_TIME,
    POSITION,
    TIME,
    TIME_PARAM,
    UNIT,
    get,
    param,
    ref,
)
from web.params import MAX_PAGE

_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_SHOWN_STATES = ["new", "assigned", "overdue", "resolved", "rejected"]
_AS_OF_END = (
    "as of the bucket's end or now, whichever is earlier; null for a bucket that has not begun"
)
_NULLABLE_COUNT: dict[str, Any] = {
    "type": ["integer", "null"],
    "minimum": 0,
    "description": _AS_OF_END,
}
_AGENCY = param(
    "agency",
    "the agency (or commune: a unit code) the report is assigned to now",
    {"type": "string"},
)
_CATEGORY = param("category", "the report's category", {"enum": list(REPORT_CATEGORIES)})

_REPORT_PROPERTIES: Final[dict[str, Any]] = {
    "code": _TEXT,
    "category": {"enum": list(REPORT_CATEGORIES)},
    "title": _TEXT,
    "unit": _TEXT,
    "agency": {
        "type": ["string", "null"],
        "description": "the assignment in effect: an agency or a unit code; null while new",
    },
    "state": {
        "enum": _SHOWN_STATES,
        "description": "`overdue`: assigned and past its due time now",
    },
    "channel": {"enum": list(REPORT_CHANNELS)},
    "received_at": TIME,
    "due_at": NULLABLE_TIME,
    "resolved_at": NULLABLE_TIME,
    "on_time": {
        "type": ["boolean", "null"],
        "description": "resolved at or before the due time in effect (null unless resolved)",
    },
    "rating": {"enum": [*REPORT_RATINGS, None]},
    "lat": {"type": ["number", "null"]},
    "lon": {"type": ["number", "null"]},
    "located_by": LOCATED_BY,
}

REPORT_SCHEMAS: Final[dict[str, Any]] = {
    "Report": {
        "type": "object",
        "required": list(_REPORT_PROPERTIES),
        "properties": _REPORT_PROPERTIES,
    },
    "ReportList": {
        "type": "object",
        "required": ["position", "items", "next"],
        "properties": {
            "position": POSITION,
            "items": {
                "type": "array",
                "items": ref("Report"),
                "description": "newest first (received_at, then code, descending)",
            },
            "next": {
                "type": ["string", "null"],
                "description": "pass it as `cursor` for the next page; null on the last page",
            },
        },
    },
    "ReportDetail": {
        "allOf": [
            ref("Report"),
            {
                "type": "object",
                "required": ["position", "history"],
                "properties": {
                    "position": POSITION,
                    "description": _NULLABLE_TEXT,
                    "photo_url": _NULLABLE_TEXT,
                    "result": _NULLABLE_TEXT,
                    "rejection": {
                        "type": ["object", "null"],
                        "properties": {
                            "reason": _TEXT,
                            "duplicate_of": _NULLABLE_TEXT,
                            "at": TIME,
                        },
                    },
                    "rated_at": NULLABLE_TIME,
                    "assignments": COUNT,
                    "history": {
                        "type": "array",
                        "description": "every event of the report, oldest first",
                        "items": {
                            "type": "object",
                            "required": ["position", "event", "type", "time", "source", "key"],
                            "properties": {
                                "position": {"type": "integer"},
                                "event": {
                                    "enum": [
                                        "received",
                                        "assigned",
                                        "reassigned",
                                        "resolved",
                                        "rejected",
                                        "rated",
                                    ]
                                },
                                "type": _TEXT,
                                "time": TIME,
                                "recorded_at": TIME,
                                "source": _TEXT,
                                "id": _TEXT,
                                "key": {
                                    "type": ["string", "null"],
                                    "description": "the name of the key that sent it",
                                },
                                "data": {"type": "object"},
                            },
                        },
                    },
                },
            },
        ]
    },
    "ReportBucket": {
        "type": "object",
        "required": [
            "start",
            "received",
            "resolved_on_time",
            "resolved_late",
            "open_not_due",
            "open_due_24h",
            "overdue",
            "median_hours_to_resolve",
            "satisfaction_rate",
        ],
        "properties": {
            "start": TIME,
            "end": TIME,
            "received": COUNT,
            "resolved_on_time": COUNT,
            "resolved_late": COUNT,
            "open_not_due": {
                **_NULLABLE_COUNT,
                "description": "open and not due within 24 h (not assigned yet included); "
                + _AS_OF_END,
            },
            "open_due_24h": _NULLABLE_COUNT,
            "overdue": _NULLABLE_COUNT,
            "median_hours_to_resolve": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "of the reports resolved in the bucket (null: none)",
            },
            "satisfaction_rate": {
                **NULLABLE_RATE,
                "description": "satisfied / rated, of the ratings in the bucket (null: none)",
            },
        },
    },
    "ReportStats": {
        "type": "object",
        "required": ["position", "buckets"],
        "properties": {
            "position": POSITION,
            "from": TIME,
            "to": TIME,
            "bucket": {"enum": ["day", "month"]},
            "category": {"enum": [*REPORT_CATEGORIES, None]},
            "unit": _NULLABLE_TEXT,
            "agency": _NULLABLE_TEXT,
            "buckets": {"type": "array", "items": ref("ReportBucket")},
        },
    },
    "ReportCounts": {
        "type": "object",
        "required": ["received_today", "open", "overdue", "resolved_today", "satisfaction_rate"],
        "additionalProperties": False,
        "properties": {
            "received_today": COUNT,
            "open": {**COUNT, "description": "new or assigned (overdue included)"},
            "overdue": COUNT,
            "resolved_today": COUNT,
            "satisfaction_rate": {
                **NULLABLE_RATE,
                "description": "satisfied / rated, of the ratings of the last 30 days (null: none)",
            },
        },
    },
}

REPORT_PATHS: Final[dict[str, Any]] = {
    "/api/v1/reports": get(
        "Citizens' field reports, newest first",
        "ReportList",
        [
            param(
                "state",
                "`open`: new or assigned (overdue included); `assigned`: not yet overdue",
                {"enum": list(STATE_FILTERS)},
            ),
            _CATEGORY,
            UNIT,
            _AGENCY,
            BBOX,
            param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
            param("cursor", "the `next` of the previous page", {"type": "string"}),
        ],
        tag="reports",
    ),
    "/api/v1/reports/stats": get(
        "Citizens' field reports per local day or month",
        "ReportStats",
        [
            param("from", "start (inclusive)", TIME_PARAM, required=True),
            param("to", "end (exclusive)", TIME_PARAM, required=True),
            param("bucket", "bucket size (default day)", {"enum": ["day", "month"]}),
            _CATEGORY,
            UNIT,
            _AGENCY,
        ],
        tag="reports",
    ),
    "/api/v1/reports/{code}": get(
        "One report with every event of it",
        "ReportDetail",
        [param("code", "report code", {"type": "string"}, where="path")],
        not_found=True,
        tag="reports",
    ),
}
