"""The OpenAPI 3.1 description of the internal API, served at /api/v1/openapi.json.

Form bodies are described by JSON Schemas derived from the same XSDs that validate the
forms (gateway.xml.forms.form_json_schema), so the description cannot drift from what the
gateway accepts; the rest is written here and kept true by a property-based test
(schemathesis) that calls every operation with generated input and checks every answer
against this document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.api.admin_console import ADMIN_CONSOLE_PATHS
from gateway.api.deletion_orders import DELETION_ORDER_PATHS
from gateway.api.openapi_admin import admin_paths
from gateway.api.openapi_audit import auditor_paths
from gateway.api.openapi_common import (
    CURSOR,
    DEADLINE_STATES,
    NULLABLE_TIME,
    PROBLEM,
    TEXT_OR_NULL,
    TIME,
    errors,
    json_body,
    limit_param,
    page,
    path_param,
    query_param,
    ref,
)
from gateway.api.openapi_operational import OPERATIONAL_PATHS, operational_schemas
from gateway.api.probes import PROBE_PATHS
from gateway.core.conversations import case_bases
from gateway.core.forms import ALL_TYPES, FORM_TYPES
from gateway.xml.forms import form_json_schema

EXTENDED = "An information case whose late reply extends this request's limit (Art. 51(5))."
PRIORITY = "A new case under 2024/1351 that involves minors: the 'P' of 2025/2055 Art. 5(2)."


def _submission_variants() -> list[dict[str, Any]]:
    variants = []
    for ft in FORM_TYPES.values():
        variants.append(
            {
                "type": "object",
                "properties": {
                    "type": {"const": ft.name},
                    "form": ref(f"form-{ft.name}"),
                },
            }
        )
    return variants


def _record_schemas() -> dict[str, Any]:
    """What the API shows of a message (with its acknowledgement), a deadline and an event."""
    acknowledgement = {
        "type": ["object", "null"],
        "required": ["status", "receipt_time", "digest"],
        "properties": {
            "acknowledgement_id": {"type": "string"},
            "status": {"enum": ["accepted", "rejected"]},
            "receipt_time": TIME,
            "digest": {"type": "string"},
            "reason": {"type": ["object", "null"]},
            "register_head": {"type": "object"},
        },
    }
    deadline = {
        "type": "object",
        "required": ["id", "case", "rule", "acting", "due_date", "expires_at", "state"],
        "properties": {
            "id": {"type": "integer"},
            "case": {"type": "string"},
            "rule": {"type": "string"},
            "legal_basis": {"type": "string"},
            "article": {
                "type": ["string", "null"],
                "description": "The article of the case's legal basis that sets the limit.",
            },
            "crisis_derogation": {
                "type": ["string", "null"],
                "description": "The Council implementing decision under which the limit took "
                "its derogating period (2024/1359 Art. 12), if it did.",
            },
            "verified": {
                "type": ["boolean", "null"],
                "description": "Whether the limit's value was verified against the "
                "published text (false: shown, but not verified).",
            },
            "acting": {"type": "string"},
            "opened_by": TEXT_OR_NULL,
            "started_at": TIME,
            "due_date": {"type": "string", "format": "date"},
            "expires_at": TIME,
            "state": {"enum": DEADLINE_STATES},
            "consequence": TEXT_OR_NULL,
            "closed_by": TEXT_OR_NULL,
            "reminders_sent": {"type": "integer"},
        },
    }
    message = {
        "type": "object",
        "required": ["message_id", "direction", "type", "reference", "case", "state", "digest"],
        "properties": {
            "message_id": {"type": "string"},
            "direction": {"enum": ["in", "out"]},
            "type": {"enum": sorted(FORM_TYPES)},
            "reference": {"type": "string"},
            "case": {"type": "string"},
            "sender": {"type": "string"},
            "receiver": {"type": "string"},
            "in_reply_to": TEXT_OR_NULL,
            "urgent": {"type": "boolean"},
            "created": TIME,
            "state": {
                "enum": ["queued", "delivered", "refused", "undeliverable", "received"],
            },
            "receipt_time": NULLABLE_TIME,
            "answered_by": TEXT_OR_NULL,
            "acknowledgement": acknowledgement,
            "consumed_at": NULLABLE_TIME,
            "restricted": {"type": "boolean"},
            "late": {"type": "boolean"},
            "form": {"type": ["object", "null"]},
            "deadlines": {"type": "array", "items": ref("Deadline")},
            "events": {"type": "array", "items": ref("Event")},
            "delivery": {"type": "object"},
            "error": TEXT_OR_NULL,
        },
    }
    event = {
        "type": "object",
        "required": ["cursor", "time", "event", "direction", "reference"],
        "properties": {
            "cursor": {"type": "string"},
            "time": TIME,
            "event": {"type": "string"},
            "direction": {"enum": ["in", "out"]},
            "peer": TEXT_OR_NULL,
            "message_id": TEXT_OR_NULL,
            "type": TEXT_OR_NULL,
            "reference": {"type": "string"},
            "status": TEXT_OR_NULL,
            "reason": TEXT_OR_NULL,
            "details": {"type": "object"},
        },
    }
    return {"Message": message, "Deadline": deadline, "Event": event}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        **_record_schemas(),
        **operational_schemas(),
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "field": {"type": "string"},
                "rule": {"type": "string"},
            },
        },
        "Submission": {
            "type": "object",
            "required": ["type", "receiver", "form"],
            "properties": {
                "type": {"enum": sorted(FORM_TYPES)},
                "receiver": {"type": "string", "pattern": "^[A-Z]{2}-[A-Z0-9]{1,10}$"},
                "form": {"type": "object"},
                "case_number": {"type": "string"},
                "case": {"type": "string"},
                "in_reply_to": {"type": "string"},
                "urgent": {"type": "boolean"},
                "eurodac_reference": {"type": "string"},
                "legal_basis": {
                    "enum": case_bases(),
                    "description": "The rule pack the case runs under; for a form that opens "
                    "a case, default [deadlines] legal_basis; later messages keep their "
                    "case's basis (naming another is a 422 legal-basis-mismatch).",
                },
                "priority": {"type": "boolean", "description": PRIORITY},
                "extended_by_information": {"type": "string", "description": EXTENDED},
                "attachments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["fileName", "mediaType", "content"],
                        "properties": {
                            "fileName": {"type": "string"},
                            "mediaType": {"type": "string"},
                            "content": {"type": "string", "contentEncoding": "base64"},
                        },
                    },
                },
            },
            "oneOf": _submission_variants(),
        },
        "Submitted": {
            "type": "object",
            "required": ["message_id", "reference", "digest", "state", "warnings", "replayed"],
            "properties": {
                "message_id": {"type": "string"},
                "reference": {"type": "string"},
                "digest": {"type": "string"},
                "state": {"enum": ["queued", "delivered", "refused", "undeliverable"]},
                "warnings": {"type": "array", "items": {"type": "object"}},
                "replayed": {
                    "type": "boolean",
                    "description": "true: the Idempotency-Key named an earlier identical "
                    "submission, whose message this is",
                },
            },
        },
        "Consumed": {
            "type": "object",
            "required": ["message_id", "consumed_at", "already_consumed"],
            "properties": {
                "message_id": {"type": "string"},
                "consumed_at": TIME,
                "already_consumed": {"type": "boolean"},
            },
        },
        "Case": {
            "type": "object",
            "required": ["reference", "kind", "state", "messages", "deadlines", "events"],
            "properties": {
                "reference": {"type": "string"},
                "kind": {"type": "string"},
                "requesting": {"type": "string"},
                "requested": {"type": "string"},
                "state": {"type": "string"},
                "legal_basis": {"type": "string"},
                "criteria": {"type": ["string", "null"]},
                "standard_form": {"type": ["string", "null"]},
                "opened_at": TIME,
                "updated_at": TIME,
                "messages": {"type": "array", "items": ref("Message")},
                # Ours not yet acknowledged: the case moves when each is (at its receipt time).
                "awaiting_delivery": {"type": "array", "items": {"type": "string"}},
                "deadlines": {"type": "array", "items": ref("Deadline")},
                "events": {"type": "array", "items": ref("Event")},
            },
        },
        "RegisterEntry": {
            "type": "object",
            "required": ["sequence", "time", "event", "direction", "hash", "prev_hash"],
            "properties": {
                "sequence": {"type": "integer"},
                "time": TIME,
                "event": {"type": "string"},
                "direction": {"enum": ["in", "out"]},
                "hash": {"type": "string"},
                "prev_hash": {"type": "string"},
                "details": {"type": "object"},
                "principal": {
                    "type": ["string", "null"],
                    "description": "The named user whose request caused the entry, if any",
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "authority", "register"],
            "properties": {
                "status": {"const": "ok"},
                "authority": {"type": "string"},
                "register": {"type": "object"},
            },
        },
        "Object": {"type": "object"},
    }
    for ft in ALL_TYPES.values():
        form_schema = dict(form_json_schema(ft))
        form_schema.pop("$schema", None)
        schemas[f"form-{ft.name}"] = form_schema
    return schemas


def _list_messages() -> dict[str, Any]:
    return {
        "operationId": "listMessages",
        "summary": "This gateway's messages, sent and received, oldest first (metadata)",
        "parameters": [
            query_param("direction", "out or in", enum=["out", "in"]),
            query_param("state", "The message's state", enum=list(MESSAGE_STATES)),
            query_param("type", "A form type", enum=sorted(FORM_TYPES)),
            CURSOR,
            limit_param(100, 1000),
        ],
        "responses": {"200": json_body(page("Message"), "A page"), **errors(400)},
    }


def _case_system_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """The case systems' operations: messages, inbox, events, cases, deadlines."""
    return {
        "/api/v1/messages": {
            "get": _list_messages(),
            "post": {
                "operationId": "submit",
                "summary": "Submit a standard form (roles case-officer, health-practitioner), or "
                "a message of the operational family (role liaison-officer)",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Repeat a submission safely: the same key and body "
                        "return the original message (200); another body is refused (422).",
                        "schema": {"type": "string", "pattern": "^[!-~]{1,200}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [ref("Submission"), ref("OperationalSubmission")]}
                        }
                    },
                },
                "responses": {
                    "201": json_body(
                        {"oneOf": [ref("Submitted"), ref("Distributed")]},
                        "Signed, stored and queued (an operational item: one transmission per "
                        "receiver)",
                    ),
                    "200": json_body(ref("Submitted"), "Replayed: the original submission"),
                    **errors(400, 413, 415, 422),
                },
            },
        },
        "/api/v1/messages/{message_id}": {
            "get": {
                "operationId": "getMessage",
                "parameters": [path_param("message_id", "The message id")],
                "responses": {
                    "200": json_body(ref("Message"), "State, acknowledgement, deadlines"),
                    **errors(404),
                },
            }
        },
        "/api/v1/messages/{message_id}/transmission": {
            "get": {
                "operationId": "getTransmission",
                "summary": "The transmission exactly as signed",
                "parameters": [path_param("message_id", "The message id")],
                "responses": {
                    "200": {
                        "description": "The signed XML",
                        "content": {"application/xml": {"schema": {"type": "string"}}},
                    },
                    "410": PROBLEM,
                    **errors(404),
                },
            }
        },
        "/api/v1/messages/{message_id}/attachments/{file_name}": {
            "get": {
                "operationId": "getAttachment",
                "summary": "One attached file, as carried in the signed transmission",
                "parameters": [
                    path_param("message_id", "The message id"),
                    path_param("file_name", "The file name the form gives"),
                ],
                "responses": {
                    "200": {
                        "description": "The file, with its media type",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "410": PROBLEM,
                    **errors(404),
                },
            }
        },
        "/api/v1/inbox": {
            "get": {
                "operationId": "inbox",
                "summary": "Received messages, oldest first",
                "parameters": [
                    CURSOR,
                    limit_param(50, 500),
                    query_param(
                        "state",
                        "unconsumed: what this role must still take over",
                        enum=["all", "unconsumed", "consumed"],
                    ),
                ],
                "responses": {
                    "200": json_body(page("Message"), "A page"),
                    **errors(400),
                },
            }
        },
        "/api/v1/inbox/{message_id}/consumed": {
            "post": {
                "operationId": "consume",
                "summary": "The case system has stored this message (idempotent)",
                "parameters": [path_param("message_id", "The received message's id")],
                "responses": {
                    "200": json_body(ref("Consumed"), "Consumed (now or before)"),
                    **errors(404),
                },
            }
        },
        "/api/v1/events": {
            "get": {
                "operationId": "events",
                "summary": "Acknowledgements, refusals, receipts, deadlines, in order",
                "parameters": [
                    CURSOR,
                    limit_param(100, 1000),
                    query_param("case", "One reference only"),
                ],
                "responses": {"200": json_body(page("Event"), "A page"), **errors(400)},
            }
        },
        "/api/v1/cases/{reference}": {
            "get": {
                "operationId": "getCase",
                "parameters": [path_param("reference", "The case reference")],
                "responses": {"200": json_body(ref("Case"), "The case"), **errors(404)},
            }
        },
        "/api/v1/deadlines": {
            "get": {
                "operationId": "deadlines",
                "parameters": [
                    CURSOR,
                    limit_param(100, 1000),
                    query_param(
                        "state",
                        "Deadline state",
                        enum=DEADLINE_STATES,
                    ),
                    query_param("rule", "Rule name"),
                    query_param("peer", "The other authority"),
                    query_param("due_before", "YYYY-MM-DD", format="date"),
                    query_param("due_after", "YYYY-MM-DD", format="date"),
                ],
                "responses": {"200": json_body(page("Deadline"), "A page"), **errors(400)},
            }
        },
    }


