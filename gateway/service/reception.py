"""Reception (the inbound use case): a peer's signed transmission, from its bytes to its
signed acknowledgement.

Order of checks: safe parse -> schema -> signature (signer pinned for the TLS peer and the
header's sender) -> header (receiver, clock, reference) -> attachments -> form -> sealed
health data -> conversation rules, then one unit of work (case step, time limits, register
entry, acknowledgement, message). A refusal leaves a register entry and a signed negative
acknowledgement, nothing else. transport/inbound.py is the HTTP around it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from gateway.context import GatewayContext
from gateway.core.conversations import (
    Conversation,
    basis_label,
    basis_version,
    case_bases,
    kept_basis,
)
from gateway.core.deadlines import pack_named
from gateway.core.operational import is_operational
from gateway.core.policy import Header, Reason, Rejection, check_inbound
from gateway.core.register import Event, RegisterEntry, filed_under
from gateway.service import operational_reception as operational
from gateway.service.cases import erase_payload, record_step
from gateway.service.deadline_keeper import DeadlineKeeper
from gateway.store.records import DuplicateMessage, NewMessage, StoredMessage
from gateway.store.store import STORAGE_ERRORS
from gateway.xml.envelope import (
    Acknowledgement,
    build_acknowledgement,
    check_attachments,
    read_carried_files,
    read_form,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import FormError, form_from_element
from gateway.xml.parser import parse_untrusted
from gateway.xml.sealed import check_envelope, is_sealed, pinned_certificates, read_sealed
from gateway.xml.signature import signed_content

LEGACY_BASIS = "com-2020-610"
"""What every case ran under before each message named its basis."""


@dataclass(frozen=True)
class Answer:
    """The signed acknowledgement to send back; `refused`: the reason, if it refuses."""

    ack: bytes
    refused: Reason | None = None


class Reception:
    """Receives inbound transmissions; one instance per gateway."""

    def __init__(self, ctx: GatewayContext, keeper: DeadlineKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper

    async def receive(self, body: bytes, peer: str) -> Answer:
        """Take one transmission's bytes from the TLS peer `peer`. Storage failures are
        raised (nothing is acknowledged that is not stored); every other failure is a
        refusal with a register entry."""
        ctx = self.ctx
        state = ctx.trust.state
        header: Header | None = None
        try:
            limit = ctx.config.peer.max_body_bytes
            root = parse_untrusted(body, max_bytes=limit, max_depth=ctx.config.peer.max_depth)
            validate_envelope(root)
            signed = signed_content(root, ctx.signer_authority, state.signing_check(ctx.clock()))
            # Only the signed bytes are read from here on: a large received tree goes before
            # they are parsed, and they go once parsed.
            del root
            verified = signed.read()
            del signed
            header = read_header(verified.root)
            if verified.signer_authority != header.sender or verified.signer_authority != peer:
                raise Rejection(
                    Reason.SIGNER_MISMATCH,
                    f"signed by {verified.signer_authority}, but the header names "
                    f"{header.sender} and the TLS peer is {peer}",
                )
            digest = hashlib.sha256(body).hexdigest()
            # A repeat of a stored message is not looked for ahead (a read of its own for
            # every transmission, issue 20): it is found where the first copy's answer is
            # needed, when this copy is refused (its clock, say, is too old by now) or when
            # the unit of work meets its message id or its case moved on (_accept).
            try:
                if is_operational(header.message_type):
                    examined = operational.examine(ctx, header, verified.root, peer)
                    del verified
                    return await self._accept_operational(examined, header, body, digest, peer)
                form = self._examine(header, verified.root, peer)
                del verified  # the form is read: the signed tree (megabytes) goes first
                return await self._accept(header, form, body, digest, peer)
            except (DuplicateMessage, Rejection):
                repeat = await self._repeat(header.message_id, digest)
                if repeat is None:
                    raise
                return repeat
        except Rejection as rejection:
            return await self.refuse(rejection, body, peer, header)
        except STORAGE_ERRORS:
            raise
        except Exception:
            # Untrusted input that a library fails on in a way nobody foresaw (the fuzzer
            # finds such cases): still a refusal with a register entry, never a bare 500.
            ctx.log.exception("transmission could not be processed", peer=peer)
            return await self.refuse(
                Rejection(Reason.MALFORMED_XML, "the transmission could not be read"),
                body,
                peer,
                header,
            )

    def _examine(self, header: Header, signed_root: etree._Element, peer: str) -> dict[str, Any]:
        """The signed transmission's form, once the header, the attachments and the form
        itself pass every check that needs no database."""
        ctx = self.ctx
        if header.legal_basis is not None and header.legal_basis not in case_bases():
            raise Rejection(
                Reason.LEGAL_BASIS_UNKNOWN,
                "the transmission names no legal basis this gateway runs cases under; known: "
                + ", ".join(case_bases()),
            )
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
            form_el, read_carried_files(signed_root), ctx.config.peer.max_attachment_bytes
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
        return form

    async def _accept(
        self, header: Header, form: dict[str, Any], body: bytes, digest: str, peer: str
    ) -> Answer:
        ctx = self.ctx
        receipt = ctx.clock()
        async with ctx.store.transaction() as tx:
            conv = await tx.conversations.get(header.case)
            basis = kept_basis(conv, self._basis(header, conv))
            after, outcome = await record_step(tx, header, form, receipt, basis_label(basis))
            late = await self.keeper.on_message(tx, header, form, outcome, after, receipt)
            if header.message_type == "erasure-notice" and header.in_reply_to is not None:
                await erase_payload(tx, header.in_reply_to, receipt, header.message_id)
            filed, form_reference = filed_under(header.reference, header.case)
            entry = await tx.register.append(
                time=receipt,
                event=Event.RECEIVED,
                direction="in",
                peer=peer,
                message_id=header.message_id,
                message_type=header.message_type,
                reference=filed,
                digest=digest,
                status="accepted",
                details=(self._rules_versions(header) or {}) | form_reference or None,
                acknowledge=self._acceptance(header, peer, digest, receipt),
            )
            tx.after_commit(ctx.metrics.transmissions_received.labels("accepted", "").inc)
            # Last: a repeat of this message id, or a concurrent copy, fails here
            # (DuplicateMessage) and everything above is rolled back with it.
            await tx.messages.insert(
                NewMessage(
                    message_id=header.message_id,
                    direction="in",
                    peer=peer,
                    message_type=header.message_type,
                    reference=header.reference,
                    in_reply_to=header.in_reply_to,
                    urgent=header.urgent,
                    created_at=header.created,
                    stored_at=receipt,
                    digest=digest,
                    signed_xml=body,
                    state="received",
                    receipt_time=receipt,
                    case_reference=header.case,
                    ack_xml=None,  # the acknowledgement, once made (write_head)
                    reason_code="late-reply" if late else None,
                )
            )
        ctx.log.info(
            "transmission received",
            message_id=header.message_id,
            type=header.message_type,
            peer=peer,
            register_seq=entry.sequence,
        )
        return Answer(entry.acknowledgement())

    async def _accept_operational(
        self, examined: operational.Examined, header: Header, body: bytes, digest: str, peer: str
    ) -> Answer:
        """A message of the operational family (no case, no limits), stored with its item."""
        receipt = self.ctx.clock()
        ack = await operational.accept(
            self.ctx,
            examined,
            header,
            body,
            digest,
            peer,
            receipt,
            self._acceptance(header, peer, digest, receipt),
        )
        return Answer(ack)

    def _basis(self, header: Header, conv: Conversation | None) -> str:
        """The basis the message names. A message that names none was signed before every
        message carried it (an upgrade with transmissions still queued): it is taken only for
        a case that exists and runs under the proposal, as every such case did."""
        if header.legal_basis is not None:
            return header.legal_basis
        if conv is not None and pack_named(conv.legal_basis) == LEGACY_BASIS:
            return LEGACY_BASIS
        raise Rejection(
            Reason.LEGAL_BASIS_UNKNOWN,
            "the transmission names no legal basis; known: " + ", ".join(case_bases()),
        )

    def _rules_versions(self, header: Header) -> dict[str, object] | None:
        """Both gateways of a case must compute the same days: a peer computing with another
        version of the case's rule pack is recorded (and logged), not refused."""
        if header.legal_basis is None:
            return None
        ours = basis_version(header.legal_basis)
        if header.rules_version == ours:
            return None
        self.ctx.log.warning(
            "peer computes time limits with another version of the rule pack",
            peer=header.sender,
            legal_basis=header.legal_basis,
            peer_version=header.rules_version,
            our_version=ours,
        )
        return {"rules_version": {"peer": header.rules_version, "ours": ours}}

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

    async def _repeat(self, message_id: str, digest: str) -> Answer | None:
        """The answer to a repeat of a stored message, as the first copy was answered once
        that answer is durable: a copy whose message id is taken (DuplicateMessage), or that
        the first moved the case past (a Rejection), or whose check failed where the first
        passed (its clock is older now). None if no message has this id: the refusal stands.
        Raises MESSAGE_ID_REUSED for other bytes under the same id."""
        await self.ctx.store.committed()
        existing = await self.ctx.store.messages.get(message_id)
        return None if existing is None else self._duplicate(existing, digest)

    def _duplicate(self, existing: StoredMessage, digest: str) -> Answer:
        """The answer given the first time, to a repeat of the same bytes."""
        if existing.direction != "in" or existing.digest != digest or existing.ack_xml is None:
            raise Rejection(
                Reason.MESSAGE_ID_REUSED,
                f"message id {existing.message_id} is already used for a different transmission",
            )
        self.ctx.log.info("duplicate transmission answered", message_id=existing.message_id)
        return Answer(existing.ack_xml)

    async def refuse(
        self,
        rejection: Rejection,
        body: bytes,
        peer: str | None,
        header: Header | None,
    ) -> Answer:
        """A register entry with the reason, and a signed negative acknowledgement."""
        ctx = self.ctx
        digest = hashlib.sha256(body).hexdigest()
        now = ctx.clock()
        async with ctx.store.transaction() as tx:
            entry = await tx.register.append(
                time=now,
                event=Event.REJECTED,
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
            counter = ctx.metrics.transmissions_received.labels("rejected", rejection.reason.value)
            tx.after_commit(counter.inc)
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
        return Answer(ack, rejection.reason)

    def _acceptance(
        self, header: Header, peer: str, digest: str, receipt: datetime
    ) -> Callable[[RegisterEntry], bytes]:
        """Makes the signed acknowledgement of `header`'s message once its `received` entry's
        place in the register is fixed, at the commit: it states that entry as our head, the
        peer's witness of our register."""
        authority = self.ctx.config.authority
        return lambda fixed: self._sign_ack(
            Acknowledgement.of_acceptance(
                header.message_id, authority, peer, digest, receipt, (fixed.sequence, fixed.hash)
            )
        )

    def _sign_ack(self, ack: Acknowledgement) -> bytes:
        return self.ctx.signer.sign(build_acknowledgement(ack))
