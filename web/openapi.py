"""``GET /api/v1/openapi.json`` (OpenAPI 3.1) and ``GET /api/v1/docs`` (the same, for people).

The description is built once, in code, next to the handlers it describes; tests check
that every path it names is served. The docs page is rendered on the server from the same
description (no scripts, nothing fetched from elsewhere).
"""

from __future__ import annotations

import html
from typing import Any, Final

import orjson
from aiohttp import web

from ops_center.domain.errors import REJECTION_CODES
from ops_center.domain.kpi_status import STATUSES
from ops_center.ingest.catalogue import CATALOGUE, PILLARS
from ops_center.province.calendar import BUCKETS
from web.openapi_alarms import ALARM_PATHS, ALARM_SCHEMAS

JSON_TYPE: Final = "application/json"
PROBLEM_TYPE: Final = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {"schema": _ref("Problem")}}}


def _param(
    name: str,
    description: str,
    schema: dict[str, Any],
    *,
    where: str = "query",
    required: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


_TIME = {"type": "string", "format": "date-time"}
_TIME_PARAM = {
    "type": "string",
    "description": "RFC 3339 with an offset, a local time (Asia/Ho_Chi_Minh) or a date",
    "examples": ["2026-11-16T09:00:00+07:00", "2026-11-16T09:00", "2026-11-16"],
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_POSITION = {
    "type": "integer",
    "minimum": 0,
    "description": "the last event-log position the projection has applied",
}

UNIT = _param("unit", "a unit code; includes its descendants", {"type": "string"})
AS_OF = _param("as_of", "answer as the projection stood at this moment", _TIME_PARAM)
LIMIT = _param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000})
OFFSET = _param("offset", "rows to skip", {"type": "integer", "minimum": 0})

_READ_ERRORS = {
    "400": _problem("a bad parameter (`invalid_params` names it)"),
    "401": _problem("no key, or an unknown or revoked key"),
    "403": _problem("the key may not read"),
}


