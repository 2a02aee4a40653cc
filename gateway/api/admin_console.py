"""The administrators' console (issue 18): the page at /admin and the reads it needs beyond
the directory, certificates, CRL and queue (gateway/api/admin.py, outbox.py): the last
refused trust reload, every peer's reachability and TLS identity checked now, and traffic
figures per hour from the register. Reads only: nothing here changes the gateway, so nothing
here is a register entry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp import web

from gateway.api.auth import CONTEXT, requires
from gateway.api.openapi_common import TEXT_OR_NULL, TIME, errors, json_body
from gateway.api.pages import add_console
from gateway.api.problems import problem
from gateway.core.register import Event
from gateway.core.stats import COLUMNS, HourlyStats
from gateway.core.times import parse_utc, utc_text
from gateway.service.peers import check_peer

__all__ = ["ADMIN_CONSOLE_PATHS", "add_admin_console_routes"]

PEER_CHECK_SECONDS = 3.0
"""How long one peer may take (connection, TLS and /v1/health); all are checked at once."""
STATS_DEFAULT = timedelta(days=7)
STATS_LONGEST = timedelta(days=31)
STATS_PAGE = 1000


@requires("administer")
async def get_trust(request: web.Request) -> web.StreamResponse:
    """Reloads applied and refused since this process started, and the last refusal the
    register holds (whichever process or node refused it)."""
    ctx = request.app[CONTEXT]
    last = await ctx.store.register.latest(Event.TRUST_RELOAD_REFUSED)
    return web.json_response(
        {
            "reloads": ctx.trust.reloads,
            "refusals": ctx.trust.refusals,
            "last_refusal": None
            if last is None
            else {
                "time": utc_text(last.time),
                "trigger": str(last.details.get("trigger", "")),
                "error": str(last.details.get("text", "")),
                "register_sequence": last.sequence,
            },
        }
    )


@requires("administer")
async def get_peers(request: web.Request) -> web.StreamResponse:
    """Every other authority of the directory, called now with the gateway's own TLS client
    context (what deliveries use), all at once, each within PEER_CHECK_SECONDS."""
    ctx = request.app[CONTEXT]
    state, context = ctx.trust.state, ctx.trust.client_context
    peers = sorted(
        (a for a in state.directory.authorities.values() if a.code != ctx.config.authority),
        key=lambda a: a.code,
    )
    checked_at = ctx.clock()
    found = await asyncio.gather(*(check_peer(p, context, PEER_CHECK_SECONDS) for p in peers))
    return web.json_response(
        {
            "checked_at": utc_text(checked_at),
            "timeout_seconds": PEER_CHECK_SECONDS,
            "directory_version": state.directory.version,
            "peers": [f.to_dict() for f in found],
        }
    )


@requires("administer")
async def get_stats(request: web.Request) -> web.StreamResponse:
    """Messages, failures and rejections per UTC hour since `since` (default: 7 days ago,
    at most 31), counted from the register (gateway.core.stats)."""
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    unknown = sorted(set(request.query) - {"since"})
    if unknown:
        return problem(400, "Bad Request", f"unknown parameter {unknown[0]!r}", field=unknown[0])
    try:
        since = parse_utc(request.query["since"]) if "since" in request.query else None
    except ValueError:
        return problem(
            400,
            "Bad Request",
            "since is an ISO 8601 instant with an offset (2026-12-01T00:00:00Z)",
            field="since",
        )
    since = now - STATS_DEFAULT if since is None else since
    if since > now:
        return problem(400, "Bad Request", "since is in the future", field="since")
    if now - since > STATS_LONGEST:
        return problem(
            400,
            "Bad Request",
            f"since is at most {STATS_LONGEST.days} days ago",
            field="since",
        )
    stats = HourlyStats(since, now)
    after = 0
    while True:
        page = await ctx.store.register.query(since=since, until=now, after=after, limit=STATS_PAGE)
        stats.add(page)
        if len(page) < STATS_PAGE:
            break
        after = page[-1].sequence
    return web.json_response(stats.to_dict())


def add_admin_console_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/trust", get_trust)
    app.router.add_get("/api/v1/admin/peers", get_peers)
    app.router.add_get("/api/v1/admin/stats", get_stats)
    add_console(app, "/admin", "admin.html", ("admin.js", "console.css"))


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_COUNT = {"type": "integer", "minimum": 0}
_COUNTS = {"type": "object", "additionalProperties": _COUNT}
_REFUSAL = _object(
    ["time", "trigger", "error", "register_sequence"],
    time=TIME,
    trigger={"type": "string", "description": "SIGHUP, admin-api or file-change"},
    error={"type": "string"},
    register_sequence={"type": "integer"},
)
_PEER = _object(
    [
        "authority",
        "endpoint",
        "reachable",
        "outcome",
        "error",
        "subject",
        "fingerprint",
        "pinned",
        "pins",
        "computing_differences",
    ],
    authority={"type": "string"},
    endpoint={"type": "string"},
    reachable={"type": "boolean", "description": "A TLS connection was established"},
    outcome={
        "enum": [
            "ok",
            "computes-differently",
            "unverified",
            "unreachable",
            "unpinned",
            "no-health",
            "wrong-authority",
        ]
    },
    error=TEXT_OR_NULL,
    subject=TEXT_OR_NULL,
    fingerprint=TEXT_OR_NULL,
    pinned={"type": "boolean", "description": "The certificate is one the directory pins"},
    pins={"type": "array", "items": {"type": "string"}},
    computing_differences={"type": "array", "items": {"type": "string"}},
)
_HOUR = _object(["hour", *COLUMNS], hour=TIME, **dict.fromkeys(COLUMNS, _COUNT))

ADMIN_CONSOLE_PATHS: dict[str, Any] = {
    "/api/v1/admin/trust": {
        "get": {
            "operationId": "adminTrust",
            "summary": "Trust reloads applied and refused since start, and the last refusal",
            "tags": ["administration"],
            "responses": {
                "200": json_body(
                    _object(
                        ["reloads", "refusals", "last_refusal"],
                        reloads=_COUNT,
                        refusals=_COUNT,
                        last_refusal={"oneOf": [{"type": "null"}, _REFUSAL]},
                    ),
                    "Reload counts and the last refusal (null: none since start)",
                ),
                **errors(),
            },
        }
    },
    "/api/v1/admin/peers": {
        "get": {
            "operationId": "adminPeers",
            "summary": "Every peer of the directory called now: reachable, TLS identity, pin "
            f"(at most {PEER_CHECK_SECONDS:g} s each, all at once)",
            "tags": ["administration"],
            "responses": {
                "200": json_body(
                    _object(
                        ["checked_at", "timeout_seconds", "directory_version", "peers"],
                        checked_at=TIME,
                        timeout_seconds={"type": "number"},
                        directory_version={"type": "integer"},
                        peers={"type": "array", "items": _PEER},
                    ),
                    "One check per peer, by authority code",
                ),
                **errors(),
            },
        }
    },
    "/api/v1/admin/stats": {
        "get": {
            "operationId": "adminStats",
            "summary": "Messages sent and received, failures and rejections per UTC hour, "
            "from the register",
            "tags": ["administration"],
            "parameters": [
                {
                    "name": "since",
                    "in": "query",
                    "required": False,
                    "description": "Start of the period: an ISO 8601 instant with an offset, "
                    f"at most {STATS_LONGEST.days} days ago (default: "
                    f"{STATS_DEFAULT.days} days ago); the period ends now.",
                    "schema": {"type": "string", "format": "date-time"},
                }
            ],
            "responses": {
                "200": json_body(
                    _object(
                        [
                            "since",
                            "until",
                            "hours",
                            "totals",
                            "rejections_by_reason",
                            "failures_by_reason",
                            "entries_read",
                        ],
                        since=TIME,
                        until=TIME,
                        hours={"type": "array", "items": _HOUR},
                        totals=_object(list(COLUMNS), **dict.fromkeys(COLUMNS, _COUNT)),
                        rejections_by_reason=_COUNTS,
                        failures_by_reason=_COUNTS,
                        entries_read=_COUNT,
                    ),
                    "Every hour of the period, those without traffic as zeros",
                ),
                **errors(400),
            },
        }
    },
}
"""The console's operations for the OpenAPI document (merged by gateway.api.openapi)."""
