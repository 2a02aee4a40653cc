"""Who may call the internal API: a bearer token proves a principal (a named user, see
gateway/service/principals.py) holding one or more roles, and a permission per operation
names the roles that hold it; a principal holds it if any of its roles does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api.problems import problem
from gateway.context import GatewayContext
from gateway.core.principals import Principal
from gateway.core.roles import PERMISSIONS
from gateway.service.deadline_keeper import DeadlineKeeper

CONTEXT: web.AppKey[GatewayContext] = web.AppKey("api-context", GatewayContext)
KEEPER: web.AppKey[DeadlineKeeper] = web.AppKey("keeper", DeadlineKeeper)
ROLE: web.RequestKey[str] = web.RequestKey("role", str)
"""The principal's role that granted the operation's permission (the first, in ROLES order)."""
ROLES: web.RequestKey[tuple[str, ...]] = web.RequestKey("roles", tuple)
"""Every role of the principal (a person may be both case officer and health practitioner)."""
PRINCIPAL: web.RequestKey[str] = web.RequestKey("principal", str)
"""The principal's name: what the register records as the human who acted."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _principal_for(ctx: GatewayContext, header: str | None) -> Principal | None:
    if not header or not header.startswith("Bearer "):
        return None
    return ctx.principals.resolve(header.removeprefix("Bearer ").strip())


def requires(permission: str) -> Callable[[Handler], Handler]:
    if permission not in PERMISSIONS:  # a misspelt permission fails at import
        raise KeyError(permission)

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CONTEXT]
            principal = _principal_for(ctx, request.headers.get("Authorization"))
            if principal is None:
                return problem(
                    401,
                    "Unauthorized",
                    "send 'Authorization: Bearer <token>' with a token of a principal "
                    "(api.tokens_file)",
                    headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
                )
            request[PRINCIPAL] = principal.name
            request[ROLES] = tuple(principal.roles)
            role = principal.role_for(permission)
            if role is None:
                request[ROLE] = principal.roles[0]
                held = ", ".join(principal.roles)
                who = f"the role {held!r}" if len(principal.roles) == 1 else f"the roles {held}"
                return problem(
                    403,
                    "Forbidden",
                    f"{who} may not {permission.replace('-', ' ')}",
                    rule=permission,
                )
            request[ROLE] = role
            return await handler(request)

        return guarded

    return wrap