def _counts(*names: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(names),
        "properties": dict.fromkeys(names, _COUNT),
        "additionalProperties": False,
    }


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
        "station, camera, dossier or indicator",
        "required": ["specversion", "id", "source", "type", "time", "subject", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "source": {"type": "string", "minLength": 1, "maxLength": 512},
            "type": {"enum": sorted(CATALOGUE)},
            "time": _TIME,
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
            "accepted": _COUNT,
            "duplicates": _COUNT,
            "rejected": _COUNT,
            "results": {"type": "array", "items": _ref("IngestResult")},
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
        "required": ["position", "devices", "broadcasts", "services", "kpis", "alarms"],
        "additionalProperties": False,
        "properties": {
            "position": _POSITION,
            "devices": {
                "type": "object",
                "required": ["camera", "radio"],
                "properties": {
                    "camera": _counts("online", "offline", "degraded"),
                    "radio": _counts("online", "offline"),
                },
            },
            "broadcasts": _counts("active", "emergency_active"),
            "services": {
                "type": "object",
                "required": ["received_today", "completed_today", "on_time_rate", "overdue"],
                "properties": {
                    "received_today": _COUNT,
                    "completed_today": _COUNT,
                    "on_time_rate": {
                        **_NULLABLE_RATE,
                        "description": "completed on time / completed today (null: none)",
                    },
                    "overdue": _COUNT,
                },
            },
            "kpis": {
                **_counts("on_track", "off_track"),
                "description": "on_track counts met and on_track indicators",
            },
            "alarms": _counts("active"),
        },
    },
    "Device": {
        "type": "object",
        "required": ["code", "kind", "name", "unit", "status", "status_at"],
        "properties": {
            "code": {"type": "string"},
            "kind": {"enum": ["camera", "radio"]},
            "name": {"type": "string"},
            "unit": {"type": "string"},
            "status": {
                "enum": ["online", "offline", "degraded", None],
                "description": "latest by event time; null before the first report",
            },
            "status_at": _NULLABLE_TIME,
            "registered_at": _TIME,
            "lat": {"type": ["number", "null"]},
            "lon": {"type": ["number", "null"]},
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
                        "since": _TIME,
                    },
                },
            },
            "broadcasts_active": _COUNT,
            "broadcasts": {"type": "array", "items": {"type": "object"}},
            "position": _POSITION,
        },
    },
    "DeviceList": {
        "type": "object",
        "required": ["position", "kind", "total", "limit", "offset", "items"],
        "properties": {
            "position": _POSITION,
            "kind": {"enum": ["camera", "radio"]},
            "total": _COUNT,
            "limit": _COUNT,
            "offset": _COUNT,
            "items": {"type": "array", "items": _ref("Device")},
        },
    },
    "StatsBucket": {
        "type": "object",
        "properties": {
            "start": _TIME,
            "end": _TIME,
            "received": _COUNT,
            "completed": _counts("on_time", "late", "total"),
            "withdrawn": _COUNT,
            "in_progress": {
                "description": "as of the bucket's end or now, whichever is earlier; null "
                "for buckets that have not begun",
                "oneOf": [
                    _counts("not_yet_due", "due_within_24h", "overdue"),
                    {"type": "null"},
                ],
            },
            "online_share": _NULLABLE_RATE,
            "on_time_rate": _NULLABLE_RATE,
        },
    },
    "ServiceStats": {
        "type": "object",
        "required": ["position", "from", "to", "bucket", "items", "totals"],
        "properties": {
            "position": _POSITION,
            "from": _TIME,
            "to": _TIME,
            "bucket": {"enum": list(BUCKETS)},
            "agency": {"type": ["string", "null"]},
            "unit": {"type": ["string", "null"]},
            "items": {"type": "array", "items": _ref("StatsBucket")},
            "totals": _ref("StatsBucket"),
        },
    },
    "OverdueList": {
        "type": "object",
        "required": ["position", "as_of", "total", "items"],
        "properties": {
            "position": _POSITION,
            "as_of": _TIME,
            "total": _COUNT,
            "limit": _COUNT,
            "offset": _COUNT,
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
                        "received_at": _TIME,
                        "due_at": _TIME,
                        "overdue_hours": {"type": "number"},
                        "supplements": _COUNT,
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
            "periods": _COUNT,
            "status": {"enum": list(STATUSES)},
        },
    },
    "KpiList": {
        "type": "object",
        "required": ["position", "items"],
        "properties": {
            "position": _POSITION,
            "as_of": _NULLABLE_TIME,
            "items": {"type": "array", "items": _ref("Kpi")},
        },
    },
    "KpiHistory": {
        "type": "object",
        "required": ["position", "code", "items"],
        "properties": {
            "position": _POSITION,
            "as_of": _NULLABLE_TIME,
            "code": {"type": "string"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "period": {"type": "string"},
                        "value": {"type": "number"},
                        "reported_at": _TIME,
                    },
                },
            },
        },
    },
    "Feed": {
        "type": "object",
        "required": ["position", "items"],
        "properties": {
            "position": _POSITION,
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "position": {"type": "integer"},
                        "type": {"type": "string"},
                        "event": {"type": "string"},
                        "subject": {"type": ["string", "null"]},
                        "subject_kind": {"enum": ["camera", "radio", "dossier", "kpi", None]},
                        "unit": {"type": ["string", "null"]},
                        "time": _TIME,
                        "recorded_at": _TIME,
                        "source": {"type": "string"},
                        "data": {"type": "object"},
                    },
                },
            },
        },
    },
    **ALARM_SCHEMAS,
}


def _get(
    summary: str,
    schema: str,
    parameters: list[dict[str, Any]] | None = None,
    *,
    not_found: bool = False,
    tag: str = "queries",
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json(_ref(schema), summary), **_READ_ERRORS}
    if not_found:
        responses["404"] = _problem("unknown code")
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "parameters": parameters or [],
            "responses": responses,
        }
    }


