"""An administrator's upload of the network operator's signed deletion order (operational
family, Council Decision 2005/267/EC): the same order a gateway also picks up from
`operational.deletion_orders_dir`, applied here at once. A refused order answers 422 and is
in the register like an applied one."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.auth import CONTEXT, PRINCIPAL, requires
from gateway.api.openapi_common import errors
from gateway.api.problems import problem
from gateway.pki.deletion_orders import MAX_ORDER_BYTES, DeletionOrderError
from gateway.service.operational_lifecycle import apply_deletion_order

PATH = "/api/v1/admin/deletion-orders"


@requires("administer")
async def post_deletion_order(request: web.Request) -> web.StreamResponse:
    if request.content_type != "application/xml":
        return problem(
            415, "Unsupported Media Type", "send the signed order file as application/xml"
        )
    too_large = problem(
        413, "Payload Too Large", f"a deletion order is at most {MAX_ORDER_BYTES} bytes"
    )
    if request.content_length is not None and request.content_length > MAX_ORDER_BYTES:
        return too_large
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large
    if len(data) > MAX_ORDER_BYTES:
        return too_large
    try:
        applied = await apply_deletion_order(
            request.app[CONTEXT], data, "upload", request[PRINCIPAL]
        )
    except DeletionOrderError as exc:
        return problem(422, "Deletion Order Refused", str(exc), rule="deletion-order")
    return web.json_response(applied.to_dict())


def add_deletion_order_routes(app: web.Application) -> None:
    app.router.add_post(PATH, post_deletion_order)


_APPLIED: dict[str, Any] = {
    "type": "object",
    "required": [
        "order_id",
        "issued",
        "reason",
        "sha256",
        "items_held",
        "items_not_held",
        "payloads_erased",
        "already_applied",
    ],
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "issued": {"type": "string", "format": "date-time"},
        "reason": {"type": "string"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "items_held": {"type": "array", "items": {"type": "string"}},
        "items_not_held": {"type": "array", "items": {"type": "string"}},
        "payloads_erased": {"type": "integer", "minimum": 0},
        "already_applied": {"type": "boolean"},
    },
}

DELETION_ORDER_PATHS: dict[str, Any] = {
    PATH: {
        "post": {
            "operationId": "adminDeletionOrder",
            "tags": ["administration"],
            "summary": "Apply the network operator's signed deletion order (operational family)",
            "description": "The order file as `gateway pki deletion-order` writes it, signed by "
            "the publisher of the directory in force. Every item it names that this gateway "
            "holds, sent or received, loses its payloads and becomes `deleted`; the register "
            "keeps their entries. Applying an order again changes nothing "
            "(`already_applied`). 422: refused (signature, signer, schema), with the reason.",
            "requestBody": {
                "required": True,
                "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "200": {
                    "description": "Applied (or applied before)",
                    "content": {"application/json": {"schema": _APPLIED}},
                },
                **errors(413, 415, 422),
            },
        }
    }
}
"""The OpenAPI path item of the upload, for gateway.api.openapi to merge."""