TAGS = [
    {"name": "case systems", "description": "Submit forms, read messages, cases and limits"},
    {
        "name": "audit",
        "description": "The register, cases' timelines and proofs (Art. 40(9)); auditors only",
    },
    {"name": "administration", "description": "Trust, the queue, metrics; administrators"},
    {
        "name": "operational",
        "description": "ICONET early warnings and liaison officers' reports; liaison officers",
    },
    {"name": "probes", "description": "Liveness and readiness, without a token"},
]
MESSAGE_STATES = ("queued", "delivered", "refused", "undeliverable", "received")


def _tag(path: str) -> str:
    if path in ("/livez", "/readyz"):
        return "probes"
    if path.startswith(("/api/v1/register", "/api/v1/audit")):
        return "audit"
    if path.startswith(("/api/v1/admin", "/api/v1/metrics")):
        return "administration"
    if path.startswith("/api/v1/operational"):
        return "operational"
    return "case systems"


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once per process)."""
    obj = json_body(ref("Object"), "OK")
    paths = (
        _case_system_paths(obj)
        | auditor_paths(obj)
        | admin_paths(obj)
        | ADMIN_CONSOLE_PATHS
        | OPERATIONAL_PATHS
        | DELETION_ORDER_PATHS
        | PROBE_PATHS
    )
    for path, operations in paths.items():
        for operation in operations.values():
            operation.setdefault("tags", [_tag(path)])
            operation.setdefault("summary", operation["operationId"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dublin gateway internal API",
            "version": "1",
            "description": (
                "For national case systems, administrators and auditors of one Dublin unit. "
                "Every call carries `Authorization: Bearer <token>`; the token's role decides "
                "what it may do. Errors are RFC 9457 problem+json naming the field or rule."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": TAGS,
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem",
                    "content": {"application/problem+json": {"schema": ref("Problem")}},
                }
            },
            "schemas": _schemas(),
        },
    }
