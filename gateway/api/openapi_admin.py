"""The administrators' paths of the internal API's OpenAPI document (gateway.api.openapi)."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_common import (
    CURSOR,
    PROBLEM,
    errors,
    json_body,
    limit_param,
    path_param,
    ref,
)


def admin_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """The administrators' operations, metrics and health."""
    return {
        "/api/v1/admin/clock": {
            "post": {
                "operationId": "advanceClock",
                "summary": "Demonstrations only (clock.adjustable)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["advance_seconds"],
                                "properties": {"advance_seconds": {"type": "number", "minimum": 0}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": obj,
                    **errors(400, 413, 415, 422),
                },
            }
        },
        "/api/v1/admin/directory": {
            "get": {"operationId": "adminDirectory", "responses": {"200": obj, **errors()}}
        },
        "/api/v1/admin/certificates": {
            "get": {"operationId": "adminCertificates", "responses": {"200": obj, **errors()}}
        },
        "/api/v1/admin/crl": {
            "get": {"operationId": "adminCrl", "responses": {"200": obj, **errors()}}
        },
        "/api/v1/admin/outbox": {
            "get": {
                "operationId": "adminOutbox",
                "summary": "Outbound messages queued or given up on (undeliverable), by cursor",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["queued", "undeliverable"], "default": "queued"},
                    },
                    CURSOR,
                    limit_param(100, 1000),
                ],
                "responses": {"200": obj, **errors(400)},
            }
        },
        "/api/v1/admin/outbox/{message_id}/retry": {
            "post": {
                "operationId": "adminRetry",
                "summary": "Deliver a queued or undeliverable message again (409: being "
                "delivered now, or not queued)",
                "parameters": [path_param("message_id", "The outbound message's id")],
                "responses": {"200": obj, **errors(404, 409)},
            }
        },
        "/api/v1/admin/outbox/{message_id}/cancel": {
            "post": {
                "operationId": "adminCancel",
                "summary": "Stop delivering a queued message; it becomes undeliverable",
                "parameters": [path_param("message_id", "The outbound message's id")],
                "responses": {"200": obj, **errors(404, 409)},
            }
        },
        "/api/v1/admin/reload": {
            "post": {
                "operationId": "adminReload",
                "responses": {"200": obj, "409": PROBLEM, **errors()},
            }
        },
        "/api/v1/metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **errors(),
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "responses": {"200": json_body(ref("Health"), "Up"), **errors()},
            }
        },
    }
