"""The outcome of a delivery attempt (the outbound use case after the POST): the peer's
acknowledgement verified (signature, digest of what we sent, receiver identity) and checked
for what its signer can know, then recorded as the proof of transmission and time of receipt
(opening the time limits that run from it), or the failed attempt recorded and the next one
scheduled, or the message given up on. transport/delivery.py makes the attempts.

A validly signed acknowledgement can still say what its signer cannot know: a receipt time
outside the transmission's lifetime moves the legal time limits (gateway.core.acknowledgements).
Such an acknowledgement is refused like a failed attempt (retried, then reconciled) and an
administrator is told: an `acknowledgement-refused` register entry, a log warning, a metric."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import Any

from gateway.context import GatewayContext
from gateway.core.acknowledgements import Refusal, refusal
from gateway.core.conversations import outcome_of
from gateway.core.forms import FORM_TYPES
from gateway.core.policy import Header, Reason, Rejection
from gateway.core.register import Event
from gateway.service.cases import record_step
from gateway.service.deadline_keeper import DeadlineKeeper
from gateway.store.records import OutboxItem
from gateway.store.store import Transaction
from gateway.xml.envelope import (
    Acknowledgement,
    read_acknowledgement,
    read_form,
    read_header,
    validate_envelope,
)
from gateway.xml.forms import form_from_element
from gateway.xml.parser import parse_trusted, parse_untrusted
from gateway.xml.signature import verify

MAX_ACK_BYTES = 256 * 1024


class DeliveryError(Exception):
    """One attempt failed for a reason worth retrying; `retry_after`: the seconds the peer
    asked us to wait (HTTP 429 or 503 with Retry-After), if it did."""

    def __init__(self, text: str, retry_after: float | None = None) -> None:
        super().__init__(text)
        self.retry_after = retry_after


class AcknowledgementRefused(DeliveryError):
    """The peer's acknowledgement is validly signed but states what we do not accept."""

    def __init__(self, refused: Refusal, ack: Acknowledgement, ack_bytes: bytes) -> None:
        super().__init__(f"acknowledgement refused: {refused.reason.value}: {refused.text}")
        self.refused = refused
        self.ack = ack
        self.ack_bytes = ack_bytes


