"""The web consoles' files (package data under gateway/api/static), served with the same
protections on every page: a Content-Security-Policy that allows only this origin's script
and no inline script, no framing, no MIME sniffing and no caching. Every value the pages
show is written as text (textContent), never as markup; the token stays in the tab's
sessionStorage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from importlib import resources
from pathlib import Path

from aiohttp import web

STATIC = Path(str(resources.files("gateway.api").joinpath("static")))
"""The consoles' files (package data)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def static_files(
    index: str, names: Collection[str]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler serving `index` at the console's root and each of `names` under it."""
    allowed = frozenset(names) | {index}

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", index)
        if name not in allowed:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers=HEADERS)

    return serve


def add_console(app: web.Application, root: str, index: str, names: Collection[str]) -> None:
    """Serve a console at `root` (its page) and `root`/<file> (its script and styles)."""
    handler = static_files(index, names)
    app.router.add_get(root, handler)
    app.router.add_get(root + "/{name}", handler)
