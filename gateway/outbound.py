"""Submission of a form by a case system: JSON -> form XML -> envelope -> schema -> signature,
then message, outbox row and register entry in one transaction."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.context import GatewayContext
from gateway.core.forms import UnknownFormType, form_type
from gateway.core.policy import Header, Reason, Rejection, check_outbound
from gateway.core.references import InvalidReference, Reference
from gateway.xml.envelope import build_transmission, validate_envelope
from gateway.xml.forms import FormError, form_to_element

SUBMISSION_FIELDS = frozenset(
    {"type", "receiver", "form", "case_number", "eurodac_reference", "in_reply_to", "urgent"}
)


class SubmissionError(ValueError):
    """The case system's submission is wrong; `field` names the JSON field at fault."""

    def __init__(self, field: str | None, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Submitted:
    message_id: str
    reference: str
    digest: str
    register_sequence: int


def _string(data: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise SubmissionError(f"/{key}", f"'{key}' is required")
        return None
    if not isinstance(value, str) or not value:
        raise SubmissionError(f"/{key}", f"'{key}' must be a non-empty string")
    return value


async def submit(ctx: GatewayContext, data: Mapping[str, Any]) -> Submitted:
    unknown = set(data) - SUBMISSION_FIELDS
    if unknown:
        first = sorted(unknown)[0]
        raise SubmissionError(f"/{first}", f"unknown field '{first}'")
    type_name = _string(data, "type")
    receiver = _string(data, "receiver")
    assert type_name is not None and receiver is not None
    try:
        ft = form_type(type_name)
    except UnknownFormType as exc:
        raise SubmissionError("/type", str(exc)) from exc
    form = data.get("form")
    if not isinstance(form, Mapping):
        raise SubmissionError("/form", "'form' must be a JSON object")
    urgent = data.get("urgent", False)
    if not isinstance(urgent, bool):
        raise SubmissionError("/urgent", "'urgent' must be true or false")
    try:
        form_el = form_to_element(ft, form)
    except FormError as exc:
        raise SubmissionError("/form" + (exc.field or ""), str(exc)) from exc

    in_reply_to = _string(data, "in_reply_to", required=False)
    local = ctx.local
    if ft.is_reply:
        if in_reply_to is None:
            raise SubmissionError("/in_reply_to", f"a {ft.name} must name the request it answers")
        for key in ("case_number", "eurodac_reference"):
            if key in data:
                raise SubmissionError(
                    f"/{key}", f"a reply carries the request's reference; '{key}' is not allowed"
                )
        request = await ctx.store.get_message(in_reply_to)
        if request is None:
            raise SubmissionError("/in_reply_to", f"no message {in_reply_to} is known")
        reference = request.reference
    else:
        if in_reply_to is not None:
            raise SubmissionError("/in_reply_to", f"a {ft.name} does not answer a message")
        case_number = _string(data, "case_number")
        assert case_number is not None
        try:
            reference = str(
                Reference.build(
                    local.member_state,
                    ft.type_digit,
                    case_number,
                    _string(data, "eurodac_reference", required=False),
                )
            )
        except InvalidReference as exc:
            raise SubmissionError("/case_number", str(exc)) from exc

    now = ctx.clock()
    header = Header(
        message_id=str(uuid.uuid4()),
        reference=reference,
        message_type=ft.name,
        sender=local.code,
        receiver=receiver,
        created=now,
        in_reply_to=in_reply_to,
        urgent=urgent,
    )
    root = build_transmission(header, form_el)
    try:
        validate_envelope(root)
    except Rejection as exc:
        raise SubmissionError(None, exc.text, exc.reason.value) from exc
    signed = ctx.signer.sign(root)
    digest = hashlib.sha256(signed).hexdigest()
    async with ctx.store.transaction() as tx:
        request_msg = await tx.get_message(in_reply_to) if in_reply_to else None
        try:
            check_outbound(
                header, ctx.directory, None if request_msg is None else request_msg.as_prior()
            )
        except Rejection as exc:
            field = {
                Reason.WRONG_RECEIVER: "/receiver",
                Reason.REFERENCE_INVALID: "/case_number",
            }.get(exc.reason, "/in_reply_to")
            raise SubmissionError(field, exc.text, exc.reason.value) from exc
        if in_reply_to is not None:
            await tx.update_message(in_reply_to, answered_by=header.message_id)
        await tx.insert_message(
            message_id=header.message_id,
            direction="out",
            peer=receiver,
            message_type=ft.name,
            reference=reference,
            in_reply_to=in_reply_to,
            urgent=int(urgent),
            created_at=now,
            stored_at=now,
            digest=digest,
            signed_xml=signed,
            state="queued",
        )
        await tx.enqueue(header.message_id, now)
        entry = await tx.append_register(
            time=now,
            event="submitted",
            direction="out",
            peer=receiver,
            message_id=header.message_id,
            message_type=ft.name,
            reference=reference,
            digest=digest,
            status="queued",
        )
    ctx.wake_delivery.set()
    ctx.log.info(
        "form submitted",
        message_id=header.message_id,
        type=ft.name,
        peer=receiver,
        register_seq=entry.sequence,
    )
    return Submitted(header.message_id, reference, digest, entry.sequence)
