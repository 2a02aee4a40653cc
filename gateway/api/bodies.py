"""The one way the internal API reads a JSON request body: media type, size and nesting
depth are checked here, for every endpoint alike, and each refusal is a problem response
(400, 413, 415), never a server error. The depth limit used to guard submissions only: the
same 200,000-deep body to POST /api/v1/admin/clock hit the parser's recursion limit (500)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.api.problems import problem

MAX_JSON_BYTES = 12 * 1024 * 1024
MAX_JSON_DEPTH = 32


class BadBody(Exception):
    """A request body refused before any handler logic ran; `response` says why."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (so hostile input cannot exhaust it)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _too_deep() -> BadBody:
    return BadBody(
        problem(400, "Bad Request", f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    )


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or BadBody. The parser stops at its own recursion limit
    (about a thousand levels, well before the stack is at risk); what it does parse is then
    measured against MAX_JSON_DEPTH."""
    if request.content_type != "application/json":
        raise BadBody(problem(415, "Unsupported Media Type", "send the body as application/json"))
    too_large = problem(413, "Payload Too Large", f"the body exceeds {MAX_JSON_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise BadBody(too_large)
    try:
        data = await request.read()  # the application's client_max_size bounds it too
    except web.HTTPRequestEntityTooLarge as exc:
        raise BadBody(too_large) from exc
    if len(data) > MAX_JSON_BYTES:
        raise BadBody(too_large)
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise BadBody(problem(400, "Bad Request", f"the body is not JSON ({where})")) from exc
    except UnicodeDecodeError as exc:
        raise BadBody(problem(400, "Bad Request", "the body is not UTF-8 text")) from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    if json_depth(value) > MAX_JSON_DEPTH:
        raise _too_deep()
    return value


def cursor_and_limit(
    request: web.Request, default: int, maximum: int
) -> tuple[int, int] | web.Response:
    """A listing's `cursor` (0 or more) and `limit` (1 to `maximum`) query parameters, or the
    problem response that says which one is wrong."""
    try:
        after = int(request.query.get("cursor", "0"))
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        return problem(400, "Bad Request", "cursor and limit must be integers", field="cursor")
    if after < 0:
        return problem(400, "Bad Request", "cursor must be 0 or more", field="cursor")
    if not 1 <= limit <= maximum:
        return problem(400, "Bad Request", f"limit must be between 1 and {maximum}", field="limit")
    return after, limit
