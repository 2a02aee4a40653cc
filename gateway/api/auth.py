"""Who may call the internal API: a bearer token per role, compared in constant time, and a
permission per operation naming the roles that hold it."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api.problems import problem
from gateway.context import GatewayContext
from gateway.core.roles import PERMISSIONS
from gateway.service.deadline_keeper import DeadlineKeeper

CONTEXT: web.AppKey[GatewayContext] = web.AppKey("api-context", GatewayContext)
KEEPER: web.AppKey[DeadlineKeeper] = web.AppKey("keeper", DeadlineKeeper)
ROLE: web.RequestKey[str] = web.RequestKey("role", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _role_for(ctx: GatewayContext, header: str | None) -> str | None:
    if not header or not header.startswith("Bearer "):
        return None
    token = header.removeprefix("Bearer ").strip().encode()
    for role, expected in ctx.config.api.tokens.items():
        if hmac.compare_digest(token, expected.encode()):
            return role
    return None


def requires(permission: str) -> Callable[[Handler], Handler]:
    allowed = PERMISSIONS[permission]

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CONTEXT]
            role = _role_for(ctx, request.headers.get("Authorization"))
            if role is None:
                return problem(
                    401,
                    "Unauthorized",
                    "send 'Authorization: Bearer <token>' with a token from the configuration",
                    headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
                )
            request[ROLE] = role
            if role not in allowed:
                return problem(
                    403,
                    "Forbidden",
                    f"the role {role!r} may not {permission.replace('-', ' ')}",
                    rule=permission,
                )
            return await handler(request)

        return guarded

    return wrap
