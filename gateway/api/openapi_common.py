"""The parts every path of the internal API's OpenAPI document is made of (gateway.api.openapi):
problem responses, paging, parameters."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/responses/Problem"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
TEXT_OR_NULL = {"type": ["string", "null"]}
CURSOR = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": "Resume after this position (the `next_cursor` of the previous page).",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$", "default": "0"},
}

DEADLINE_STATES = ["open", "met", "closed", "suspended", "expired"]
"""A deadline's states: `suspended` while a person who absconded is away (proposal Art. 35(2))."""


def limit_param(default: int, maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


def query_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 96},
    }


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def errors(*codes: int) -> dict[str, Any]:
    return {str(code): PROBLEM for code in (401, 403, *codes)}


def page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": "string"},
        },
    }
