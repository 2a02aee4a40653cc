"""Applying a message to its case inside a store transaction, the same way for a submission
and for a received transmission."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from gateway.core.annexes import (
    check_group_reply,
    check_non_confirmation,
    check_opening_or_reply,
    reconsider_any_ground,
)
from gateway.core.conversations import (
    Conversation,
    Step,
    advance,
    check_reconsiderable,
    criteria_for,
    message_rules,
    outcome_of,
)
from gateway.core.deadlines import pack_named, packaged_rule_set
from gateway.core.forms import FORM_TYPES
from gateway.core.policy import (
    NO_SUCH_MESSAGE,
    Header,
    Reason,
    Rejection,
    check_form_rules,
    check_urgency,
)
from gateway.core.register import Event
from gateway.core.tracking import opens_rule
from gateway.store.records import StoredMessage
from gateway.store.store import Transaction
from gateway.xml.envelope import read_form
from gateway.xml.forms import form_from_element
from gateway.xml.parser import parse_trusted


async def record_step(
    tx: Transaction,
    header: Header,
    form: Mapping[str, Any],
    now: datetime,
    legal_basis: str,
    *,
    save: bool = True,
) -> tuple[Conversation, str | None]:
    """Advance the case of `header` (or open it under `legal_basis`) and mark a request
    answered; raises Rejection when the conversation rules refuse the message. With `save`
    false the case is only checked, not moved (a message we send moves our case when its
    acknowledgement comes: `move_on_delivery`)."""
    check_form_rules(header.message_type, form)
    urgent_rule = packaged_rule_set(pack_named(legal_basis)).rules.get("take_charge_reply_urgent")
    check_urgency(
        header.message_type,
        header.urgent,
        form,
        urgent_rule.requested_grounds if urgent_rule else None,
        urgent_rule.requested_article if urgent_rule else "",
    )
    target = None
    if header.in_reply_to is not None:
        stored = await tx.messages.get(header.in_reply_to)
        target = stored.as_prior() if stored is not None else None
        if target is None or not target.between(header.sender, header.receiver):
            raise Rejection(Reason.NO_MATCHING_REQUEST, NO_SUCH_MESSAGE)
        if stored is not None and stored.answered_by == header.message_id:
            target = replace(target, answered=False)  # answered by this very message
    current = await tx.conversations.get(header.case)
    outcome = outcome_of(header.message_type, dict(form))
    if header.message_type == "info-reply" and outcome == "refusal" and current is not None:
        _check_refusable(stored.signed_xml if stored else None, current)
    if header.message_type == "reconsideration-request" and current is not None:
        await _check_reconsiderable(tx, current)
    if header.message_type == "transfer-notice" and isinstance(
        form.get("groupTransferReference"), str
    ):
        await _check_group_reference(tx, header, str(form["groupTransferReference"]))
    if header.message_type == "group-transfer-reply" and current is not None:
        check_group_reply(current.legal_basis, _stored_form(stored), form)
    if header.message_type == "transfer-reply" and current is not None:
        _check_answerable_transfer(_stored_form(stored), current)
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
    if current is None:
        updated = replace(updated, criteria=criteria_for(pack_named(legal_basis), registered(form)))
    check_opening_or_reply(updated.legal_basis, updated.criteria is None, header.message_type, form)
    if header.message_type == "take-back-confirmation" and current is not None:
        ceased = form.get("responsibilityCeased")
        cessation = ceased.get("cessation") if isinstance(ceased, Mapping) else None
        check_non_confirmation(updated.legal_basis, cessation, await _notification(tx, current))
    if save:
        await tx.conversations.save(updated, now, new=current is None)
    if FORM_TYPES[header.message_type].is_reply and header.in_reply_to is not None:
        await tx.messages.update(header.in_reply_to, answered_by=header.message_id)
    return updated, outcome


def registered(form: Mapping[str, Any]) -> date | None:
    """When the application was registered, as the form says: its `registrationDate`, else
    the application date it gives (None: it gives neither)."""
    application = form.get("application")
    if not isinstance(application, Mapping):
        return None
    text = application.get("registrationDate") or application.get("date")
    return date.fromisoformat(text) if isinstance(text, str) else None


def _check_refusable(request_xml: bytes | None, case: Conversation) -> None:
    """Only a request for the grounds of the applicant's claim may be refused (proposal
    Art. 40(3), 2024/1351 Art. 51(3): they need the applicant's consent); any other request
    for information is answered (issue 16, defect 11). The article is the pack's."""
    items: list[Any] = []
    if request_xml is not None:
        _, request = form_from_element(read_form(parse_trusted(request_xml)))
        items = list(request.get("item") or [])
    if "grounds-of-claim" in items:
        return
    article = next(
        (
            r.article
            for r in message_rules(case.legal_basis).by_type.get("info-reply", ())
            if r.outcome == "refusal"
        ),
        "the case's rules",
    )
    raise Rejection(
        Reason.CONVERSATION_RULE,
        f"only a request for the grounds of the applicant's claim may be refused ({article}); "
        "this request asks for other information, which is given",
    )


