"""The auditor's view of cases and proofs (Art. 40(9)): a case's messages and time limits in
order, the signed acknowledgements exactly as received or issued (the legal proof of the time
of receipt), signed register bundles of a range or of a case, and the gateway's signing
certificate that checks them. Metadata and proofs only, never a payload: the auditor role
reads no form."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.api.auth import CONTEXT, requires
from gateway.api.problems import problem
from gateway.api.views import deadline_view, message_view
from gateway.core.forms import FORM_TYPES
from gateway.core.register import EVENTS, RegisterEntry, receipt_time
from gateway.core.times import utc_text
from gateway.pki.certs import fingerprint
from gateway.service.bundles import case_range, export_bundle
from gateway.store.records import StoredDeadline, StoredMessage

EXPORT_MAX = 100_000
"""The most entries one bundle holds (a longer range is exported in parts)."""
CASE_ENTRIES_MAX = 5_000
"""The most register entries a case view lists (its bundle holds them all)."""
PROPOSAL = "com-2020-610"
"""The basis whose articles the form types name (FormType.article)."""


def _articles(message_id: str, deadlines: list[StoredDeadline]) -> list[dict[str, Any]]:
    """The time limits a message opened or closed, with their articles under the case's
    basis: what the message meant in law."""
    out = []
    for d in deadlines:
        view = deadline_view(d)
        for effect, by in (("opened", d.opened_by), ("closed", d.closed_by)):
            if by == message_id:
                out.append(
                    {
                        "effect": effect,
                        "rule": d.rule,
                        "article": view["article"],
                        "verified": view["verified"],
                    }
                )
    return out


def audit_message_view(
    msg: StoredMessage, legal_basis: str | None, deadlines: list[StoredDeadline]
) -> dict[str, Any]:
    """A message as an auditor sees it: who, what, when sent, when received (the time the
    signed acknowledgement states) and its status; never the form."""
    view = message_view(msg)
    ack = view.pop("acknowledgement")
    form = FORM_TYPES.get(msg.message_type)
    return view | {
        "peer": msg.peer,
        "sent_at": view["created"],
        "receipt_time": None if ack is None else ack["receipt_time"],
        "acknowledgement": None
        if ack is None
        else {
            "status": ack["status"],
            "acknowledgement_id": ack["acknowledgement_id"],
            "reason": ack["reason"],
            "issued_by": msg.peer if msg.direction == "out" else "us",
        },
        "legal_basis": legal_basis,
        "form_article": form.article if form is not None and legal_basis == PROPOSAL else None,
        "articles": _articles(msg.message_id, deadlines),
    }


def audit_entry_view(entry: RegisterEntry) -> dict[str, Any]:
    return {
        "sequence": entry.sequence,
        "time": utc_text(entry.time),
        "event": entry.event,
        "direction": entry.direction,
        "peer": entry.peer,
        "message_id": entry.message_id,
        "type": entry.message_type,
        "status": entry.status,
        "reason": entry.reason,
        "receipt_time": receipt_time(entry),
        "form_reference": entry.details.get("form_reference"),
    }


def _totals(messages: list[dict[str, Any]], deadlines: list[dict[str, Any]]) -> dict[str, int]:
    states = [d["state"] for d in deadlines]
    return {
        "messages": len(messages),
        "sent": sum(1 for m in messages if m["direction"] == "out"),
        "received": sum(1 for m in messages if m["direction"] == "in"),
        "acknowledged": sum(1 for m in messages if m["receipt_time"] is not None),
        "deadlines": len(deadlines),
        "deadlines_open": states.count("open"),
        "deadlines_expired": states.count("expired"),
        "deadlines_closed": sum(1 for s in states if s not in ("open", "expired")),
    }


@requires("read-register")
async def get_audit_case(request: web.Request) -> web.StreamResponse:
    """Every message of a case (its transfer information and health certificates, which
    carry references of their own, and its notices included) with its times of sending and
    receipt and its acknowledgement, the case's time limits with their articles, and the
    register entries filed under it, all in order."""
    ctx = request.app[CONTEXT]
    reference = request.match_info["reference"]
    conv = await ctx.store.conversations.get(reference)
    times = await ctx.store.conversations.times(reference)
    stored = await ctx.store.messages.of_case(reference)
    entries = await ctx.store.register.query(reference=reference, limit=CASE_ENTRIES_MAX)
    if conv is None and not stored and not entries:
        return problem(404, "Not Found", "no case with this reference", field="reference")
    deadlines = await ctx.store.deadlines.find(case=reference, limit=1000)
    basis = None if conv is None else conv.legal_basis
    messages = [audit_message_view(m, basis, deadlines) for m in stored]
    limits = [deadline_view(d) for d in deadlines]
    span = await case_range(ctx.store, reference)
    return web.json_response(
        {
            "reference": reference,
            "authority": ctx.config.authority,
            "kind": None if conv is None else conv.kind,
            "requesting": None if conv is None else conv.requesting,
            "requested": None if conv is None else conv.requested,
            "state": None if conv is None else conv.state.value,
            "legal_basis": basis,
            "opened_at": None if times is None else utc_text(times[0]),
            "updated_at": None if times is None else utc_text(times[1]),
            "messages": messages,
            "deadlines": limits,
            "entries": [audit_entry_view(e) for e in entries],
            "register_span": None if span is None else {"first": span[0], "last": span[1]},
            "totals": _totals(messages, limits),
            "generated_at": utc_text(ctx.clock()),
        }
    )


@requires("read-register")
async def get_acknowledgement(request: web.Request) -> web.StreamResponse:
    """The signed acknowledgement of a transmission, byte for byte as received from the
    receiver (a message we sent) or as issued by us (one we received): `xmlsec1 --verify
    --trusted-pem <network CA>` checks it."""
    ctx = request.app[CONTEXT]
    message_id = request.match_info["message_id"]
    msg = await ctx.store.messages.get(message_id)
    if msg is None:
        return problem(404, "Not Found", "no message with this id", field="message_id")
    if msg.ack_xml is None:
        return problem(
            404,
            "Not Found",
            "this message has no acknowledgement (not yet acknowledged)",
            field="message_id",
        )
    return web.Response(
        body=msg.ack_xml,
        content_type="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="acknowledgement-{msg.message_id}.xml"'
        },
    )


def _export_bounds(q: Any) -> tuple[int, int | None, str | None] | str:
    """(first, last, case) from the query, or why it is refused."""
    if "case" in q:
        if "from" in q or "to" in q:
            return "give either case or from/to, not both"
        return 0, None, str(q["case"])
    try:
        first = int(q.get("from", "1"))
        last = int(q["to"]) if "to" in q else None
    except ValueError:
        return "from and to are register sequence numbers"
    if first < 1 or (last is not None and last < first):
        return "from is 1 or more, and to is not before from"
    return first, last, None


@requires("read-register")
async def get_audit_export(request: web.Request) -> web.StreamResponse:
    """A signed register bundle (what `gateway register verify-bundle` checks offline): the
    entries `from`..`to` (register sequence numbers, default the whole register), or with
    `case`, the contiguous range from the case's first entry to its last, the case's own
    entries marked."""
    ctx = request.app[CONTEXT]
    unknown = set(request.query) - {"from", "to", "case"}
    if unknown:
        name = sorted(unknown)[0]
        return problem(400, "Bad Request", f"unknown parameter {name!r}", field=name)
    bounds = _export_bounds(request.query)
    if isinstance(bounds, str):
        return problem(400, "Bad Request", bounds, field="from")
    first, last, case = bounds
    if case is not None:
        span = await case_range(ctx.store, case)
        if span is None:
            return problem(
                404, "Not Found", "the register holds no entry of this case", field="case"
            )
        first, last = span
    head, _ = await ctx.store.register.head()
    last = head if last is None else min(last, head)
    if last < first:
        return problem(404, "Not Found", f"the register ends at {head}", field="from")
    if last - first + 1 > EXPORT_MAX:
        return problem(
            400,
            "Bad Request",
            f"at most {EXPORT_MAX:,} entries per bundle: export the range in parts",
            field="to",
        )
    data = await export_bundle(
        ctx.store, ctx.config.authority, ctx.signer, first, last, now=ctx.clock(), case=case
    )
    name = f"register-{ctx.config.authority}-{first}-{last}.bundle"
    return web.Response(
        body=data,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@requires("read-register")
async def get_signing_certificate(request: web.Request) -> web.StreamResponse:
    """The gateway's signing certificate in force (PEM): it checks the CSV's detached
    signature, the bundles and the acknowledgements this gateway issues."""
    cert = request.app[CONTEXT].signer.certificate
    return web.Response(
        body=cert.public_bytes(serialization.Encoding.PEM),
        content_type="application/x-pem-file",
        headers={
            "Content-Disposition": 'attachment; filename="signing-certificate.pem"',
            "X-Fingerprint": fingerprint(cert),
        },
    )


@requires("read-register")
async def get_choices(request: web.Request) -> web.StreamResponse:
    """What the auditor page offers as filter choices: the register's events, the message
    types, the authorities of the directory and the directions."""
    ctx = request.app[CONTEXT]
    return web.json_response(
        {
            "authority": ctx.config.authority,
            "events": sorted(EVENTS),
            "types": sorted(FORM_TYPES),
            "peers": sorted(ctx.trust.state.directory.authorities),
            "directions": ["in", "out"],
        }
    )


def add_audit_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit/cases/{reference}", get_audit_case)
    app.router.add_get("/api/v1/audit/acknowledgements/{message_id}", get_acknowledgement)
    app.router.add_get("/api/v1/audit/export", get_audit_export)
    app.router.add_get("/api/v1/audit/signing-certificate", get_signing_certificate)
    app.router.add_get("/api/v1/audit/choices", get_choices)
