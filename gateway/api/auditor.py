"""The auditor's part of the internal API (Art. 40(9)): the register as JSON and CSV,
its integrity verified on demand, and the auditor page. Metadata and digests only, never a
payload; the auditor role alone reads them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.api.auth import CONTEXT, requires
from gateway.api.problems import problem
from gateway.core.pins import PinHistory
from gateway.core.register import RegisterChainError
from gateway.core.times import parse_utc, utc_text
from gateway.service.audit import entries_csv, held_witnesses, overdue_checkpoint, verify_store

STATIC = Path(str(resources.files("gateway.api").joinpath("static")))
"""The auditor page's files (package data)."""


REGISTER_FILTERS = {
    "reference": "reference",
    "message_id": "message_id",
    "peer": "peer",
    "type": "message_type",
    "direction": "direction",
    "status": "status",
    "event": "event",
    "reason": "reason",
}


async def _register_query(request: web.Request, limit_max: int) -> list[Any] | web.Response:
    """The register entries an auditor asked for, or a problem naming the bad filter."""
    ctx = request.app[CONTEXT]
    q = request.query
    unknown = set(q) - set(REGISTER_FILTERS) - {"since", "until", "cursor", "limit"}
    if unknown:
        name = sorted(unknown)[0]
        return problem(400, "Bad Request", f"unknown filter {name!r}", field=name)
    try:
        after = int(q.get("cursor", "0"))
        limit = int(q.get("limit", "100"))
        times = {key: parse_utc(q[key]) for key in ("since", "until") if key in q}
    except ValueError:
        return problem(
            400,
            "Bad Request",
            "cursor and limit are integers; since and until ISO 8601 instants with an offset",
            field="since",
        )
    if not 1 <= limit <= limit_max:
        return problem(400, "Bad Request", f"limit is 1-{limit_max}", field="limit")
    return await ctx.store.register.query(
        **{column: q[name] for name, column in REGISTER_FILTERS.items() if name in q},
        since=times.get("since"),
        until=times.get("until"),
        after=after,
        limit=limit,
    )


@requires("read-register")
async def get_register(request: web.Request) -> web.StreamResponse:
    """Art. 40(9): the register for auditors: metadata and digests, never payloads."""
    entries = await _register_query(request, 1000)
    if isinstance(entries, web.Response):
        return entries
    after = request.query.get("cursor", "0")
    return web.json_response(
        {
            "items": [e.to_dict() for e in entries],
            "next_cursor": str(entries[-1].sequence) if entries else after,
        }
    )


@requires("read-register")
async def get_register_csv(request: web.Request) -> web.StreamResponse:
    entries = await _register_query(request, 100_000)
    if isinstance(entries, web.Response):
        return entries
    return web.Response(
        text=entries_csv(entries),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="register.csv"'},
    )


@requires("read-register")
async def get_register_integrity(request: web.Request) -> web.StreamResponse:
    """Verify the whole register now: chain, head, signed checkpoints (each signed by a
    certificate pinned for us when it was signed) and every peer witness the gateway holds;
    and say how many entries nothing but the local chain vouches for."""
    ctx = request.app[CONTEXT]
    state = ctx.trust.state
    verified_at = utc_text(ctx.clock())
    witnesses = await held_witnesses(ctx.store)
    try:
        report = await verify_store(
            ctx.store,
            ctx.config.authority,
            list(state.anchors.certificates),
            witnesses=witnesses,
            pins=PinHistory([*await ctx.store.trust.pin_history(), state.pins]),
            revocations=state.revocations,
        )
    except RegisterChainError as exc:
        return web.json_response(
            {
                "intact": False,
                "sequence": exc.sequence,
                "reason": exc.reason,
                "witnesses": len(witnesses),
                "verified_at": verified_at,
            }
        )
    overdue = overdue_checkpoint(report, ctx.config.register.checkpoint_every)
    return web.json_response(
        {"intact": True, **report.to_dict(), "warning": overdue, "verified_at": verified_at}
    )


async def auditor_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name", "auditor.html")
    if name not in ("auditor.html", "auditor.js"):
        raise web.HTTPNotFound()
    return web.FileResponse(
        STATIC / name,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


def add_auditor_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/register", get_register)
    app.router.add_get("/api/v1/register.csv", get_register_csv)
    app.router.add_get("/api/v1/register/integrity", get_register_integrity)
    app.router.add_get("/auditor", auditor_page)
    app.router.add_get("/auditor/{name}", auditor_page)
