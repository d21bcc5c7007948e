"""The service index's and lineage's part of the OpenAPI description (schemas and paths)."""

from __future__ import annotations

from typing import Any, Final

from projections.read.lineage import INDEX_FIGURES, KPI_FIELDS, OVERVIEW_FIGURES
from projections.read.service_index import BY, GROUPS, PARTS
from web.openapi.building import AS_OF, COUNT, NULLABLE_TIME, POSITION, UNIT, get, param, ref

_PERIOD = param(
    "period",
    "a local month, quarter or year",
    {
        "type": "string",
        "pattern": r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$",
        "examples": ["2026-11", "2026-Q4", "2026"],
    },
    required=True,
)
_AGENCY = param("agency", "an agency code", {"type": "string"})
_NULLABLE_TEXT = {"type": ["string", "null"]}

_PART = {
    "type": "object",
    "required": ["name", "score", "max", "numerator", "denominator", "no_data"],
    "additionalProperties": False,
    "properties": {
        "name": {"enum": [p.name for p in PARTS]},
        "score": {"type": "number", "minimum": 0, "description": "rounded to two decimals"},
        "max": {"type": "integer"},
        "numerator": {"type": "integer"},
        "denominator": COUNT,
        "no_data": {
            "type": "boolean",
            "description": "no denominator: the part scores its maximum",
        },
    },
}

_GROUPS = {
    "type": "object",
    "required": list(GROUPS),
    "additionalProperties": False,
    "properties": {
        name: {
            "type": "object",
            "required": ["score", "max", "no_data", "parts"],
            "additionalProperties": False,
            "properties": {
                "score": {"type": "number", "minimum": 0},
                "max": {"const": maximum},
                "no_data": {"type": "boolean", "description": "no part has data"},
                "parts": {"type": "array", "items": ref("ServiceIndexPart")},
            },
        }
        for name, maximum in GROUPS.items()
    },
}

INDEX_SCHEMAS: Final[dict[str, Any]] = {
    "ServiceIndexPart": _PART,
    "ServiceIndexGroups": _GROUPS,
    "ServiceIndex": {
        "type": "object",
        "description": "the center's live estimate of the Decision 766 index from its own "
        "events, not the official score",
        "required": ["period", "position", "as_of", "agency", "unit", "total", "groups"],
        "additionalProperties": False,
        "properties": {
            "period": {"type": "string"},
            "position": POSITION,
            "as_of": NULLABLE_TIME,
            "agency": _NULLABLE_TEXT,
            "unit": _NULLABLE_TEXT,
            "total": {"type": "number", "minimum": 0, "maximum": 100},
            "groups": ref("ServiceIndexGroups"),
        },
    },
    "ServiceIndexRanking": {
        "type": "object",
        "required": ["period", "by", "position", "as_of", "unit", "items"],
        "additionalProperties": False,
        "properties": {
            "period": {"type": "string"},
            "by": {"enum": list(BY)},
            "position": POSITION,
            "as_of": NULLABLE_TIME,
            "unit": _NULLABLE_TEXT,
            "items": {
                "type": "array",
                "description": "best total first (ties by code)",
                "items": {
                    "type": "object",
                    "required": ["code", "name", "total", "groups"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "total": {"type": "number", "minimum": 0, "maximum": 100},
                        "groups": ref("ServiceIndexGroups"),
                    },
                },
            },
        },
    },
    "Lineage": {
        "type": "object",
        "required": ["figure", "position", "value", "items", "next"],
        "additionalProperties": False,
        "properties": {
            "figure": {"type": "string"},
            "position": POSITION,
            "value": {"description": "the figure's value at that position"},
            "items": {
                "type": "array",
                "description": "by position",
                "items": {
                    "type": "object",
                    "required": [
                        "subject",
                        "position",
                        "type",
                        "source",
                        "id",
                        "time",
                        "received_at",
                        "key",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "subject": {"type": "string"},
                        "position": {"type": "integer", "minimum": 1},
                        "type": {"type": "string"},
                        "source": _NULLABLE_TEXT,
                        "id": _NULLABLE_TEXT,
                        "time": NULLABLE_TIME,
                        "received_at": NULLABLE_TIME,
                        "key": _NULLABLE_TEXT,
                    },
                },
            },
            "next": {
                "type": ["integer", "null"],
                "description": "`after` of the next page; null on the last",
            },
        },
    },
}

_FIGURES = (
    "a dotted path: "
    + ", ".join(f"overview.{f}" for f in OVERVIEW_FIGURES)
    + "; "
    + ", ".join(f"kpis.<code>.{f}" for f in KPI_FIELDS)
    + "; services.index, "
    + ", ".join(f"services.index.{f}" for f in INDEX_FIGURES)
)

INDEX_PATHS: Final[dict[str, Any]] = {
    "/api/v1/services/index": get(
        "The Decision 766 service index of a period (the center's live estimate)",
        "ServiceIndex",
        [_PERIOD, _AGENCY, UNIT, AS_OF],
    ),
    "/api/v1/services/index/ranking": get(
        "The service index of every agency or commune with dossiers in the period",
        "ServiceIndexRanking",
        [
            _PERIOD,
            param("by", "rank agencies (default) or communes", {"enum": list(BY)}),
            UNIT,
            AS_OF,
        ],
    ),
    "/api/v1/lineage": get(
        "The events that made a figure",
        "Lineage",
        [
            param("figure", _FIGURES, {"type": "string"}, required=True),
            param(
                "period",
                "services.index figures: the period (required for them)",
                _PERIOD["schema"],
            ),
            param("agency", "services.index figures: an agency code", {"type": "string"}),
            UNIT,
            AS_OF,
            param(
                "limit",
                "page size (default 100)",
                {"type": "integer", "minimum": 1, "maximum": 1000},
            ),
            param("after", "the `next` of the previous page", {"type": "integer", "minimum": 0}),
        ],
    ),
}
