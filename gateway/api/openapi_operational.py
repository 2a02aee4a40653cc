"""The operational family's part of the internal API's OpenAPI document (gateway.api.openapi):
liaison officers' submissions (an item distributed to a network, or a withdrawal, permission
or forwarding of one) and the items they read."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_common import (
    CURSOR,
    NULLABLE_TIME,
    TEXT_OR_NULL,
    errors,
    json_body,
    limit_param,
    path_param,
    query_param,
    ref,
)
from gateway.core.forms import OPERATIONAL_TYPES


def operational_schemas() -> dict[str, Any]:
    """The schemas the operations below and POST /api/v1/messages refer to."""
    handling = {
        "type": "object",
        "properties": {
            "receiving_service_only": {"type": "boolean"},
            "no_judicial_use_without_permission": {"type": "boolean"},
            "no_forwarding_without_permission": {"type": "boolean"},
            "other_restrictions": TEXT_OR_NULL,
        },
    }
    return {
        "OperationalSubmission": {
            "type": "object",
            "description": "The liaison-officer role only. An early-warning or liaison-report "
            'names its `distribution` ("network": every other member of its type\'s network, '
            "or a list of authority codes) and no receiver; an item-permission and a "
            "forwarded-item name their `receiver`; an item-withdrawal goes to every receiver "
            "of the item. No personal data in any free text (refused, naming the field).",
            "required": ["type", "form"],
            "properties": {
                "type": {"enum": sorted(OPERATIONAL_TYPES)},
                "form": {"type": "object"},
                "distribution": {
                    "oneOf": [
                        {"const": "network"},
                        {
                            "type": "array",
                            "items": {"type": "string", "pattern": "^[A-Z]{2}-[A-Z0-9]{1,10}$"},
                            "minItems": 1,
                        },
                    ]
                },
                "receiver": {"type": "string", "pattern": "^[A-Z]{2}-[A-Z0-9]{1,10}$"},
                "attachments": {"type": "array", "items": {"type": "object"}},
            },
            "oneOf": [
                {"properties": {"type": {"const": name}, "form": ref(f"form-{name}")}}
                for name in sorted(OPERATIONAL_TYPES)
            ],
        },
        "Distributed": {
            "type": "object",
            "required": ["item_id", "reference", "transmissions"],
            "properties": {
                "item_id": {"type": "string"},
                "reference": {"type": "string"},
                "transmissions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["receiver", "message_id", "digest"],
                        "properties": {
                            "receiver": {"type": "string"},
                            "message_id": {"type": "string"},
                            "digest": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Item": {
            "type": "object",
            "required": ["item_id", "reference", "type", "network", "originator", "state"],
            "properties": {
                "item_id": {"type": "string"},
                "message_id": TEXT_OR_NULL,
                "reference": {"type": "string"},
                "type": {"enum": ["early-warning", "liaison-report"]},
                "network": {"type": "string"},
                "direction": {"enum": ["in", "out"]},
                "originator": {"type": "string"},
                "forwarded_by": TEXT_OR_NULL,
                "category": {"type": "string"},
                "countries": {"type": "array", "items": {"type": "string"}},
                "handling": handling,
                "created": {"type": "string"},
                "state": {
                    "enum": ["active", "replaced", "withdrawn", "archived", "erased", "deleted"]
                },
                "replaces": TEXT_OR_NULL,
                "form": {"type": ["object", "null"]},
                "receivers": {"type": "array", "items": {"type": "object"}},
                "archived_at": NULLABLE_TIME,
            },
        },
    }


OPERATIONAL_PATHS: dict[str, Any] = {
    "/api/v1/operational": {
        "get": {
            "operationId": "operationalItems",
            "summary": "Early warnings and liaison reports of this gateway's networks, sent and "
            "received, oldest first (role liaison-officer)",
            "parameters": [
                CURSOR,
                limit_param(100, 500),
                query_param("category", "An early warning's category or a report's topic"),
                query_param("country", "A country code the item concerns"),
                query_param("since", "ISO 8601 instant with offset", format="date-time"),
            ],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items", "next_cursor"],
                        "properties": {
                            "items": {"type": "array", "items": ref("Item")},
                            "next_cursor": {"type": "string"},
                        },
                    },
                    "A page",
                ),
                **errors(400),
            },
        }
    },
    "/api/v1/operational/{item_id}": {
        "get": {
            "operationId": "operationalItem",
            "summary": "One item with its handling codes, content (until erased) and, for ours, "
            "who acknowledged it (role liaison-officer)",
            "parameters": [path_param("item_id", "The item id")],
            "responses": {"200": json_body(ref("Item"), "The item"), **errors(404)},
        }
    },
    "/api/v1/operational/{item_id}/attachments/{file_name}": {
        "get": {
            "operationId": "operationalAttachment",
            "summary": "A file attached to an item, as carried in the signed transmission "
            "(role liaison-officer)",
            "parameters": [
                path_param("item_id", "The item id"),
                path_param("file_name", "The file's name"),
            ],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                },
                **errors(404),
            },
        }
    },
}
