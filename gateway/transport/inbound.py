"""The peer-facing server: POST /v1/transmissions takes one signed transmission and answers
with a signed acknowledgement of receipt (gateway/service/reception.py decides it);
GET /v1/acknowledgements/{id} gives a sender its proof of receipt again; GET /v1/health.
Admission (pinned identity, per-peer quotas) runs first (transport/admission.py); here: the
media type, the size and the time a body may take, and the HTTP status of each answer."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.context import GatewayContext
from gateway.core.conversations import computing_versions
from gateway.core.policy import Reason, Rejection
from gateway.service.deadline_keeper import DeadlineKeeper
from gateway.service.reception import Answer, Reception
from gateway.store.store import STORAGE_ERRORS
from gateway.transport.admission import ADMISSION, NOT_PINNED, PINNED, Admission

CONTEXT: web.AppKey[GatewayContext] = web.AppKey("context", GatewayContext)
XML_TYPES = frozenset({"application/xml", "text/xml"})
_HTTP_STATUS = {
    Reason.UNKNOWN_PEER: 403,
    Reason.CERTIFICATE_REVOKED: 403,
    Reason.BODY_TOO_LARGE: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE: 415,
}


def _ack_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml")


class Receiver:
    """POST /v1/transmissions: the HTTP around the reception use case."""

    def __init__(self, ctx: GatewayContext, keeper: DeadlineKeeper) -> None:
        self.ctx = ctx
        self.reception = Reception(ctx, keeper)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one transmission. If our storage fails (disk full, read-only, database
        down) the answer is 503 and no acknowledgement: we acknowledge only what we stored,
        and the sender retries the same message id later."""
        try:
            answer = await self._answer(request)
        except STORAGE_ERRORS as exc:
            self.ctx.log.error("storage unavailable; transmission not accepted", error=str(exc))
            return web.Response(
                status=503,
                text="storage unavailable: nothing was stored or acknowledged; retry later\n",
                headers={"Retry-After": "5"},
            )
        status = 200 if answer.refused is None else _HTTP_STATUS.get(answer.refused, 422)
        return _ack_response(answer.ack, status)

    async def _answer(self, request: web.Request) -> Answer:
        ctx = self.ctx
        peer, der = request[PINNED]
        body = b""
        try:
            # A connection kept alive across a reload was admitted under the old CRL.
            revoked = ctx.trust.state.peer_refusal(der)
            if revoked is not None:
                raise Rejection(Reason.CERTIFICATE_REVOKED, revoked)
            if request.content_type not in XML_TYPES:
                raise Rejection(
                    Reason.UNSUPPORTED_MEDIA_TYPE, "transmissions must be sent as application/xml"
                )
            limit = ctx.config.peer.max_body_bytes
            if request.content_length is not None and request.content_length > limit:
                raise Rejection(Reason.BODY_TOO_LARGE, f"body exceeds {limit} bytes")
            body = await self._read_body(request, limit)
        except Rejection as rejection:
            return await self.reception.refuse(rejection, body, peer.code, None)
        return await self.reception.receive(body, peer.code)

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The whole body, within `limit` bytes and `peer.body_timeout_seconds`. Its pieces
        are copied into one buffer as they arrive (a list of pieces joined at the end would
        hold the body twice and scatter the heap with pieces of every size)."""
        buffer = bytearray()
        try:
            async with asyncio.timeout(self.ctx.config.peer.body_timeout_seconds):
                async for chunk in request.content.iter_any():
                    if len(buffer) + len(chunk) > limit:
                        raise Rejection(Reason.BODY_TOO_LARGE, f"body exceeds {limit} bytes")
                    buffer += chunk
        except TimeoutError as exc:
            raise Rejection(Reason.MALFORMED_XML, "the body did not arrive in time") from exc
        return bytes(buffer)


async def get_acknowledgement(request: web.Request) -> web.Response:
    """The signed acknowledgement we gave for a transmission, to its sender only: a sender
    that never got our answer (and gave up) can still obtain its proof of receipt. Reads
    only; a message we do not hold, or hold from someone else, is simply not found."""
    ctx = request.app[CONTEXT]
    peer, der = request[PINNED]
    if ctx.trust.state.peer_refusal(der) is not None:
        return web.Response(status=403, text=NOT_PINNED)
    msg = await ctx.store.messages.get(request.match_info["message_id"])
    if msg is None or msg.direction != "in" or msg.peer != peer.code or msg.ack_xml is None:
        return web.Response(status=404, text="no transmission of yours with this id\n")
    return _ack_response(msg.ack_xml)


async def health(request: web.Request) -> web.Response:
    """For pinned peers only (the admission middleware answers everyone else with 403)."""
    ctx = request.app[CONTEXT]
    seq, _ = await ctx.store.register.head()
    return web.json_response(
        {
            "status": "ok",
            "authority": ctx.config.authority,
            "register": {"sequence": seq},
            "computing": computing_versions(),
        }
    )


def peer_app(ctx: GatewayContext, keeper: DeadlineKeeper) -> web.Application:
    admission = Admission(ctx)
    app = web.Application(
        client_max_size=ctx.config.peer.max_body_bytes,
        middlewares=[ctx.metrics.http_middleware, admission.middleware],
    )
    app.on_shutdown.append(admission.close)
    app[CONTEXT] = ctx
    app[ADMISSION] = admission
    receiver = Receiver(ctx, keeper)
    app.router.add_post("/v1/transmissions", receiver.handle)
    app.router.add_get("/v1/acknowledgements/{message_id}", get_acknowledgement)
    app.router.add_get("/v1/health", health)
    return app
