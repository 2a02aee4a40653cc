"""The internal API for case systems, on its own loopback listener. Every request carries a
bearer token; the token decides the role and the role decides what may be done."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from aiohttp import web

from gateway.api.admin import add_admin_routes
from gateway.api.admin_console import add_admin_console_routes
from gateway.api.auditor import add_auditor_routes
from gateway.api.auth import CONTEXT, KEEPER, PRINCIPAL, ROLE, ROLES, Handler, requires
from gateway.api.bodies import MAX_JSON_BYTES, BadBody, read_json
from gateway.api.bodies import cursor_and_limit as _cursor_and_limit
from gateway.api.deletion_orders import add_deletion_order_routes
from gateway.api.openapi import MESSAGE_STATES, openapi_document
from gateway.api.openapi_common import DEADLINE_STATES as STATE_NAMES
from gateway.api.operational import add_operational_routes, post_operational
from gateway.api.outbox import add_outbox_routes
from gateway.api.probes import add_probe_routes
from gateway.api.problems import errors_as_problems, problem
from gateway.api.views import (
    deadline_view,
    event_view,
    may_read_form,
    message_view,
    owned_types,
)
from gateway.context import GatewayContext
from gateway.core.conversations import standard_form
from gateway.core.forms import FORM_TYPES, OPERATIONAL_TYPES
from gateway.core.register import Event
from gateway.core.times import utc_text
from gateway.service.deadline_keeper import DeadlineKeeper
from gateway.service.submission import SubmissionError, submit
from gateway.store.records import StoredMessage
from gateway.store.store import STORAGE_ERRORS
from gateway.xml.envelope import read_attachments
from gateway.xml.parser import parse_trusted

# Characters XML 1.0 cannot carry: C0 controls other than tab, newline and carriage return,
# lone surrogates (JSON escapes can produce them), and the two non-characters U+FFFE/U+FFFF.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def first_unsafe_text(value: Any) -> str | None:
    """The JSON pointer of the first key or string holding a character a signed XML form
    cannot carry, or None. Without recursion."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if NOT_XML.search(item):
                return where or "/"
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}/{key}"
                if NOT_XML.search(key):
                    return where or "/"
                stack.append((child, path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}/{i}") for i, child in enumerate(item))
    return None


def _sending_role(request: web.Request, data: Any) -> str:
    """The role a form is sent in: the form's own sender role when the principal holds it
    (a person both case officer and health practitioner sends each form in its role),
    else the role that granted the permission (and the submission is refused for it)."""
    form_type = FORM_TYPES.get(str(data.get("type"))) if isinstance(data, dict) else None
    if form_type is not None and form_type.sender_role in request[ROLES]:
        return form_type.sender_role
    return request[ROLE]


@requires("submit")
async def post_message(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        data = await read_json(request)
    except BadBody as exc:
        return exc.response
    if not isinstance(data, dict):
        return problem(400, "Bad Request", "the body must be a JSON object", field="")
    unsafe = first_unsafe_text(data)
    if unsafe is not None:
        return problem(
            422,
            "Invalid Submission",
            "text holds a control character, a lone surrogate or a non-character, which XML "
            "cannot carry",
            field=unsafe[:200],
        )
    if data.get("type") in OPERATIONAL_TYPES:
        return await post_operational(request, data)
    try:
        submitted = await submit(
            ctx,
            data,
            _sending_role(request, data),
            request.headers.get("Idempotency-Key"),
            request[PRINCIPAL],
        )
    except SubmissionError as exc:
        errors = [{"field": f, "detail": rule} for f, rule in exc.errors]
        return problem(
            422,
            "Invalid Submission",
            str(exc),
            field=exc.field,
            rule=exc.rule,
            extra={"errors": errors} if len(errors) > 1 else None,
        )
    state = "queued"
    if submitted.replayed:
        current = await ctx.store.messages.get(submitted.message_id)
        state = current.state if current is not None else state
    return web.json_response(
        {
            "message_id": submitted.message_id,
            "reference": submitted.reference,
            "digest": submitted.digest,
            "state": state,
            "warnings": list(submitted.warnings),
            "replayed": submitted.replayed,
        },
        status=200 if submitted.replayed else 201,
        headers={"Location": f"/api/v1/messages/{submitted.message_id}"},
    )


@requires("read-messages")
async def get_message(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    msg = await ctx.store.messages.get(request.match_info["message_id"])
    if msg is None or msg.message_type not in FORM_TYPES:
        return problem(404, "Not Found", "no message with this id", field="message_id")
    view = message_view(msg)
    view["deadlines"] = [
        deadline_view(d) for d in await ctx.store.deadlines.find(opened_by=msg.message_id)
    ]
    view["events"] = [
        event_view(e)
        for e in await ctx.store.register.case_events(
            0, 1000, CASE_EVENTS, message_id=msg.message_id
        )
    ]
    if msg.direction == "out" and msg.state == "queued":
        pending = await ctx.store.outbox.state(msg.message_id)
        if pending is not None:
            view["delivery"] = {
                "attempts": pending["attempts"],
                "next_attempt_at": utc_text(pending["next_attempt_at"]),
                "last_error": pending["last_error"],
            }
    return web.json_response(view)


async def _readable_message(request: web.Request) -> StoredMessage | web.Response:
    ctx = request.app[CONTEXT]
    msg = await ctx.store.messages.get(request.match_info["message_id"])
    if msg is None or msg.message_type not in FORM_TYPES:
        return problem(404, "Not Found", "no message with this id", field="message_id")
    if not may_read_form(request[ROLES], msg.message_type):
        return problem(
            403,
            "Forbidden",
            f"the content of a {msg.message_type} is for another role (Art. 39(3)-(4))",
            rule="read-content",
        )
    if msg.signed_xml is None:
        return problem(410, "Gone", "the payload was erased (Art. 40(8) or retention)")
    return msg


@requires("read-messages")
async def get_transmission(request: web.Request) -> web.StreamResponse:
    """The transmission exactly as signed (for archiving, or for `gateway health open`)."""
    msg = await _readable_message(request)
    if isinstance(msg, web.Response):
        return msg
    assert msg.signed_xml is not None
    return web.Response(body=msg.signed_xml, content_type="application/xml")


@requires("read-messages")
async def get_attachment(request: web.Request) -> web.StreamResponse:
    """One attached file of a message, as carried in the signed transmission."""
    msg = await _readable_message(request)
    if isinstance(msg, web.Response):
        return msg
    assert msg.signed_xml is not None
    name = request.match_info["file_name"]
    for item in read_attachments(parse_trusted(msg.signed_xml)):
        if item.file_name == name:
            return web.Response(
                body=item.content,
                content_type=item.media_type,
                headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
            )
    return problem(404, "Not Found", "no attachment of this name", field="file_name")


INBOX_STATES = ("all", "unconsumed", "consumed")


@requires("read-messages")
async def get_inbox(request: web.Request) -> web.StreamResponse:
    """Received messages, oldest first, by cursor. `state=unconsumed` lists only what this
    role must still process: a case system consumes each message explicitly once it has
    stored it, so a crash in between shows it again and nothing is lost."""
    ctx = request.app[CONTEXT]
    paging = _cursor_and_limit(request, 50, 500)
    if isinstance(paging, web.Response):
        return paging
    after, limit = paging
    state = request.query.get("state", "all")
    if state not in INBOX_STATES:
        return problem(
            400, "Bad Request", f"state is one of {', '.join(INBOX_STATES)}", field="state"
        )
    role = request[ROLES]
    if state == "all":  # the Dublin forms only: the operational family is read elsewhere
        items = await ctx.store.messages.inbox(after, limit, types=frozenset(FORM_TYPES))
    else:
        items = await ctx.store.messages.inbox(
            after, limit, consumed=state == "consumed", types=owned_types(role)
        )
    views = []
    for m in items:
        readable = may_read_form(role, m.message_type)
        view = message_view(m, with_form=readable)
        if not readable:
            view["restricted"] = True
        views.append(view)
    return web.json_response(
        {
            "items": views,
            "next_cursor": str(items[-1].id) if items else str(after),
        }
    )


@requires("read-messages")
async def get_messages(request: web.Request) -> web.StreamResponse:
    """This gateway's messages, sent and received, oldest first by cursor, optionally of one
    `direction` (out, in), `state` and `type`; metadata only (GET /api/v1/messages/{id} shows
    a form to the role that may read it)."""
    ctx = request.app[CONTEXT]
    paging = _cursor_and_limit(request, 100, 1000)
    if isinstance(paging, web.Response):
        return paging
    after, limit = paging
    query = request.query
    for name, allowed in (
        ("direction", ("out", "in")),
        ("state", MESSAGE_STATES),
        ("type", tuple(FORM_TYPES)),
    ):
        if name in query and query[name] not in allowed:
            return problem(400, "Bad Request", f"{name} is one of {', '.join(allowed)}", field=name)
    items = await ctx.store.messages.listing(
        after,
        limit,
        direction=query.get("direction"),
        state=query.get("state"),
        message_type=query.get("type"),
        types=frozenset(FORM_TYPES),
    )
    return web.json_response(
        {
            "items": [message_view(m) for m in items],
            "next_cursor": str(items[-1].id) if items else str(after),
        }
    )


@requires("read-messages")
async def post_consumed(request: web.Request) -> web.StreamResponse:
    """The case system has stored a received message: it leaves the unconsumed inbox. Saying
    so again changes nothing (idempotent), so a retry after a lost answer is harmless."""
    ctx = request.app[CONTEXT]
    message_id = request.match_info["message_id"]
    async with ctx.store.transaction() as tx:
        msg = await tx.messages.get(message_id)
        if msg is None or msg.direction != "in":
            return problem(404, "Not Found", "no received message with this id", field="id")
        role = next(
            (r for r in request[ROLES] if msg.message_type in owned_types(r)), request[ROLE]
        )
        if msg.message_type not in owned_types(role):
            return problem(
                403,
                "Forbidden",
                f"a {msg.message_type} is consumed by the role that processes it, not {role}",
                rule="consume",
            )
        already = msg.consumed_at is not None
        if not already:
            now = ctx.clock()
            await tx.messages.update(message_id, consumed_at=now, consumed_by=role)
            await tx.register.append(
                time=now,
                event=Event.CONSUMED,
                direction="in",
                peer=msg.peer,
                message_id=message_id,
                message_type=msg.message_type,
                reference=msg.reference,
                digest=msg.digest,
                status="consumed",
                details={"role": role},
                principal=request[PRINCIPAL],
            )
            consumed_at = now
        else:
            assert msg.consumed_at is not None
            consumed_at = msg.consumed_at
    return web.json_response(
        {
            "message_id": message_id,
            "consumed_at": utc_text(consumed_at),
            "already_consumed": already,
        }
    )


CASE_EVENTS: tuple[Event, ...] = (
    Event.SUBMITTED,
    Event.DELIVERED,
    Event.REFUSED_BY_PEER,
    Event.DELIVERY_FAILED,
    Event.UNDELIVERABLE,
    Event.REQUEUED,
    Event.CANCELLED,
    Event.RECEIVED,
    Event.REJECTED,
    Event.CONSUMED,
    Event.DEADLINE_OPENED,
    Event.DEADLINE_CLOSED,
    Event.DEADLINE_EXPIRED,
    Event.REMINDER,
    Event.LATE_REPLY,
    Event.PAYLOAD_ERASED,
)


@requires("read-messages")
async def get_events(request: web.Request) -> web.StreamResponse:
    """What happened to messages and cases, in order: acknowledgements, refusals, delivery
    failures, receipts, deadlines opened and met, expiries with their consequence (deemed
    acceptance, Art. 30(8)), reminders. The cursor is the register sequence: no gaps, no
    reordering, and a case system resumes exactly where it stopped."""
    ctx = request.app[CONTEXT]
    paging = _cursor_and_limit(request, 100, 1000)
    if isinstance(paging, web.Response):
        return paging
    after, limit = paging
    case = request.query.get("case")
    # The head first: every entry up to it is committed, so a short page means nothing of
    # interest lies between the last item and the head, and the cursor may jump there.
    head, entries = await ctx.store.register.feed_page(after, limit, CASE_EVENTS, case=case)
    next_cursor = entries[-1].sequence if entries else after
    if len(entries) < limit:
        next_cursor = max(next_cursor, head)
    return web.json_response(
        {"items": [event_view(e) for e in entries], "next_cursor": str(next_cursor)}
    )


@requires("read-messages")
async def get_case(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    reference = request.match_info["reference"]
    conv = await ctx.store.conversations.get(reference)
    times = await ctx.store.conversations.times(reference)
    if conv is None or times is None:
        return problem(404, "Not Found", "no case with this reference", field="reference")
    messages = await ctx.store.messages.of_case(reference)
    return web.json_response(
        {
            "reference": conv.reference,
            "kind": conv.kind,
            "requesting": conv.requesting,
            "requested": conv.requested,
            "state": conv.state.value,
            "legal_basis": conv.legal_basis,
            "criteria": conv.criteria,
            "standard_form": standard_form(conv),
            "opened_at": utc_text(times[0]),
            "updated_at": utc_text(times[1]),
            "messages": [message_view(m) for m in messages],
            # Ours, not yet acknowledged: the case moves when each is (issue 16, defect 7).
            "awaiting_delivery": [
                m.message_id
                for m in messages
                if m.direction == "out"
                and m.state in ("queued", "undeliverable")
                and not FORM_TYPES[m.message_type].opens
            ],
            "deadlines": [
                deadline_view(d) for d in await ctx.store.deadlines.find(case=reference, limit=1000)
            ],
            "events": [
                event_view(e)
                for e in await ctx.store.register.case_events(0, 1000, CASE_EVENTS, case=reference)
            ],
        }
    )


@requires("read-messages")
async def get_deadlines(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    q = request.query
    unknown = set(q) - {"state", "rule", "peer", "due_before", "due_after", "cursor", "limit"}
    if unknown:
        return problem(
            400, "Bad Request", f"unknown filter {sorted(unknown)[0]!r}", field=sorted(unknown)[0]
        )
    try:
        after = int(q.get("cursor", "0"))
        limit = int(q.get("limit", "100"))
        for key in ("due_before", "due_after"):
            if key in q:
                date.fromisoformat(q[key])
    except ValueError:
        return problem(
            400,
            "Bad Request",
            "cursor and limit are integers, due_before and due_after dates (YYYY-MM-DD)",
        )
    if not 1 <= limit <= 1000 or q.get("state", "open") not in DEADLINE_STATES:
        return problem(
            400,
            "Bad Request",
            "limit is 1-1000; state is one of " + ", ".join(sorted(DEADLINE_STATES)),
            field="state",
        )
    peer = q.get("peer")
    items = await ctx.store.deadlines.find(
        state=q.get("state"),
        rule=q.get("rule"),
        peer_of=(ctx.config.authority, peer) if peer else None,
        due_before=q.get("due_before"),
        due_after=q.get("due_after"),
        after_id=after,
        limit=limit,
    )
    return web.json_response(
        {
            "items": [deadline_view(d) for d in items],
            "next_cursor": str(items[-1].id) if items else str(after),
        }
    )


async def get_openapi(request: web.Request) -> web.StreamResponse:
    """The API's description (OpenAPI 3.1); public on the loopback listener, like a manual."""
    return web.json_response(openapi_document())


@requires("health")
async def get_health(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    seq, head = await ctx.store.register.head()
    return web.json_response(
        {
            "status": "ok",
            "authority": ctx.config.authority,
            "register": {"sequence": seq, "hash": head},
        }
    )


DEADLINE_STATES = frozenset(STATE_NAMES)


@web.middleware
async def storage_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A failing database (full, read-only, unreachable) is a 503 the caller can retry, not
    a 500: nothing was stored, so nothing was signed or queued."""
    try:
        return await handler(request)
    except STORAGE_ERRORS as exc:
        request.app[CONTEXT].log.error("storage unavailable", error=str(exc))
        response = problem(
            503,
            "Storage Unavailable",
            "the gateway cannot write to its database now; nothing was stored; retry later",
        )
        response.headers["Retry-After"] = "5"
        return response


@web.middleware
async def no_nul_characters(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No identifier, reference or filter contains U+0000, and PostgreSQL cannot even compare
    text with it: a query or path value holding one is refused up front (400), on every
    database alike, instead of failing as storage trouble."""
    for where, values in (("query", request.query), ("path", request.match_info)):
        for name, value in values.items():
            if "\x00" in value or "\x00" in name:
                return problem(
                    400,
                    "Bad Request",
                    f"the {where} parameter {name!r} contains a NUL character",
                    field=name,
                )
    return await handler(request)


def api_app(ctx: GatewayContext, keeper: DeadlineKeeper) -> web.Application:
    app = web.Application(
        client_max_size=MAX_JSON_BYTES,
        middlewares=[
            ctx.metrics.http_middleware,
            errors_as_problems,
            no_nul_characters,
            storage_unavailable,
        ],
    )
    app[CONTEXT] = ctx
    app[KEEPER] = keeper
    app.router.add_post("/api/v1/messages", post_message)
    app.router.add_get("/api/v1/messages", get_messages)
    app.router.add_get("/api/v1/messages/{message_id}", get_message)
    app.router.add_get("/api/v1/messages/{message_id}/transmission", get_transmission)
    app.router.add_get("/api/v1/messages/{message_id}/attachments/{file_name}", get_attachment)
    app.router.add_get("/api/v1/inbox", get_inbox)
    app.router.add_post("/api/v1/inbox/{message_id}/consumed", post_consumed)
    app.router.add_get("/api/v1/events", get_events)
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_get("/api/v1/cases/{reference}", get_case)
    app.router.add_get("/api/v1/deadlines", get_deadlines)
    add_admin_routes(app)
    add_outbox_routes(app)
    add_operational_routes(app)
    add_deletion_order_routes(app)
    add_admin_console_routes(app)
    add_auditor_routes(app)
    app.router.add_get("/api/v1/health", get_health)
    add_probe_routes(app)
    return app
