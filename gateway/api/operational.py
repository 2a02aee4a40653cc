"""The liaison officers' part of the internal API: submitting messages of the operational
family (ICONET early warnings, liaison officers' reports, their corrections, withdrawals,
permissions and forwarding) through POST /api/v1/messages, and reading the items received
and sent. Only the liaison-officer role; Dublin case officers see none of it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.auth import CONTEXT, PRINCIPAL, ROLES, requires
from gateway.api.problems import problem
from gateway.core.roles import LIAISON_OFFICER
from gateway.core.times import parse_utc
from gateway.service.operational import OperationalError, submit_operational
from gateway.service.operational_reception import item_files, item_view

FILTERS = frozenset({"category", "country", "since", "cursor", "limit"})


async def post_operational(request: web.Request, data: dict[str, Any]) -> web.StreamResponse:
    """An item distributed to a network (or to the authorities listed), or a withdrawal,
    permission or forwarding: 201 with the item and one transmission per receiver."""
    if LIAISON_OFFICER not in request[ROLES]:
        return problem(
            403,
            "Forbidden",
            f"the operational family is sent by the {LIAISON_OFFICER} role",
            rule="role-not-allowed",
        )
    if "Idempotency-Key" in request.headers:
        return problem(
            400,
            "Bad Request",
            "Idempotency-Key is not taken for the operational family: read the item back with "
            "GET /api/v1/operational before submitting again",
            field="Idempotency-Key",
        )
    try:
        done = await submit_operational(request.app[CONTEXT], data, request[PRINCIPAL])
    except OperationalError as exc:
        return problem(422, "Invalid Submission", str(exc), field=exc.field, rule=exc.rule)
    return web.json_response(
        done.to_dict(),
        status=201,
        headers={"Location": f"/api/v1/operational/{done.item_id}"},
    )


@requires("operational")
async def get_operational(request: web.Request) -> web.StreamResponse:
    """Items of the networks this gateway belongs to, oldest first, by cursor; filters
    `category` (or a report's topic), `country`, `since` (an instant with offset)."""
    ctx = request.app[CONTEXT]
    q = request.query
    unknown = sorted(set(q) - FILTERS)
    if unknown:
        return problem(400, "Bad Request", f"unknown filter {unknown[0]!r}", field=unknown[0])
    try:
        after = int(q.get("cursor", "0"))
        limit = int(q.get("limit", "100"))
        since = parse_utc(q["since"]) if "since" in q else None
    except ValueError:
        return problem(
            400,
            "Bad Request",
            "cursor and limit are integers, since an ISO 8601 instant with an offset",
            field="since",
        )
    if not 1 <= limit <= 500:
        return problem(400, "Bad Request", "limit is 1-500", field="limit")
    local = ctx.directory.get(ctx.config.authority)
    networks = tuple(sorted(local.networks)) if local is not None else ()
    items = await ctx.store.items.find(
        networks=networks,
        category=q.get("category"),
        country=q.get("country"),
        since=since,
        after=after,
        limit=limit,
    )
    views = [item_view(i, await ctx.store.items.transmissions(i.item_id)) for i in items]
    return web.json_response(
        {"items": views, "next_cursor": str(items[-1].id) if items else str(after)}
    )


@requires("operational")
async def get_operational_item(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    item = await ctx.store.items.get(request.match_info["item_id"])
    if item is None:
        return problem(404, "Not Found", "no item with this id", field="item_id")
    return web.json_response(item_view(item, await ctx.store.items.transmissions(item.item_id)))


@requires("operational")
async def get_operational_attachment(request: web.Request) -> web.StreamResponse:
    """A file attached to an item (a map, a report), as carried in the signed transmission
    (for a forwarded item, in the originator's)."""
    ctx = request.app[CONTEXT]
    item_id = request.match_info["item_id"]
    if await ctx.store.items.get(item_id) is None:
        return problem(404, "Not Found", "no item with this id", field="item_id")
    name = request.match_info["file_name"]
    for item in item_files(await ctx.store.items.transmissions(item_id)):
        if item.file_name == name:
            return web.Response(
                body=item.content,
                content_type=item.media_type,
                headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
            )
    return problem(
        404, "Not Found", "no attachment of this name (or it was erased)", field="file_name"
    )


def add_operational_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/operational", get_operational)
    app.router.add_get("/api/v1/operational/{item_id}", get_operational_item)
    app.router.add_get(
        "/api/v1/operational/{item_id}/attachments/{file_name}", get_operational_attachment
    )
