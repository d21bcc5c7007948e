"""The paths: ingest, reference data, queries, streams and operations."""

from __future__ import annotations

from typing import Any, Final

from ops_center.domain.kpi_status import STATUSES
from ops_center.ingest.catalogue import PILLARS
from ops_center.province.calendar import BUCKETS
from web.openapi.alarms import ALARM_PATHS
from web.openapi.building import (
    AS_OF,
    BBOX,
    LIMIT,
    OFFSET,
    READ_ERRORS,
    TIME_PARAM,
    UNIT,
    get,
    json_body,
    param,
    problem,
    ref,
)
from web.openapi.index import INDEX_PATHS
from web.openapi.reports import REPORT_PATHS

_INGEST = {
    "post": {
        "summary": "Ingest CloudEvents (structured, batch, binary or NDJSON)",
        "description": "Answers after the accepted events are durably committed. `(source, "
        "id)` identifies an event: a repeat with the same content is a `duplicate` with "
        "the original position, with other content it is rejected with `conflict`.",
        "tags": ["ingest"],
        "parameters": [
            param(
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
                "application/cloudevents+json": {"schema": ref("CloudEvent")},
                "application/cloudevents-batch+json": {
                    "schema": {"type": "array", "items": ref("CloudEvent")}
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
            "200": json_body(ref("IngestResponse"), "processed; one result per event"),
            "422": json_body(ref("IngestResponse"), "a single event was rejected"),
            "400": problem("not parseable, or not CloudEvents at all"),
            "401": problem("no or unknown key"),
            "403": problem("the key may not send this type or source"),
            "413": problem("body or number of events over the limit"),
            "415": problem("unsupported content type"),
            "429": problem("over the key's rate; see Retry-After"),
            "503": problem("the event store is unavailable; nothing stored; see Retry-After"),
        },
    }
}

PATHS: Final[dict[str, Any]] = {
    "/api/v1/events": _INGEST,
    "/api/v1/units": get("Administrative units of the profile", "Reference", tag="reference"),
    "/api/v1/agencies": get("Agencies of the profile", "Reference", tag="reference"),
    "/api/v1/me": get(
        "The calling key: name, role and permissions (for screens)",
        "Me",
        tag="reference",
    ),
    "/api/v1/overview": get(
        "Devices, broadcasts, services, KPIs, alarms and citizens' reports at a glance",
        "Overview",
        [UNIT, AS_OF],
    ),
    "/api/v1/devices": get(
        "Devices of one kind, sorted by code",
        "DeviceList",
        [
            param("kind", "device kind", {"enum": ["camera", "radio"]}, required=True),
            param(
                "status",
                "`unknown`: never reported",
                {"enum": ["online", "offline", "degraded", "unknown"]},
            ),
            UNIT,
            BBOX,
            LIMIT,
            OFFSET,
        ],
    ),
    "/api/v1/devices/{code}": get(
        "One device",
        "Device",
        [
            param("code", "device code", {"type": "string"}, where="path"),
            param(
                "kind",
                "needed when a camera and a station share the code",
                {"enum": ["camera", "radio"]},
            ),
        ],
        not_found=True,
    ),
    "/api/v1/services/stats": get(
        "Dossier statistics per local hour, day or month",
        "ServiceStats",
        [
            param("from", "start (inclusive)", TIME_PARAM, required=True),
            param("to", "end (exclusive)", TIME_PARAM, required=True),
            param("bucket", "bucket size (default day)", {"enum": list(BUCKETS)}),
            param("agency", "an agency code", {"type": "string"}),
            UNIT,
        ],
    ),
    "/api/v1/services/overdue": get(
        "Open dossiers past their due time, most overdue first",
        "OverdueList",
        [param("agency", "an agency code", {"type": "string"}), UNIT, LIMIT, OFFSET],
    ),
    **INDEX_PATHS,
    "/api/v1/kpis": get(
        "Indicators with latest value, target and status",
        "KpiList",
        [
            param("owner", "an agency or unit code", {"type": "string"}),
            param("pillar", "pillar", {"enum": list(PILLARS)}),
            param("status", "status", {"enum": list(STATUSES)}),
            AS_OF,
        ],
    ),
    "/api/v1/kpis/{code}/history": get(
        "An indicator's value per period",
        "KpiHistory",
        [param("code", "indicator code", {"type": "string"}, where="path"), AS_OF],
        not_found=True,
    ),
    "/api/v1/feed": get(
        "The latest events, newest first",
        "Feed",
        [
            param("limit", "how many", {"type": "integer", "minimum": 1, "maximum": 1000}),
            param("before", "only events before this position", {"type": "integer"}),
            UNIT,
        ],
    ),
    **ALARM_PATHS,
    **REPORT_PATHS,
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This description",
            "tags": ["meta"],
            "responses": {
                "200": json_body({"type": "object"}, "OpenAPI 3.1"),
                "401": READ_ERRORS["401"],
            },
        }
    },
    "/api/v1/docs": {
        "get": {
            "summary": "This description as a page for people (a key, or ?token=)",
            "tags": ["meta"],
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {}}},
                "401": READ_ERRORS["401"],
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "200 once every resource has started (no key needed)",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": json_body({"type": "object"}, "started"),
                "503": json_body({"type": "object"}, "starting"),
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
                "200": json_body({"type": "object"}, "ready"),
                "503": problem("not ready: `failing` names the checks, `checks` has details"),
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
                "401": READ_ERRORS["401"],
                "403": problem("the key is not an admin key"),
            },
        }
    },
}
