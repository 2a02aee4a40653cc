"""Queue administration over the internal API (administrators): the outbound messages still
queued or given up on, and a retry or a cancellation of one (gateway/service/outbox_admin)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import CONTEXT, PRINCIPAL, ROLE, requires
from gateway.api.bodies import cursor_and_limit
from gateway.api.problems import problem
from gateway.service.outbox_admin import STATES, QueueActionError, cancel, list_outbox, retry

_TITLES = {404: "Not Found", 409: "Conflict"}


@requires("administer")
async def get_outbox(request: web.Request) -> web.StreamResponse:
    state = request.query.get("state", "queued")
    if state not in STATES:
        return problem(400, "Bad Request", f"state is one of {', '.join(STATES)}", field="state")
    paging = cursor_and_limit(request, 100, 1000)
    if isinstance(paging, web.Response):
        return paging
    after, limit = paging
    page = await list_outbox(request.app[CONTEXT].store, state, after, limit)
    return web.json_response({"items": page.items, "next_cursor": page.next_cursor})


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    message_id = request.match_info["message_id"]
    do = retry if action == "retry" else cancel
    actor = request[ROLE]
    try:
        done = await do(ctx.store, message_id, actor, ctx.clock(), request[PRINCIPAL])
    except QueueActionError as exc:
        return problem(exc.status, _TITLES[exc.status], exc.text, field="message_id")
    if action == "retry":
        ctx.wake_delivery.set()
        ctx.log.info(
            "delivery retried by an administrator",
            message_id=message_id,
            principal=request[PRINCIPAL],
        )
    else:
        ctx.log.warning(
            "delivery cancelled by an administrator",
            message_id=message_id,
            principal=request[PRINCIPAL],
        )
    return web.json_response(done)


@requires("administer")
async def post_retry(request: web.Request) -> web.StreamResponse:
    return await _act(request, "retry")


@requires("administer")
async def post_cancel(request: web.Request) -> web.StreamResponse:
    return await _act(request, "cancel")


def add_outbox_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/outbox", get_outbox)
    app.router.add_post("/api/v1/admin/outbox/{message_id}/retry", post_retry)
    app.router.add_post("/api/v1/admin/outbox/{message_id}/cancel", post_cancel)
