"""Applying a message to its case inside a store transaction, the same way for a submission
and for a received transmission."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.core.conversations import Conversation, Step, advance, outcome_of
from gateway.core.forms import FORM_TYPES
from gateway.core.policy import NO_SUCH_MESSAGE, Header, Reason, Rejection, check_form_rules
from gateway.store.store import Transaction


async def record_step(
    tx: Transaction,
    header: Header,
    form: Mapping[str, Any],
    now: datetime,
    legal_basis: str,
) -> tuple[Conversation, str | None]:
    """Advance the case of `header` (or open it under `legal_basis`) and mark a request
    answered; raises Rejection when the conversation rules refuse the message."""
    check_form_rules(header.message_type, form)
    target = None
    if header.in_reply_to is not None:
        stored = await tx.get_message(header.in_reply_to)
        target = stored.as_prior() if stored is not None else None
        if target is None or not target.between(header.sender, header.receiver):
            raise Rejection(Reason.NO_MATCHING_REQUEST, NO_SUCH_MESSAGE)
    current = await tx.get_conversation(header.case)
    outcome = outcome_of(header.message_type, dict(form))
    updated = advance(
        current,
        Step(
            message_type=header.message_type,
            sender=header.sender,
            receiver=header.receiver,
            reference=header.reference,
            outcome=outcome,
            target=target,
        ),
        legal_basis,
    )
    await tx.save_conversation(updated, now, new=current is None)
    if FORM_TYPES[header.message_type].is_reply and header.in_reply_to is not None:
        await tx.update_message(header.in_reply_to, answered_by=header.message_id)
    return updated, outcome


async def erase_payload(
    tx: Transaction, message_id: str, now: datetime, because_of: str | None
) -> None:
    """Art. 40(8): erase a message's payload; its register entries and digest remain, so the
    register still verifies and still proves what was exchanged."""
    stored = await tx.get_message(message_id)
    if stored is None or stored.signed_xml is None:
        return
    await tx.update_message(message_id, signed_xml=None)
    await tx.append_register(
        time=now,
        event="payload-erased",
        direction=stored.direction,
        peer=stored.peer,
        message_id=message_id,
        message_type=stored.message_type,
        reference=stored.case,
        digest=stored.digest,
        status="erased",
        reason="erasure-notice" if because_of else "retention",
        details={"notice": because_of} if because_of else {},
    )
