"""Pieces of the OpenAPI description: references, bodies, parameters and common schemas,
shared by every part of it (`schemas`, `paths`, `alarms`)."""

from __future__ import annotations

from typing import Any, Final

JSON_TYPE: Final = "application/json"
PROBLEM_TYPE: Final = "application/problem+json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {"schema": ref("Problem")}}}


def param(
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


TIME = {"type": "string", "format": "date-time"}
TIME_PARAM = {
    "type": "string",
    "description": "RFC 3339 with an offset, a local time (Asia/Ho_Chi_Minh) or a date",
    "examples": ["2026-11-16T09:00:00+07:00", "2026-11-16T09:00", "2026-11-16"],
}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
COUNT = {"type": "integer", "minimum": 0}
POSITION = {
    "type": "integer",
    "minimum": 0,
    "description": "the last event-log position the projection has applied",
}

UNIT = param("unit", "a unit code; includes its descendants", {"type": "string"})
AS_OF = param("as_of", "answer as the projection stood at this moment", TIME_PARAM)
LIMIT = param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000})
OFFSET = param("offset", "rows to skip", {"type": "integer", "minimum": 0})

REBUILDING = problem(
    "a read model it answers from is being rebuilt (`rebuilding` names it; "
    "ask again after `Retry-After` seconds)"
)
READ_ERRORS = {
    "400": problem("a bad parameter (`invalid_params` names it)"),
    "401": problem("no key, or an unknown or revoked key"),
    "403": problem("the key may not read"),
    "503": REBUILDING,
}


def counts(*names: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(names),
        "properties": dict.fromkeys(names, COUNT),
        "additionalProperties": False,
    }


def get(
    summary: str,
    schema: str,
    parameters: list[dict[str, Any]] | None = None,
    *,
    not_found: bool = False,
    tag: str = "queries",
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": json_body(ref(schema), summary), **READ_ERRORS}
    if not_found:
        responses["404"] = problem("unknown code")
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "parameters": parameters or [],
            "responses": responses,
        }
    }