async def _check_group_reference(tx: Transaction, header: Header, reference: str) -> None:
    """An escort transfer form that belongs to a group transfer names the group transfer
    form (Annex VI) its sender sent to its receiver (2025/2055 Art. 26(2))."""
    group = await tx.conversations.get(reference)
    if (
        group is not None
        and group.kind == "group-transfer"
        and (group.requesting, group.requested) == (header.sender, header.receiver)
    ):
        return
    raise Rejection(
        Reason.CONVERSATION_RULE,
        "groupTransferReference names no group transfer form (Annex VI) sent by the "
        "transferring State to the receiving State (2025/2055 Art. 26(2))",
    )


def _stored_form(stored: StoredMessage | None) -> Mapping[str, Any] | None:
    """The form of a stored message; None when there is none or its payload was erased."""
    if stored is None or stored.signed_xml is None:
        return None
    return form_from_element(read_form(parse_trusted(stored.signed_xml)))[1]


def _check_answerable_transfer(notice: Mapping[str, Any] | None, case: Conversation) -> None:
    """A transfer reply answers a transfer form that asks the receiving State's answer: one
    that opens its 5 days by the case's pack (2025/2055 Art. 25(5), 26(3): a supervised
    departure received at a location, an escort outside a group transfer; not a form that
    goes to the designated location). An erased payload is not checked."""
    if notice is None:
        return
    kind = notice.get("kind")
    if opens_rule(case.legal_basis, "transfer-notice", kind, notice, "transfer_form_answer"):
        return
    raise Rejection(
        Reason.CONVERSATION_RULE,
        "a transfer-reply answers only a transfer form (transfer notice `arrangements`) that "
        "asks the receiving State's answer: a supervised departure in which the person is "
        "received at a location, or a transfer under escort outside a group transfer "
        "(2025/2055 Art. 25(5), 26(3))",
    )


async def _case_form(
    tx: Transaction, case: Conversation, message_type: str
) -> Mapping[str, Any] | None:
    """The form of the case's (last) stored message of `message_type`; None when there is
    none or its payload was erased."""
    found = None
    for message in await tx.messages.of_case(case.reference):
        if message.message_type == message_type and message.signed_xml is not None:
            found = message.signed_xml
    if found is None:
        return None
    return form_from_element(read_form(parse_trusted(found)))[1]


async def _notification(tx: Transaction, case: Conversation) -> Mapping[str, Any] | None:
    return await _case_form(tx, case, "take-back-notification")


async def _check_reconsiderable(tx: Transaction, case: Conversation) -> None:
    """The non-confirmation's ground, and whether the notification was one of 2025/2055 Art.
    12(6), read from the case's stored forms (an erased payload is not checked)."""
    notification = await _notification(tx, case)
    any_ground = notification is not None and reconsider_any_ground(case.legal_basis, notification)
    reply = await _case_form(tx, case, "take-back-confirmation")
    ceased = reply.get("responsibilityCeased") if reply is not None else None
    cessation = ceased.get("cessation") if isinstance(ceased, Mapping) else None
    check_reconsiderable(case.legal_basis, cessation, any_ground)


async def erase_payload(
    tx: Transaction, message_id: str, now: datetime, because_of: str | None
) -> None:
    """Art. 40(8): erase a message's payload; its register entries and digest remain, so the
    register still verifies and still proves what was exchanged."""
    stored = await tx.messages.get(message_id)
    if stored is None or stored.signed_xml is None:
        return
    await tx.messages.update(message_id, signed_xml=None)
    await tx.register.append(
        time=now,
        event=Event.PAYLOAD_ERASED,
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
