"""The peer-facing server: POST /v1/transmissions takes one signed transmission and answers
with a signed acknowledgement of receipt; GET /v1/health.

Order of checks: pinned TLS identity -> media type and size -> safe parse -> schema ->
signature (signer pinned for the TLS peer and the header's sender) -> conversation rules ->
one transaction (message, register entry, acknowledgement). A refusal leaves a register
entry and a signed negative acknowledgement, nothing else."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from lxml import etree

from gateway.cases import erase_payload, record_step
from gateway.context import GatewayContext
from gateway.core.directory import Authority
from gateway.core.policy import Header, Reason, Rejection, check_inbound
from gateway.deadlines import DeadlineKeeper
from gateway.pki.certs import fingerprint_der
from gateway.store.store import STORAGE_ERRORS, DuplicateMessage, StoredMessage
from gateway.transport.tls import peer_certificate
from gateway.trust import TrustState
from gateway.xml.envelope import (
    Acknowledgement,
    build_acknowledgement,
    check_attachments,
    read_attachments,
    read_form,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import FormError, form_from_element
from gateway.xml.parser import parse_untrusted
from gateway.xml.sealed import check_envelope, is_sealed, pinned_certificates, read_sealed
from gateway.xml.signature import verify

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


NOT_PINNED = "not a pinned peer\n"
PINNED: web.RequestKey[tuple[Authority, bytes | None]] = web.RequestKey("pinned-peer", tuple)
"""The (authority, certificate DER) the admission middleware identified."""


def pinned_peer(state: TrustState, transport: Any) -> tuple[Authority | None, bytes | None]:
    """The authority whose pinned TLS certificate the other end presented (or None), and
    that certificate's DER, for the revocation check."""
    der = peer_certificate(transport)
    return (state.directory.by_tls_fingerprint(fingerprint_der(der)) if der else None), der


