"""Liveness and readiness probes for process supervisors, container orchestrators and load
balancers: `GET /livez` and `GET /readyz` on the internal API listener, without a token.

They answer with names only (`{"status": "unavailable", "failing": ["crl"]}`): no
authority code, no fingerprint, no register head, no error text, so that an unauthenticated
caller learns nothing but whether to send traffic. The reasons are in the log (once per
change) and in the authenticated `GET /api/v1/admin/certificates`, `GET /api/v1/metrics` and
`gateway doctor`; `GET /api/v1/health` stays the authenticated detail. docs/monitoring.md
says how to wire them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from gateway.api.auth import CONTEXT
from gateway.service.readiness import CHECKS, DATABASE, trust_failures
from gateway.store.store import Store

DATABASE_SECONDS = 2.0
"""How long the database check waits for its trivial read before it counts as failing."""

_NO_STORE = {"Cache-Control": "no-store"}


class DatabaseCheck:
    """At most one trivial read (`Store.ping`) in flight: a database that hangs makes each
    probe wait `DATABASE_SECONDS` at most, and probes arriving meanwhile wait for the same
    read instead of piling up worker threads or connections behind it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: asyncio.Task[None] | None = None

    async def usable(self, within: float = DATABASE_SECONDS) -> bool:
        task = self._pending
        if task is None:
            task = self._pending = asyncio.create_task(self.store.ping(), name="readiness-ping")
            task.add_done_callback(_observed)
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            return False
        if self._pending is task:
            self._pending = None
        return not task.cancelled() and task.exception() is None

    async def close(self, _app: web.Application | None = None) -> None:
        task, self._pending = self._pending, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _observed(task: asyncio.Task[None]) -> None:
    """The ping's error is an answer (`database` failing), not an unobserved exception."""
    if not task.cancelled():
        task.exception()


DATABASE_CHECK: web.AppKey[DatabaseCheck] = web.AppKey("database-check", DatabaseCheck)
LAST_FAILING: web.AppKey[list[str]] = web.AppKey("readiness-failing", list)


async def get_livez(_request: web.Request) -> web.StreamResponse:
    """Answered by the event loop itself: if this answers, the process serves."""
    return web.json_response({"status": "ok"}, headers=_NO_STORE)


async def get_readyz(request: web.Request) -> web.StreamResponse:
    """200 while the database answers and the trust in force is usable now; else 503 naming
    the failing checks (in the order of gateway.service.readiness.CHECKS)."""
    app = request.app
    ctx = app[CONTEXT]
    failing = trust_failures(ctx.trust.state, ctx.config.authority, ctx.clock())
    if not await app[DATABASE_CHECK].usable():
        failing.append(DATABASE)
    failing = [name for name in CHECKS if name in failing]
    last = app[LAST_FAILING]
    if failing != last:
        log = ctx.log.warning if failing else ctx.log.info
        log("readiness changed", failing=failing, was=list(last))
        last[:] = failing
    if failing:
        return web.json_response(
            {"status": "unavailable", "failing": failing}, status=503, headers=_NO_STORE
        )
    return web.json_response({"status": "ok"}, headers=_NO_STORE)


def add_probe_routes(app: web.Application) -> None:
    """Public routes (no `requires`): the internal API listens on loopback only, and the
    answers carry nothing but the names of the checks."""
    check = DatabaseCheck(app[CONTEXT].store)
    app[DATABASE_CHECK] = check
    app[LAST_FAILING] = []
    app.on_cleanup.append(check.close)
    app.router.add_get("/livez", get_livez)
    app.router.add_get("/readyz", get_readyz)


_PROBE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "failing": {"type": "array", "items": {"type": "string", "enum": list(CHECKS)}},
    },
}


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _PROBE_BODY}}}


PROBE_PATHS: dict[str, Any] = {
    "/livez": {
        "get": {
            "operationId": "livez",
            "summary": "Liveness: the process serves (no token)",
            "security": [],
            "responses": {"200": _answer("The event loop answers")},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness: database, directory, own certificates and CRL usable now "
            "(no token)",
            "security": [],
            "responses": {
                "200": _answer("Ready"),
                "503": _answer("Not ready; `failing` names the checks"),
            },
        }
    },
}
"""The probes in the OpenAPI document (gateway.api.openapi)."""
