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

from gateway.core.conversations import case_bases
from gateway.core.forms import FORM_TYPES
from gateway.xml.forms import form_json_schema

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


def _limit(default: int, maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 96},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): PROBLEM for code in (401, 403, *codes)}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": "string"},
        },
    }


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
                    "form": _ref(f"form-{ft.name}"),
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
            "deadlines": {"type": "array", "items": _ref("Deadline")},
            "events": {"type": "array", "items": _ref("Event")},
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
                "messages": {"type": "array", "items": _ref("Message")},
                # Ours not yet acknowledged: the case moves when each is (at its receipt time).
                "awaiting_delivery": {"type": "array", "items": {"type": "string"}},
                "deadlines": {"type": "array", "items": _ref("Deadline")},
                "events": {"type": "array", "items": _ref("Event")},
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
    for ft in FORM_TYPES.values():
        form_schema = dict(form_json_schema(ft))
        form_schema.pop("$schema", None)
        schemas[f"form-{ft.name}"] = form_schema
    return schemas


def _case_system_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """The case systems' operations: messages, inbox, events, cases, deadlines."""
    return {
        "/api/v1/messages": {
            "post": {
                "operationId": "submit",
                "summary": "Submit a standard form (roles case-officer, health-practitioner)",
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
                    "content": {"application/json": {"schema": _ref("Submission")}},
                },
                "responses": {
                    "201": _json(_ref("Submitted"), "Signed, stored and queued"),
                    "200": _json(_ref("Submitted"), "Replayed: the original submission"),
                    **_errors(400, 413, 415, 422),
                },
            }
        },
        "/api/v1/messages/{message_id}": {
            "get": {
                "operationId": "getMessage",
                "parameters": [_path("message_id", "The message id")],
                "responses": {
                    "200": _json(_ref("Message"), "State, acknowledgement, deadlines"),
                    **_errors(404),
                },
            }
        },
        "/api/v1/messages/{message_id}/transmission": {
            "get": {
                "operationId": "getTransmission",
                "summary": "The transmission exactly as signed",
                "parameters": [_path("message_id", "The message id")],
                "responses": {
                    "200": {
                        "description": "The signed XML",
                        "content": {"application/xml": {"schema": {"type": "string"}}},
                    },
                    "410": PROBLEM,
                    **_errors(404),
                },
            }
        },
        "/api/v1/messages/{message_id}/attachments/{file_name}": {
            "get": {
                "operationId": "getAttachment",
                "summary": "One attached file, as carried in the signed transmission",
                "parameters": [
                    _path("message_id", "The message id"),
                    _path("file_name", "The file name the form gives"),
                ],
                "responses": {
                    "200": {
                        "description": "The file, with its media type",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "410": PROBLEM,
                    **_errors(404),
                },
            }
        },
        "/api/v1/inbox": {
            "get": {
                "operationId": "inbox",
                "summary": "Received messages, oldest first",
                "parameters": [
                    CURSOR,
                    _limit(50, 500),
                    _query(
                        "state",
                        "unconsumed: what this role must still take over",
                        enum=["all", "unconsumed", "consumed"],
                    ),
                ],
                "responses": {
                    "200": _json(_page("Message"), "A page"),
                    **_errors(400),
                },
            }
        },
        "/api/v1/inbox/{message_id}/consumed": {
            "post": {
                "operationId": "consume",
                "summary": "The case system has stored this message (idempotent)",
                "parameters": [_path("message_id", "The received message's id")],
                "responses": {
                    "200": _json(_ref("Consumed"), "Consumed (now or before)"),
                    **_errors(404),
                },
            }
        },
        "/api/v1/events": {
            "get": {
                "operationId": "events",
                "summary": "Acknowledgements, refusals, receipts, deadlines, in order",
                "parameters": [CURSOR, _limit(100, 1000), _query("case", "One reference only")],
                "responses": {"200": _json(_page("Event"), "A page"), **_errors(400)},
            }
        },
        "/api/v1/cases/{reference}": {
            "get": {
                "operationId": "getCase",
                "parameters": [_path("reference", "The case reference")],
                "responses": {"200": _json(_ref("Case"), "The case"), **_errors(404)},
            }
        },
        "/api/v1/deadlines": {
            "get": {
                "operationId": "deadlines",
                "parameters": [
                    CURSOR,
                    _limit(100, 1000),
                    _query(
                        "state",
                        "Deadline state",
                        enum=DEADLINE_STATES,
                    ),
                    _query("rule", "Rule name"),
                    _query("peer", "The other authority"),
                    _query("due_before", "YYYY-MM-DD", format="date"),
                    _query("due_after", "YYYY-MM-DD", format="date"),
                ],
                "responses": {"200": _json(_page("Deadline"), "A page"), **_errors(400)},
            }
        },
    }


def _auditor_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """The auditors' operations: the register and its integrity."""
    return {
        "/api/v1/register": {
            "get": {
                "operationId": "register",
                "summary": "The register (Art. 40(9)); auditors only",
                "parameters": [
                    CURSOR,
                    _limit(100, 1000),
                    *(
                        _query(name, f"Filter by {name}")
                        for name in (
                            "reference",
                            "message_id",
                            "peer",
                            "type",
                            "direction",
                            "status",
                            "event",
                            "reason",
                        )
                    ),
                    _query("since", "ISO 8601 instant with offset", format="date-time"),
                    _query("until", "ISO 8601 instant with offset", format="date-time"),
                ],
                "responses": {"200": _json(_page("RegisterEntry"), "A page"), **_errors(400)},
            }
        },
        "/api/v1/register/integrity": {
            "get": {
                "operationId": "registerIntegrity",
                "summary": "Verify the register now (Art. 40(9)): chain, head, signed "
                "checkpoints and the peers' witnesses the gateway holds; `coverage` says "
                "which entries they cover and how many only the local chain vouches for",
                "responses": {"200": obj, **_errors()},
            }
        },
    }


def _admin_paths(obj: dict[str, Any]) -> dict[str, Any]:
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
                    **_errors(400, 413, 415, 422),
                },
            }
        },
        "/api/v1/admin/directory": {
            "get": {"operationId": "adminDirectory", "responses": {"200": obj, **_errors()}}
        },
        "/api/v1/admin/certificates": {
            "get": {"operationId": "adminCertificates", "responses": {"200": obj, **_errors()}}
        },
        "/api/v1/admin/crl": {
            "get": {"operationId": "adminCrl", "responses": {"200": obj, **_errors()}}
        },
        "/api/v1/admin/reload": {
            "post": {
                "operationId": "adminReload",
                "responses": {"200": obj, "409": PROBLEM, **_errors()},
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
                    **_errors(),
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "responses": {"200": _json(_ref("Health"), "Up"), **_errors()},
            }
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once per process)."""
    obj = _json(_ref("Object"), "OK")
    paths: dict[str, Any] = {**_case_system_paths(obj), **_auditor_paths(obj), **_admin_paths(obj)}
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
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem",
                    "content": {"application/problem+json": {"schema": _ref("Problem")}},
                }
            },
            "schemas": _schemas(),
        },
    }
