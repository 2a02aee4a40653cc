"""The auditors' part of the internal API's OpenAPI document (gateway.api.openapi): the
register, its integrity, its signed CSV, cases' timelines and the proofs (acknowledgements,
signed bundles, the signing certificate)."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_common import (
    CURSOR,
    NULLABLE_TIME,
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

REGISTER_FILTERS = (
    "reference",
    "reference_prefix",
    "message_id",
    "peer",
    "type",
    "direction",
    "status",
    "event",
    "reason",
)
UPTO = {
    "name": "upto",
    "in": "query",
    "required": False,
    "description": "Only entries up to this register sequence (default: the head now); the "
    "CSV and its signature with the same filters and `upto` are the same bytes.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}
SINCE_UNTIL = [
    query_param("since", "ISO 8601 instant with offset", format="date-time"),
    query_param("until", "ISO 8601 instant with offset", format="date-time"),
]
UPTO_HEADER = {
    "X-Register-Upto": {
        "description": "The register sequence the answer stops at",
        "schema": {"type": "string"},
    }
}


def _download(kind: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {kind: {"schema": {"type": "string"}}}}


AUDIT_MESSAGE = {
    "type": "object",
    "required": ["message_id", "direction", "type", "peer", "sent_at", "receipt_time"],
    "properties": {
        "message_id": {"type": "string"},
        "direction": {"enum": ["in", "out"]},
        "type": {"type": "string"},
        "reference": {"type": "string"},
        "peer": {"type": "string"},
        "sent_at": TIME,
        "receipt_time": NULLABLE_TIME,
        "state": {"type": "string"},
        "acknowledgement": {"type": ["object", "null"]},
        "legal_basis": TEXT_OR_NULL,
        "form_article": TEXT_OR_NULL,
        "articles": {"type": "array", "items": {"type": "object"}},
    },
}
AUDIT_CASE = {
    "type": "object",
    "required": ["reference", "messages", "deadlines", "entries", "totals"],
    "properties": {
        "reference": {"type": "string"},
        "legal_basis": TEXT_OR_NULL,
        "state": TEXT_OR_NULL,
        "messages": {"type": "array", "items": AUDIT_MESSAGE},
        "deadlines": {"type": "array", "items": ref("Deadline")},
        "entries": {"type": "array", "items": {"type": "object"}},
        "register_span": {"type": ["object", "null"]},
        "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}


def auditor_paths(obj: dict[str, Any]) -> dict[str, Any]:
    """The auditors' operations."""
    return {
        "/api/v1/register": {
            "get": {
                "operationId": "register",
                "summary": "The register (Art. 40(9)), each entry with the legal receipt time "
                "it records; auditors only",
                "parameters": [
                    CURSOR,
                    limit_param(100, 1000),
                    *(query_param(name, f"Filter by {name}") for name in REGISTER_FILTERS),
                    *SINCE_UNTIL,
                    UPTO,
                ],
                "responses": {"200": json_body(page("RegisterEntry"), "A page"), **errors(400)},
            }
        },
        "/api/v1/register.csv": {
            "get": {
                "operationId": "registerCsv",
                "summary": "The register as CSV (up to 100,000 entries), with the same filters",
                "parameters": [
                    *(query_param(name, f"Filter by {name}") for name in REGISTER_FILTERS),
                    *SINCE_UNTIL,
                    UPTO,
                ],
                "responses": {
                    "200": _download("text/csv", "CSV, one entry per line, header first")
                    | {"headers": UPTO_HEADER},
                    **errors(400),
                },
            }
        },
        "/api/v1/register.csv.sig": {
            "get": {
                "operationId": "registerCsvSignature",
                "summary": "The detached signature (ECDSA P-256 with SHA-256, DER) of the CSV "
                "the same filters and `upto` give, by the gateway's signing key: `openssl dgst "
                "-sha256 -verify key.pem -signature register.csv.sig register.csv`",
                "parameters": [
                    *(query_param(name, f"Filter by {name}") for name in REGISTER_FILTERS),
                    *SINCE_UNTIL,
                    UPTO,
                ],
                "responses": {
                    "200": _download("application/octet-stream", "The DER signature")
                    | {"headers": UPTO_HEADER},
                    **errors(400),
                },
            }
        },
        "/api/v1/register/integrity": {
            "get": {
                "operationId": "registerIntegrity",
                "summary": "Verify the register now (Art. 40(9)): chain, head, signed "
                "checkpoints and the peers' witnesses the gateway holds; `coverage` says "
                "which entries they cover and how many only the local chain vouches for",
                "responses": {"200": obj, **errors()},
            }
        },
        "/api/v1/audit/cases/{reference}": {
            "get": {
                "operationId": "auditCase",
                "summary": "A case for auditors: every message (transfer information, health "
                "certificates and notices included) with its sending and receipt times and "
                "acknowledgement, the time limits with their articles, the register entries",
                "parameters": [path_param("reference", "The case reference")],
                "responses": {"200": json_body(AUDIT_CASE, "The case"), **errors(404)},
            }
        },
        "/api/v1/audit/acknowledgements/{message_id}": {
            "get": {
                "operationId": "auditAcknowledgement",
                "summary": "The signed acknowledgement of a transmission, byte for byte as "
                "received or issued (the proof of the time of receipt); xmlsec1 verifies it",
                "parameters": [path_param("message_id", "The message id")],
                "responses": {
                    "200": _download("application/xml", "The signed acknowledgement"),
                    **errors(404),
                },
            }
        },
        "/api/v1/audit/export": {
            "get": {
                "operationId": "auditExport",
                "summary": "A signed register bundle of entries `from`..`to`, or of a `case` "
                "(its first to its last entry, its own marked); `gateway register "
                "verify-bundle` checks it offline",
                "parameters": [
                    query_param("from", "First register sequence", pattern="^[0-9]{1,18}$"),
                    query_param("to", "Last register sequence", pattern="^[0-9]{1,18}$"),
                    query_param("case", "A case reference"),
                ],
                "responses": {
                    "200": json_body({"type": "object"}, "The signed bundle"),
                    **errors(400, 404),
                },
            }
        },
        "/api/v1/audit/signing-certificate": {
            "get": {
                "operationId": "auditSigningCertificate",
                "summary": "The gateway's signing certificate (PEM), which checks the CSV's "
                "signature, the bundles and the acknowledgements it issues",
                "responses": {
                    "200": _download("application/x-pem-file", "PEM certificate"),
                    **errors(),
                },
            }
        },
        "/api/v1/audit/choices": {
            "get": {
                "operationId": "auditChoices",
                "summary": "The values the register's filters take: events, message types, "
                "authorities, directions",
                "responses": {"200": obj, **errors()},
            }
        },
    }