class Outcomes:
    """Records what became of each delivery attempt; one instance per delivery worker."""

    def __init__(self, ctx: GatewayContext, keeper: DeadlineKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self._random = random.SystemRandom()

    def verify_ack(self, body: bytes, item: OutboxItem) -> Acknowledgement:
        root = parse_untrusted(body, max_bytes=MAX_ACK_BYTES, max_depth=16)
        validate_envelope(root)
        verified = verify(
            root, self.ctx.signer_authority, self.ctx.trust.state.signing_check(self.ctx.clock())
        )
        ack = read_acknowledgement(verified.root)
        if verified.signer_authority != item.peer or ack.sender != item.peer:
            raise Rejection(
                Reason.SIGNER_MISMATCH,
                f"acknowledgement signed by {verified.signer_authority} for {ack.sender}, "
                f"expected {item.peer}",
            )
        if ack.digest != item.digest:
            raise Rejection(Reason.SIGNATURE_INVALID, "acknowledgement digest is not ours")
        if ack.accepted and ack.message_id != item.message_id:
            raise Rejection(Reason.SIGNATURE_INVALID, "acknowledgement names another message")
        return ack

    def refusal(self, item: OutboxItem, ack: Acknowledgement) -> Refusal | None:
        """Whether a verified acknowledgement states what its signer can know (see
        gateway.core.acknowledgements): checked before anything of it is recorded."""
        return refusal(
            receipt_time=ack.receipt_time,
            receiver=ack.receiver,
            status=ack.status,
            reason_code=ack.reason_code,
            created=item.created_at,
            now=self.ctx.clock(),
            max_skew=timedelta(seconds=self.ctx.config.peer.max_clock_skew_seconds),
            local=self.ctx.config.authority,
        )

    async def register_refusal(
        self,
        tx: Transaction,
        item: OutboxItem,
        attempt: int,
        refused: Refusal,
        ack: Acknowledgement,
        ack_bytes: bytes,
        *,
        reconciled: bool,
    ) -> None:
        """The evidence of a refused acknowledgement: what it claimed, why it was refused.
        The acknowledgement itself is not stored (nothing it says is recorded as fact)."""
        await tx.register.append(
            time=self.ctx.clock(),
            event=Event.ACKNOWLEDGEMENT_REFUSED,
            direction="out",
            peer=item.peer,
            message_id=item.message_id,
            message_type=item.message_type,
            reference=item.filed[0],
            digest=item.digest,
            status="refused",
            reason=refused.reason.value,
            details=item.filed[1]
            | {
                "attempt": attempt,
                "text": refused.text,
                "acknowledgement_id": ack.acknowledgement_id[:64],
                "acknowledgement_sha256": hashlib.sha256(ack_bytes).hexdigest(),
                "stated_receipt_time": ack.receipt_time.isoformat(),
                "stated_status": ack.status,
            }
            | ({"reconciliation": True} if reconciled else {}),
        )

    def alert(self, item: OutboxItem, refused: Refusal, *, reconciled: bool) -> None:
        self.ctx.metrics.acknowledgements_refused.labels(
            peer=item.peer, reason=refused.reason.value
        ).inc()
        self.ctx.log.warning(
            "acknowledgement refused: the peer signed what it cannot know",
            message_id=item.message_id,
            peer=item.peer,
            reason=refused.reason.value,
            detail=refused.text,
            reconciliation=reconciled,
        )

    async def record_ack(
        self,
        item: OutboxItem,
        attempt: int,
        ack: Acknowledgement,
        ack_bytes: bytes,
        *,
        reconciled: bool = False,
    ) -> None:
        state = "delivered" if ack.accepted else "refused"
        # What the message says, read before the unit of work: units run one after another
        # on the writer, and parsing there made every unit behind this one wait (issue 20).
        sent = _sent(item) if ack.accepted else None
        async with self.ctx.store.transaction() as tx:
            # The outbox row is this delivery's claim. Gone means the outcome is recorded
            # already: by another node whose claim outlived ours (several nodes on one
            # database), or by us on an earlier attempt. Record nothing twice; only a proof
            # arriving after we gave up corrects the state, as reconciliation does.
            if not await tx.outbox.finish(item.message_id) and not reconciled:
                current = await tx.messages.get(item.message_id)
                if current is None or current.state != "undeliverable":
                    self.ctx.log.info(
                        "acknowledgement already recorded", message_id=item.message_id
                    )
                    return
                reconciled = True
            await tx.messages.update(
                item.message_id,
                state=state,
                ack_xml=ack_bytes,
                receipt_time=ack.receipt_time,
                reason_code=ack.reason_code,
                reason_text=ack.reason_text,
            )
            outcome = "accepted" if ack.accepted else "refused"
            tx.after_commit(self.ctx.metrics.deliveries.labels(outcome=outcome).inc)
            if sent is not None:
                await self._start_deadlines(tx, item, sent, ack)
            await tx.register.append(
                time=self.ctx.clock(),
                event=Event.DELIVERED if ack.accepted else Event.REFUSED_BY_PEER,
                direction="out",
                peer=item.peer,
                message_id=item.message_id,
                message_type=item.message_type,
                reference=item.filed[0],
                digest=item.digest,
                status=ack.status,
                reason=ack.reason_code,
                details=item.filed[1]
                | {
                    "attempt": attempt,
                    "acknowledgement_id": ack.acknowledgement_id,
                    "receipt_time": ack.receipt_time.isoformat(),
                    "peer_register_head": {"sequence": ack.head_sequence, "hash": ack.head_hash},
                }
                | ({"reconciled_after": "undeliverable"} if reconciled else {}),
            )

    async def _start_deadlines(
        self,
        tx: Transaction,
        item: OutboxItem,
        sent: tuple[Header, dict[str, Any]],
        ack: Acknowledgement,
    ) -> None:
        """The message moves our case now that the receiver has it (a form that opens a case
        opened it when submitted), and its time limits run from the receipt time in the
        acknowledgement: on both sides the same step at the same instant."""
        header, form = sent
        conv = await tx.conversations.get(header.case)
        if conv is None:
            return
        outcome = outcome_of(header.message_type, form)
        if not FORM_TYPES[header.message_type].opens:
            try:
                conv, outcome = await record_step(
                    tx, header, form, ack.receipt_time, conv.legal_basis
                )
            except Rejection as exc:
                # The receiver took it, by the same rules: our case moved meanwhile in a way
                # the receiver's had not. Its limits still run; the difference is an error.
                self.ctx.log.error(
                    "a delivered message does not fit our case; its state is unchanged",
                    message_id=item.message_id,
                    case=header.case,
                    reason=exc.reason.value,
                    detail=exc.text,
                )
        await self.keeper.on_message(tx, header, form, outcome, conv, ack.receipt_time)

    async def failed(
        self,
        item: OutboxItem,
        attempt: int,
        error: str,
        refused: AcknowledgementRefused | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Record a failed attempt and schedule the next (or give up); a refused
        acknowledgement's register entry goes in the same transaction. The next attempt is
        never earlier than a Retry-After the peer gave (at most
        `delivery.max_retry_after_seconds`, so that no peer can park our message)."""
        ctx = self.ctx
        policy = ctx.config.delivery.retry
        now = ctx.clock()
        give_up = policy.exhausted(attempt)
        next_at: datetime | None = None
        if not give_up:
            delay = policy.delay(attempt, self._random.random())
            if retry_after is not None:
                cap = ctx.config.delivery.max_retry_after_seconds
                delay = max(delay, min(retry_after, cap))
            next_at = now + timedelta(seconds=delay)
        async with ctx.store.transaction() as tx:
            # As in record_ack: no claim left, nothing to record (the outcome is known).
            if give_up:
                claimed = await tx.outbox.finish(item.message_id)
            else:
                assert next_at is not None
                claimed = await tx.outbox.reschedule(item.message_id, attempt, next_at, error)
            if not claimed:
                return
            if not give_up:  # a retry is due later: the delivery worker looks when it is
                tx.after_commit(ctx.wake_delivery.set)
            tx.after_commit(ctx.metrics.deliveries.labels(outcome="failed").inc)
            if refused is not None:
                await self.register_refusal(
                    tx,
                    item,
                    attempt,
                    refused.refused,
                    refused.ack,
                    refused.ack_bytes,
                    reconciled=False,
                )
            if give_up:
                await tx.messages.update(item.message_id, state="undeliverable", reason_text=error)
            await tx.register.append(
                time=now,
                event=Event.UNDELIVERABLE if give_up else Event.DELIVERY_FAILED,
                direction="out",
                peer=item.peer,
                message_id=item.message_id,
                message_type=item.message_type,
                reference=item.filed[0],
                digest=item.digest,
                status="undeliverable" if give_up else "retrying",
                details=item.filed[1]
                | {"attempt": attempt, "error": error[:500]}
                | ({"next_attempt_at": next_at.isoformat()} if next_at else {}),
            )
        # A message given up on needs an administrator (retry or cancel it: the outbox
        # admin API and `gateway outbox`): an error, not a warning.
        (ctx.log.error if give_up else ctx.log.warning)(
            "message undeliverable: retries exhausted" if give_up else "delivery attempt failed",
            message_id=item.message_id,
            peer=item.peer,
            attempt=attempt,
            error=error,
            gave_up=give_up,
        )


def _sent(item: OutboxItem) -> tuple[Header, dict[str, Any]]:
    """The header and form of a message we signed and stored (trusted bytes)."""
    root = parse_trusted(item.signed_xml)
    _, form = form_from_element(read_form(root))
    return read_header(root), form