_INGEST = {
    "post": {
        "summary": "Ingest CloudEvents (structured, batch, binary or NDJSON)",
        "description": "Answers after the accepted events are durably committed. `(source, "
        "id)` identifies an event: a repeat with the same content is a `duplicate` with "
        "the original position, with other content it is rejected with `conflict`.",
        "tags": ["ingest"],
        "parameters": [
            _param(
                f"ce-{name}",
                f"binary mode: the CloudEvent's `{name}`",
                {"type": "string"},
                where="header",
            )
            for name in ("specversion", "id", "source", "type", "time", "subject")
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"schema": _ref("CloudEvent")},
                "application/cloudevents-batch+json": {
                    "schema": {"type": "array", "items": _ref("CloudEvent")}
                },
                "application/json": {
                    "schema": {"type": "object", "description": "binary mode: the `data`"}
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "one structured event a line"}
                },
            },
        },
        "responses": {
            "200": _json(_ref("IngestResponse"), "processed; one result per event"),
            "422": _json(_ref("IngestResponse"), "a single event was rejected"),
            "400": _problem("not parseable, or not CloudEvents at all"),
            "401": _problem("no or unknown key"),
            "403": _problem("the key may not send this type or source"),
            "413": _problem("body or number of events over the limit"),
            "415": _problem("unsupported content type"),
            "429": _problem("over the key's rate; see Retry-After"),
            "503": _problem("the event store is unavailable; nothing stored; see Retry-After"),
        },
    }
}

PATHS: Final[dict[str, Any]] = {
    "/api/v1/events": _INGEST,
    "/api/v1/units": _get("Administrative units of the profile", "Reference", tag="reference"),
    "/api/v1/agencies": _get("Agencies of the profile", "Reference", tag="reference"),
    "/api/v1/me": _get(
        "The calling key: name, role and permissions (for screens)",
        "Me",
        tag="reference",
    ),
    "/api/v1/overview": _get(
        "Devices, broadcasts, services, KPIs and alarms at a glance", "Overview", [UNIT, AS_OF]
    ),
    "/api/v1/devices": _get(
        "Devices of one kind, sorted by code",
        "DeviceList",
        [
            _param("kind", "device kind", {"enum": ["camera", "radio"]}, required=True),
            _param(
                "status",
                "`unknown`: never reported",
                {"enum": ["online", "offline", "degraded", "unknown"]},
            ),
            UNIT,
            LIMIT,
            OFFSET,
        ],
    ),
    "/api/v1/devices/{code}": _get(
        "One device",
        "Device",
        [
            _param("code", "device code", {"type": "string"}, where="path"),
            _param(
                "kind",
                "needed when a camera and a station share the code",
                {"enum": ["camera", "radio"]},
            ),
        ],
        not_found=True,
    ),
    "/api/v1/services/stats": _get(
        "Dossier statistics per local hour, day or month",
        "ServiceStats",
        [
            _param("from", "start (inclusive)", _TIME_PARAM, required=True),
            _param("to", "end (exclusive)", _TIME_PARAM, required=True),
            _param("bucket", "bucket size (default day)", {"enum": list(BUCKETS)}),
            _param("agency", "an agency code", {"type": "string"}),
            UNIT,
        ],
    ),
    "/api/v1/services/overdue": _get(
        "Open dossiers past their due time, most overdue first",
        "OverdueList",
        [_param("agency", "an agency code", {"type": "string"}), UNIT, LIMIT, OFFSET],
    ),
    "/api/v1/kpis": _get(
        "Indicators with latest value, target and status",
        "KpiList",
        [
            _param("owner", "an agency or unit code", {"type": "string"}),
            _param("pillar", "pillar", {"enum": list(PILLARS)}),
            _param("status", "status", {"enum": list(STATUSES)}),
            AS_OF,
        ],
    ),
    "/api/v1/kpis/{code}/history": _get(
        "An indicator's value per period",
        "KpiHistory",
        [_param("code", "indicator code", {"type": "string"}, where="path"), AS_OF],
        not_found=True,
    ),
    "/api/v1/feed": _get(
        "The latest events, newest first",
        "Feed",
        [
            _param("limit", "how many", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _param("before", "only events before this position", {"type": "integer"}),
            UNIT,
        ],
    ),
    **ALARM_PATHS,
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This description",
            "tags": ["meta"],
            "responses": {
                "200": _json({"type": "object"}, "OpenAPI 3.1"),
                "401": _READ_ERRORS["401"],
            },
        }
    },
    "/api/v1/docs": {
        "get": {
            "summary": "This description as a page for people (a key, or ?token=)",
            "tags": ["meta"],
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {}}},
                "401": _READ_ERRORS["401"],
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "200 once every resource has started (no key needed)",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": _json({"type": "object"}, "started"),
                "503": _json({"type": "object"}, "starting"),
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "200 when the store answers and every projection's lag is under "
            "OPS_CENTER_READY_MAX_LAG (no key needed); else 503 naming the failing checks",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": _json({"type": "object"}, "ready"),
                "503": _problem("not ready: `failing` names the checks, `checks` has details"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (an admin key, or OPS_CENTER_METRICS_TOKEN)",
            "tags": ["meta"],
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4, or OpenMetrics when the "
                    "Accept header asks for it",
                    "content": {"text/plain": {}, "application/openmetrics-text": {}},
                },
                "401": _READ_ERRORS["401"],
                "403": _problem("the key is not an admin key"),
            },
        }
    },
}

