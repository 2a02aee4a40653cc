"""The auditor's part of the internal API (Art. 40(9)): the register as JSON and CSV,
its integrity verified on demand, and the auditor page. Metadata and digests only, never a
payload; the auditor role alone reads them."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.api.audit_cases import add_audit_routes
from gateway.api.auth import CONTEXT, requires
from gateway.api.pages import add_console
from gateway.api.problems import problem
from gateway.core.pins import PinHistory
from gateway.core.register import RegisterChainError, RegisterEntry, receipt_time
from gateway.core.times import parse_utc, utc_text
from gateway.pki.certs import fingerprint
from gateway.service.audit import entries_csv, held_witnesses, overdue_checkpoint, verify_store

REGISTER_FILTERS = {
    "reference": "reference",
    "reference_prefix": "reference_prefix",
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
    unknown = set(q) - set(REGISTER_FILTERS) - {"since", "until", "cursor", "limit", "upto"}
    if unknown:
        name = sorted(unknown)[0]
        return problem(400, "Bad Request", f"unknown filter {name!r}", field=name)
    try:
        after = int(q.get("cursor", "0"))
        limit = int(q.get("limit", "100"))
        upto = int(q["upto"]) if "upto" in q else None
        times = {key: parse_utc(q[key]) for key in ("since", "until") if key in q}
    except ValueError:
        return problem(
            400,
            "Bad Request",
            "cursor, limit and upto are integers; since and until ISO 8601 instants with an offset",
            field="since",
        )
    if not 1 <= limit <= limit_max:
        return problem(400, "Bad Request", f"limit is 1-{limit_max}", field="limit")
    filters: dict[str, Any] = {
        column: q[name] for name, column in REGISTER_FILTERS.items() if name in q
    }
    return await ctx.store.register.query(
        **filters,
        since=times.get("since"),
        until=times.get("until"),
        after=after,
        upto=upto,
        limit=limit,
    )


def entry_view(entry: RegisterEntry) -> dict[str, Any]:
    """A register entry as the register holds it, with the legal receipt time it records
    (gateway.core.register.receipt_time) beside it."""
    return entry.to_dict() | {"receipt_time": receipt_time(entry)}


@requires("read-register")
async def get_register(request: web.Request) -> web.StreamResponse:
    """Art. 40(9): the register for auditors: metadata and digests, never payloads."""
    entries = await _register_query(request, 1000)
    if isinstance(entries, web.Response):
        return entries
    after = request.query.get("cursor", "0")
    return web.json_response(
        {
            "items": [entry_view(e) for e in entries],
            "next_cursor": str(entries[-1].sequence) if entries else after,
        }
    )


async def _csv(request: web.Request) -> tuple[bytes, int] | web.Response:
    """The CSV an auditor asked for, bounded by `upto` (default: the register head now), so
    that the same query with the same `upto` gives the same bytes (and so its signature)."""
    if "upto" not in request.query:
        head, _ = await request.app[CONTEXT].store.register.head()
        request = request.clone(rel_url=request.rel_url.update_query(upto=str(head)))
    entries = await _register_query(request, 100_000)
    if isinstance(entries, web.Response):
        return entries
    return entries_csv(entries).encode(), int(request.query["upto"])


@requires("read-register")
async def get_register_csv(request: web.Request) -> web.StreamResponse:
    """The register as CSV, up to `upto`: the answer's `X-Register-Upto` names the bound to
    ask /api/v1/register.csv.sig for, with the same filters."""
    made = await _csv(request)
    if isinstance(made, web.Response):
        return made
    body, upto = made
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="register.csv"',
            "X-Register-Upto": str(upto),
        },
    )


@requires("read-register")
async def get_register_csv_signature(request: web.Request) -> web.StreamResponse:
    """A detached signature of the CSV the same query returns (give the same `upto`):
    ECDSA with SHA-256 by the gateway's signing key, DER-encoded, which `openssl dgst -sha256
    -verify <public key> -signature register.csv.sig register.csv` checks against the
    signing certificate (GET /api/v1/audit/signing-certificate)."""
    made = await _csv(request)
    if isinstance(made, web.Response):
        return made
    body, upto = made
    signer = request.app[CONTEXT].signer
    return web.Response(
        body=signer.key.sign(body, ec.ECDSA(hashes.SHA256())),
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": 'attachment; filename="register.csv.sig"',
            "X-Register-Upto": str(upto),
            "X-Signer-Fingerprint": fingerprint(signer.certificate),
        },
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


def add_auditor_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/register", get_register)
    app.router.add_get("/api/v1/register.csv", get_register_csv)
    app.router.add_get("/api/v1/register.csv.sig", get_register_csv_signature)
    app.router.add_get("/api/v1/register/integrity", get_register_integrity)
    add_audit_routes(app)
    add_console(app, "/auditor", "auditor.html", ("auditor.js", "console.css"))