class Receiver:
    """Processes one inbound transmission; one instance per gateway."""

    def __init__(self, ctx: GatewayContext, keeper: DeadlineKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one transmission. If our storage fails (disk full, read-only, database
        down) the answer is 503 and no acknowledgement: we acknowledge only what we stored,
        and the sender retries the same message id later."""
        try:
            return await self._handle(request)
        except STORAGE_ERRORS as exc:
            self.ctx.log.error("storage unavailable; transmission not accepted", error=str(exc))
            return web.Response(
                status=503,
                text="storage unavailable: nothing was stored or acknowledged; retry later\n",
                headers={"Retry-After": "5"},
            )

    async def _handle(self, request: web.Request) -> web.Response:
        ctx = self.ctx
        state = ctx.trust.state
        peer, der = request[PINNED]
        peer_code = peer.code
        body = b""
        header: Header | None = None
        try:
            # A connection kept alive across a reload was admitted under the old CRL.
            revoked = state.peer_refusal(der)
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
            root = parse_untrusted(body, max_bytes=limit, max_depth=ctx.config.peer.max_depth)
            validate_envelope(root)
            verified = verify(root, ctx.signer_authority, state.signing_check(ctx.clock()))
            header = read_header(verified.root)
            if verified.signer_authority != header.sender or verified.signer_authority != peer.code:
                raise Rejection(
                    Reason.SIGNER_MISMATCH,
                    f"signed by {verified.signer_authority}, but the header names "
                    f"{header.sender} and the TLS peer is {peer.code}",
                )
            return await self._accept(header, verified.root, body, peer.code)
        except Rejection as rejection:
            return await self._reject(rejection, body, peer_code, header)
        except STORAGE_ERRORS:
            raise
        except Exception:
            # Untrusted input that a library fails on in a way nobody foresaw (the fuzzer
            # finds such cases): still a refusal with a register entry, never a bare 500.
            ctx.log.exception("transmission could not be processed", peer=peer_code)
            return await self._reject(
                Rejection(Reason.MALFORMED_XML, "the transmission could not be read"),
                body,
                peer_code,
                header,
            )

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.ctx.config.peer.body_timeout_seconds):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        raise Rejection(Reason.BODY_TOO_LARGE, f"body exceeds {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise Rejection(Reason.MALFORMED_XML, "the body did not arrive in time") from exc
        return b"".join(chunks)

    async def _accept(
        self, header: Header, signed_root: etree._Element, body: bytes, peer: str
    ) -> web.Response:
        ctx = self.ctx
        digest = hashlib.sha256(body).hexdigest()
        existing = await ctx.store.get_message(header.message_id)
        if existing is not None:
            return self._duplicate(existing, digest)
        check_inbound(
            header,
            local=ctx.config.authority,
            peer=peer,
            directory=ctx.directory,
            now=ctx.clock(),
            max_skew=timedelta(seconds=ctx.config.peer.max_clock_skew_seconds),
        )
        form_el = read_form(signed_root)
        check_attachments(
            form_el, read_attachments(signed_root), ctx.config.peer.max_attachment_bytes
        )
        try:
            body_type, form = form_from_element(form_el)
        except FormError as exc:
            raise Rejection(Reason.SCHEMA_INVALID, str(exc)) from exc
        if body_type.name != header.message_type:
            raise Rejection(
                Reason.SCHEMA_INVALID,
                f"the body holds a {body_type.name}, the header announces {header.message_type}",
            )
        if body_type.name == "health-certificate":
            self._check_sealed(form_el, peer)
        receipt = ctx.clock()
        try:
            async with ctx.store.transaction() as tx:
                after, outcome = await record_step(
                    tx, header, form, receipt, self.keeper.rules.legal_basis
                )
                late = await self.keeper.on_message(tx, header, form, outcome, after, receipt)
                if header.message_type == "erasure-notice" and header.in_reply_to is not None:
                    await erase_payload(tx, header.in_reply_to, receipt, header.message_id)
                entry = await tx.append_register(
                    time=receipt,
                    event="received",
                    direction="in",
                    peer=peer,
                    message_id=header.message_id,
                    message_type=header.message_type,
                    reference=header.reference,
                    digest=digest,
                    status="accepted",
                )
                ack = self._sign_ack(
                    Acknowledgement(
                        acknowledgement_id=str(uuid.uuid4()),
                        message_id=header.message_id,
                        sender=ctx.config.authority,
                        receiver=peer,
                        digest=digest,
                        receipt_time=receipt,
                        status="accepted",
                        reason_code=None,
                        reason_text=None,
                        head_sequence=entry.sequence,
                        head_hash=entry.hash,
                    )
                )
                # Last: a concurrent copy of this message id fails here (DuplicateMessage) and
                # everything above is rolled back with it.
                await tx.insert_message(
                    message_id=header.message_id,
                    direction="in",
                    peer=peer,
                    message_type=header.message_type,
                    reference=header.reference,
                    in_reply_to=header.in_reply_to,
                    urgent=int(header.urgent),
                    created_at=header.created,
                    stored_at=receipt,
                    digest=digest,
                    signed_xml=body,
                    state="received",
                    receipt_time=receipt,
                    case_reference=header.case,
                    ack_xml=ack,
                    reason_code="late-reply" if late else None,
                )
        except (DuplicateMessage, Rejection):
            # A concurrent copy of the same transmission may have won the race: its message id
            # is taken (DuplicateMessage), or it moved the case on, so that this one breaks the
            # conversation rules. Then this is a repeat, answered as the copy was answered once
            # that answer is durable; otherwise the refusal stands.
            await ctx.store.committed()
            existing = await ctx.store.get_message(header.message_id)
            if existing is None:
                raise
            return self._duplicate(existing, digest)
        ctx.log.info(
            "transmission received",
            message_id=header.message_id,
            type=header.message_type,
            peer=peer,
            register_seq=entry.sequence,
        )
        return _ack_response(ack)

    def _check_sealed(self, form_el: etree._Element, peer: str) -> None:
        """Art. 39(3)-(4): a health certificate is readable by health practitioners only, so
        it must arrive sealed for at least one of ours, as a CMS EnvelopedData whose recipient
        infos are exactly the certificates it lists (ours and the sender's practitioners',
        as the directory publishes them)."""
        if not is_sealed(form_el):
            raise Rejection(
                Reason.SCHEMA_INVALID,
                "a health certificate must travel sealed (CMS EnvelopedData) for the receiving "
                "health practitioners, never in clear (Art. 39(3))",
            )
        sealed = read_sealed(form_el)
        ours = pinned_certificates(self.ctx.local)
        if not ours.keys() & set(sealed.recipients):
            raise Rejection(
                Reason.ROLE_NOT_ALLOWED,
                "the health certificate is not sealed for any encryption certificate the "
                f"directory publishes for {self.ctx.config.authority}'s health practitioners",
            )
        sender = self.ctx.directory.get(peer)
        check_envelope(sealed, ours | (pinned_certificates(sender) if sender else {}))

    def _duplicate(self, existing: StoredMessage, digest: str) -> web.Response:
        if existing.direction != "in" or existing.digest != digest or existing.ack_xml is None:
            raise Rejection(
                Reason.MESSAGE_ID_REUSED,
                f"message id {existing.message_id} is already used for a different transmission",
            )
        self.ctx.log.info("duplicate transmission answered", message_id=existing.message_id)
        return _ack_response(existing.ack_xml)

    async def _reject(
        self,
        rejection: Rejection,
        body: bytes,
        peer: str | None,
        header: Header | None,
    ) -> web.Response:
        ctx = self.ctx
        digest = hashlib.sha256(body).hexdigest()
        now = ctx.clock()
        async with ctx.store.transaction() as tx:
            entry = await tx.append_register(
                time=now,
                event="rejected",
                direction="in",
                peer=peer,
                message_id=header.message_id if header else None,
                message_type=header.message_type if header else None,
                reference=header.reference if header else None,
                digest=digest,
                status="rejected",
                reason=rejection.reason.value,
                details={"text": rejection.text},
            )
        ctx.log.warning(
            "transmission rejected",
            reason=rejection.reason.value,
            detail=rejection.text,
            peer=peer,
            message_id=header.message_id if header else None,
            register_seq=entry.sequence,
        )
        ack = self._sign_ack(
            Acknowledgement(
                acknowledgement_id=str(uuid.uuid4()),
                message_id=header.message_id if header else None,
                sender=ctx.config.authority,
                receiver=peer,
                digest=digest,
                receipt_time=now,
                status="rejected",
                reason_code=rejection.reason.value,
                reason_text=rejection.text,
                head_sequence=entry.sequence,
                head_hash=entry.hash,
            )
        )
        return _ack_response(ack, _HTTP_STATUS.get(rejection.reason, 422))

    def _sign_ack(self, ack: Acknowledgement) -> bytes:
        return self.ctx.signer.sign(build_acknowledgement(ack))


class RefusalRecorder:
    """Writes refusal register entries off the request path (a flood must not wait on the
    database), keeping each write task alive until it is done."""

    def __init__(self, ctx: GatewayContext, reason: Reason, event: str) -> None:
        self.ctx = ctx
        self.reason = reason
        self.event = event
        """The log line of each entry written."""
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, details: dict[str, object], **log: object) -> None:
        task = asyncio.get_running_loop().create_task(self._write(details, log))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, details: dict[str, object], log: dict[str, object]) -> None:
        try:
            async with self.ctx.store.transaction() as tx:
                await tx.append_register(
                    time=self.ctx.clock(),
                    event="rejected",
                    direction="in",
                    status="rejected",
                    reason=self.reason.value,
                    details=details,
                )
        except Exception:
            self.ctx.log.exception("could not record a refusal", reason=self.reason.value)
        self.ctx.log.warning(self.event, **log)


class TlsAudit:
    """Records refused TLS handshakes (no client certificate, another CA, an old protocol) in
    the register. Bounded: beyond `per_minute` entries a minute, refusals are counted and the
    count is carried by the next entry, so a flood cannot bloat the register."""

    def __init__(self, ctx: GatewayContext, per_minute: int = 30) -> None:
        self.ctx = ctx
        self.per_minute = per_minute
        self._recent: deque[float] = deque()
        self._suppressed = 0
        self._recorder = RefusalRecorder(ctx, Reason.TLS_REFUSED, "tls handshake refused")

    def refused(self, detail: str) -> None:
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 60:
            self._recent.popleft()
        if len(self._recent) >= self.per_minute:
            self._suppressed += 1
            return
        self._recent.append(now)
        details: dict[str, object] = {"text": f"TLS handshake refused: {detail}"[:300]}
        if self._suppressed:
            details["suppressed_since_last"] = self._suppressed
            self._suppressed = 0
        self._recorder.record(details, detail=details["text"])


class UnpinnedAudit:
    """Refuses, before any handler, every request of a client whose TLS certificate (issued
    by the network CA) no authority of the directory pins: a bare 403 that says nothing, no
    signed refusal, and a register entry that cannot be flooded (issue 14, item 5). The first
    refusal of a client in an interval of `peer.refusal_summary_seconds` is recorded at once;
    the others of that interval are counted and recorded as one entry with their count when
    the interval ends."""

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self._counts: dict[str, int] = {}
        self._recorder = RefusalRecorder(ctx, Reason.UNKNOWN_PEER, "unpinned client refused")

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        peer, der = pinned_peer(self.ctx.trust.state, request.transport)
        if peer is not None:
            request[PINNED] = (peer, der)
            return await handler(request)
        self.refused(fingerprint_der(der) if der else "none")
        return web.Response(status=403, text=NOT_PINNED)

    def refused(self, fingerprint: str) -> None:
        self.ctx.metrics.unpinned_refusals.inc()
        if fingerprint in self._counts:
            self._counts[fingerprint] += 1
            return
        self._counts[fingerprint] = 0
        self._record(fingerprint, 1, "first refusal of this client in the interval")
        loop = asyncio.get_running_loop()
        loop.call_later(self.ctx.config.peer.refusal_summary_seconds, self._close, fingerprint)

    def _close(self, fingerprint: str) -> None:
        more = self._counts.pop(fingerprint, 0)
        if more:
            self._record(fingerprint, more, "further refusals of this client in the interval")

    def _record(self, fingerprint: str, count: int, what: str) -> None:
        details: dict[str, object] = {
            "text": "the TLS client certificate is not pinned for any authority of the "
            f"directory ({what})",
            "client_certificate_sha256": fingerprint,
            "count": count,
            "interval_seconds": self.ctx.config.peer.refusal_summary_seconds,
        }
        self._recorder.record(details, client=fingerprint, count=count)


async def get_acknowledgement(request: web.Request) -> web.Response:
    """The signed acknowledgement we gave for a transmission, to its sender only: a sender
    that never got our answer (and gave up) can still obtain its proof of receipt. Reads
    only; a message we do not hold, or hold from someone else, is simply not found."""
    ctx = request.app[CONTEXT]
    peer, der = request[PINNED]
    if ctx.trust.state.peer_refusal(der) is not None:
        return web.Response(status=403, text=NOT_PINNED)
    msg = await ctx.store.get_message(request.match_info["message_id"])
    if msg is None or msg.direction != "in" or msg.peer != peer.code or msg.ack_xml is None:
        return web.Response(status=404, text="no transmission of yours with this id\n")
    return _ack_response(msg.ack_xml)


async def health(request: web.Request) -> web.Response:
    """For pinned peers only (the admission middleware answers everyone else with 403)."""
    ctx = request.app[CONTEXT]
    seq, _ = await ctx.store.register_head()
    return web.json_response(
        {"status": "ok", "authority": ctx.config.authority, "register": {"sequence": seq}}
    )


def peer_app(ctx: GatewayContext, keeper: DeadlineKeeper) -> web.Application:
    app = web.Application(
        client_max_size=ctx.config.peer.max_body_bytes,
        middlewares=[UnpinnedAudit(ctx).middleware],
    )
    app[CONTEXT] = ctx
    receiver = Receiver(ctx, keeper)
    app.router.add_post("/v1/transmissions", receiver.handle)
    app.router.add_get("/v1/acknowledgements/{message_id}", get_acknowledgement)
    app.router.add_get("/v1/health", health)
    return app