SPEC: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ops center: the province's data operations center",
        "version": "1.0",
        "description": "CloudEvents ingest and the leaders' queries (docs/CONTRACT.md §1-§5). "
        "Times are RFC 3339 with an offset; days and buckets are Asia/Ho_Chi_Minh.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
    "paths": PATHS,
}

_SPEC_BYTES: Final = orjson.dumps(SPEC)


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of the API (any valid key)."""
    return web.Response(body=_SPEC_BYTES, content_type=JSON_TYPE)


def render_docs(spec: dict[str, Any]) -> str:
    """A plain HTML page listing every operation, its parameters and responses."""
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(spec['info']['title'])}</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code{background:#f3f3f3;padding:0 .2rem}h2{margin-top:2rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;"
        "text-align:left;vertical-align:top}</style></head><body>",
        f"<h1>{html.escape(spec['info']['title'])}</h1>",
        f"<p>{html.escape(spec['info']['description'])}</p>",
        "<p>Send <code>Authorization: Bearer &lt;key&gt;</code> on every call. "
        "Machine-readable: <a href='/api/v1/openapi.json'>openapi.json</a>.</p>",
    ]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            out.append(
                f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(operation.get('summary', ''))}</p>"
            )
            if operation.get("description"):
                out.append(f"<p>{html.escape(operation['description'])}</p>")
            params = operation.get("parameters") or []
            if params:
                out.append("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>")
                for p in params:
                    required = " (required)" if p.get("required") else ""
                    out.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code>{required}</td>"
                        f"<td>{p['in']}</td><td>{html.escape(p.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            codes = ", ".join(
                f"{code} {html.escape(r['description'])}"
                for code, r in operation["responses"].items()
            )
            out.append(f"<p><small>{codes}</small></p>")
    out.append("</body></html>")
    return "".join(out)


_DOCS: Final = render_docs(SPEC)


async def get_docs(request: web.Request) -> web.Response:
    """The API description as a page for people."""
    return web.Response(text=_DOCS, content_type="text/html")


def add_openapi_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_get("/api/v1/docs", get_docs)
