"""The component schemas of the ingest, reference and query answers."""

from __future__ import annotations

from typing import Any, Final

from ops_center.domain.errors import REJECTION_CODES
from ops_center.domain.kpi_status import STATUSES
from ops_center.ingest.catalogue import CATALOGUE, PILLARS
from ops_center.province.calendar import BUCKETS
from web.openapi.alarms import ALARM_SCHEMAS
from web.openapi.building import (
    COUNT,
    LOCATED_BY,
    NULLABLE_RATE,
    NULLABLE_TIME,
    POSITION,
    TIME,
    counts,
    ref,
)
from web.openapi.index import INDEX_SCHEMAS
from web.openapi.reports import REPORT_SCHEMAS

SCHEMAS: Final[dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "invalid_params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
        },
    },
    "CloudEvent": {
        "type": "object",
        "description": "CloudEvents 1.0, structured mode; `subject` is the code of the "
        "station, camera, dossier, indicator or report",
        "required": ["specversion", "id", "source", "type", "time", "subject", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "source": {"type": "string", "minLength": 1, "maxLength": 512},
            "type": {"enum": sorted(CATALOGUE)},
            "time": TIME,
            "subject": {"type": "string", "minLength": 1},
            "datacontenttype": {"type": "string"},
            "data": {"type": "object", "description": "fields per type: docs/CONTRACT.md §3"},
        },
    },
    "IngestResult": {
        "type": "object",
        "required": ["id", "source", "status"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "source": {"type": ["string", "null"]},
            "status": {"enum": ["accepted", "duplicate", "rejected"]},
            "position": {"type": "integer", "minimum": 1},
            "error": {
                "type": "object",
                "required": ["code", "pointer", "detail"],
                "properties": {
                    "code": {"enum": list(REJECTION_CODES)},
                    "pointer": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
    "IngestResponse": {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected", "results"],
        "properties": {
            "accepted": COUNT,
            "duplicates": COUNT,
            "rejected": COUNT,
            "results": {"type": "array", "items": ref("IngestResult")},
        },
    },
    "Reference": {
        "type": "object",
        "required": ["profile", "demo", "items"],
        "properties": {
            "profile": {"type": "string"},
            "demo": {"type": "boolean"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Me": {
        "type": "object",
        "required": ["name", "role", "may"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["integration", "viewer", "operator", "admin"]},
            "may": {
                "type": "array",
                "items": {"type": "string", "enum": ["read", "act", "ingest"]},
            },
        },
    },
    "Overview": {
        "type": "object",
        "required": [
            "position",
            "devices",
            "broadcasts",
            "services",
            "kpis",
            "alarms",
            "reports",
        ],
        "additionalProperties": False,
        "properties": {
            "position": POSITION,
            "devices": {
                "type": "object",
                "required": ["camera", "radio"],
                "properties": {
                    "camera": counts("online", "offline", "degraded"),
                    "radio": counts("online", "offline"),
                },
            },
            "broadcasts": counts("active", "emergency_active"),
            "services": {
                "type": "object",
                "required": ["received_today", "completed_today", "on_time_rate", "overdue"],
                "properties": {
                    "received_today": COUNT,
                    "completed_today": COUNT,
                    "on_time_rate": {
                        **NULLABLE_RATE,
                        "description": "completed on time / completed today (null: none)",
                    },
                    "overdue": COUNT,
                },
            },
            "kpis": {
                **counts("on_track", "off_track"),
                "description": "on_track counts met and on_track indicators",
            },
            "alarms": counts("active"),
            "reports": ref("ReportCounts"),
        },
    },
    "Device": {
        "type": "object",
        "required": [
            "code",
            "kind",
            "name",
            "unit",
            "status",
            "status_at",
            "lat",
            "lon",
            "located_by",
        ],
        "properties": {
            "code": {"type": "string"},
            "kind": {"enum": ["camera", "radio"]},
            "name": {"type": "string"},
            "unit": {"type": "string"},
            "status": {
                "enum": ["online", "offline", "degraded", None],
                "description": "latest by event time; null before the first report",
            },
            "status_at": NULLABLE_TIME,
            "registered_at": TIME,
            "lat": {"type": ["number", "null"]},
            "lon": {"type": ["number", "null"]},
            "located_by": LOCATED_BY,
            "camera_kind": {"enum": ["security", "traffic", "public"]},
            "last_alert": {"type": ["object", "null"]},
            "clusters": {"type": "integer"},
            "faults": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "cluster": {"type": "integer"},
                        "fault": {"enum": ["power", "network", "speaker"]},
                        "since": TIME,
                    },
                },
            },
            "broadcasts_active": COUNT,
            "broadcasts": {"type": "array", "items": {"type": "object"}},
            "position": POSITION,
        },
    },
    "DeviceList": {
        "type": "object",
        "required": ["position", "kind", "total", "limit", "offset", "items"],
        "properties": {
            "position": POSITION,
            "kind": {"enum": ["camera", "radio"]},
            "total": COUNT,
            "limit": COUNT,
            "offset": COUNT,
            "items": {"type": "array", "items": ref("Device")},
        },
    },
    "StatsBucket": {
        "type": "object",
        "properties": {
            "start": TIME,
            "end": TIME,
            "received": COUNT,
            "completed": counts("on_time", "late", "total"),
            "withdrawn": COUNT,
            "in_progress": {
                "description": "as of the bucket's end or now, whichever is earlier; null "
                "for buckets that have not begun",
                "oneOf": [
                    counts("not_yet_due", "due_within_24h", "overdue"),
                    {"type": "null"},
                ],
            },
            "online_share": NULLABLE_RATE,
            "on_time_rate": NULLABLE_RATE,
        },
    },
    "ServiceStats": {
        "type": "object",
        "required": ["position", "from", "to", "bucket", "items", "totals"],
        "properties": {
            "position": POSITION,
            "from": TIME,
            "to": TIME,
            "bucket": {"enum": list(BUCKETS)},
            "agency": {"type": ["string", "null"]},
            "unit": {"type": ["string", "null"]},
            "items": {"type": "array", "items": ref("StatsBucket")},
            "totals": ref("StatsBucket"),
        },
    },
    "OverdueList": {
        "type": "object",
        "required": ["position", "as_of", "total", "items"],
        "properties": {
            "position": POSITION,
            "as_of": TIME,
            "total": COUNT,
            "limit": COUNT,
            "offset": COUNT,
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "procedure_code": {"type": "string"},
                        "procedure_name": {"type": ["string", "null"]},
                        "level": {"type": "string"},
                        "channel": {"type": "string"},
                        "agency": {"type": "string"},
                        "unit": {"type": "string"},
                        "received_at": TIME,
                        "due_at": TIME,
                        "overdue_hours": {"type": "number"},
                        "supplements": COUNT,
                    },
                },
            },
        },
    },
    "Kpi": {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "measure": {"type": "string"},
            "owner": {"type": "string"},
            "pillar": {"enum": list(PILLARS)},
            "direction": {"enum": ["increase", "decrease"]},
            "reference": {"type": ["string", "null"]},
            "target": {"type": "number"},
            "deadline": {"type": "string", "format": "date"},
            "first": {"type": ["object", "null"]},
            "latest": {"type": ["object", "null"]},
            "periods": COUNT,
            "status": {"enum": list(STATUSES)},
        },
    },
    "KpiList": {
        "type": "object",
        "required": ["position", "items"],
        "properties": {
            "position": POSITION,
            "as_of": NULLABLE_TIME,
            "items": {"type": "array", "items": ref("Kpi")},
        },
    },
    "KpiHistory": {
        "type": "object",
        "required": ["position", "code", "items"],
        "properties": {
            "position": POSITION,
            "as_of": NULLABLE_TIME,
            "code": {"type": "string"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "period": {"type": "string"},
                        "value": {"type": "number"},
                        "reported_at": TIME,
                    },
                },
            },
        },
    },
    "Feed": {
        "type": "object",
        "required": ["position", "items"],
        "properties": {
            "position": POSITION,
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "position": {"type": "integer"},
                        "type": {"type": "string"},
                        "event": {"type": "string"},
                        "subject": {"type": ["string", "null"]},
                        "subject_kind": {
                            "enum": ["camera", "radio", "dossier", "kpi", "report", None]
                        },
                        "unit": {"type": ["string", "null"]},
                        "time": TIME,
                        "recorded_at": TIME,
                        "source": {"type": "string"},
                        "data": {"type": "object"},
                    },
                },
            },
        },
    },
    **ALARM_SCHEMAS,
    **REPORT_SCHEMAS,
    **INDEX_SCHEMAS,
}
