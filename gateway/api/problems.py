"""Error responses as problem+json (RFC 9457), naming the field or rule at fault."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    rule: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": f"urn:eu:dublin:gateway:problem:{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if rule is not None:
        body["rule"] = rule
    if extra:
        body |= extra
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


_DETAILS = {
    404: "no such resource here; /api/v1/openapi.json lists what there is",
    405: "this method is not allowed on this resource (see Allow)",
}


@web.middleware
async def errors_as_problems(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The router's own refusals (no such route: 404, a method the route has not: 405, a body
    over the size limit: 413) answer problem+json like every handler does, never aiohttp's
    plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = exc.headers.get("Allow")
        return problem(
            exc.status,
            exc.reason,
            _DETAILS.get(exc.status, exc.reason),
            headers={"Allow": allow} if allow else None,
        )
