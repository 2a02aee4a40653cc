"""Submission of a form by a case system: JSON -> form XML -> envelope -> schema -> signature,
then message, outbox row and register entry in one transaction."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from cryptography import x509

from gateway.context import GatewayContext
from gateway.core.conversations import basis_label, basis_version, case_bases, kept_basis
from gateway.core.deadlines import pack_named
from gateway.core.forms import FormType, UnknownFormType, form_type
from gateway.core.policy import Header, Reason, Rejection, check_outbound, check_sender_role
from gateway.core.references import ART5, InvalidReference
from gateway.core.register import Event, filed_under
from gateway.pki.certs import CertificateError
from gateway.pki.purposes import HEALTH_ENCRYPTION
from gateway.service.advice import (
    RequestedDateError,
    check_requested_date,
    transfer_form_timing,
    transfers_wait,
)
from gateway.service.cases import record_step
from gateway.service.deadline_keeper import record_request_limit, rule_set
from gateway.store.records import (
    DuplicateMessage,
    NewMessage,
    OutboxItem,
    PendingEntry,
    StoredMessage,
)
from gateway.store.store import Transaction
from gateway.xml.envelope import (
    DESCRIBED_TWICE,
    AttachmentFile,
    build_transmission,
    check_attachments,
    duplicate_descriptor,
    validate_envelope,
)
from gateway.xml.forms import FormError, form_to_element, json_pointer
from gateway.xml.sealed import consent_basis, seal

SUBMISSION_FIELDS = frozenset(
    {
        "type",
        "receiver",
        "form",
        "case_number",
        "eurodac_reference",
        "in_reply_to",
        "case",
        "urgent",
        "attachments",
        "legal_basis",
        "priority",
        "extended_by_information",
    }
)
_FIELD_OF_REASON = {
    Reason.WRONG_RECEIVER: "/receiver",
    Reason.REFERENCE_INVALID: "/case",
    Reason.ATTACHMENT_INVALID: "/attachments",
    Reason.UNEXPECTED_IN_REPLY_TO: "/in_reply_to",
    Reason.NO_MATCHING_REQUEST: "/in_reply_to",
    Reason.ALREADY_ANSWERED: "/in_reply_to",
    Reason.CONSENT_MISSING: "/form/writtenConsent",
    Reason.URGENCY_INCOMPLETE: "/form/urgency",
    Reason.ROLE_NOT_ALLOWED: "/receiver",
    Reason.LEGAL_BASIS_MISMATCH: "/legal_basis",
}


class SubmissionError(ValueError):
    """The case system's submission is wrong; `field` names the JSON field at fault."""

    def __init__(
        self,
        field: str | None,
        message: str,
        rule: str | None = None,
        errors: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.errors = errors
        """Where a form breaks its schema in several places: every (field, rule)."""


@dataclass(frozen=True)
class Submitted:
    message_id: str
    reference: str
    digest: str
    register_sequence: int
    warnings: tuple[str, ...] = ()
    replayed: bool = False
    """True when an idempotency key named an earlier, identical submission."""


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def submission_digest(data: Mapping[str, Any], role: str) -> str:
    """What makes two submissions "the same" for an idempotency key: the JSON content, key
    order aside, and the role submitting it."""
    return hashlib.sha256(
        orjson.dumps({"role": role, "submission": data}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def _replay(existing: StoredMessage, digest: str) -> Submitted:
    if existing.submission_digest != digest:
        raise SubmissionError(
            None,
            "this Idempotency-Key was used for a different submission; use a new key for a "
            "new message",
            "idempotency-key-reused",
        )
    return Submitted(existing.message_id, existing.reference, existing.digest, 0, (), True)


def _string(data: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise SubmissionError(f"/{key}", f"'{key}' is required")
        return None
    if not isinstance(value, str) or not value:
        raise SubmissionError(f"/{key}", f"'{key}' must be a non-empty string")
    return value


def attachment_files(data: Mapping[str, Any]) -> list[AttachmentFile]:
    """The submission's files ({fileName, mediaType, content (base64)}), or a SubmissionError
    naming the one at fault."""
    raw = data.get("attachments", [])
    if not isinstance(raw, list):
        raise SubmissionError("/attachments", "'attachments' must be a JSON array")
    out = []
    for i, item in enumerate(raw):
        where = f"/attachments/{i}"
        if not isinstance(item, Mapping) or set(item) != {"fileName", "mediaType", "content"}:
            raise SubmissionError(where, "each attachment is {fileName, mediaType, content}")
        try:
            content = base64.b64decode(str(item["content"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SubmissionError(f"{where}/content", "content must be base64") from exc
        out.append(AttachmentFile(str(item["fileName"]), str(item["mediaType"]), content))
    return out


async def _case_of(
    ctx: GatewayContext, ft: FormType, data: Mapping[str, Any], in_reply_to: str | None
) -> str | None:
    """The case a message belongs to (None: it opens one)."""
    case = _string(data, "case", required=False)
    if ft.opens:
        for key in ("case", "in_reply_to"):
            if key in data:
                raise SubmissionError(f"/{key}", f"a {ft.name} opens a new case")
        return None
    for key in ("eurodac_reference", "priority"):
        if key in data:
            raise SubmissionError(f"/{key}", f"'{key}' belongs to the request opening a case")
    if in_reply_to is not None:
        target = await ctx.store.messages.get(in_reply_to)
        if target is None:
            raise SubmissionError("/in_reply_to", "no message with this id is known")
        if case is not None and case != target.case:
            raise SubmissionError("/case", f"message {in_reply_to} belongs to case {target.case}")
        case = target.case
    if case is None:
        raise SubmissionError("/case", f"a {ft.name} needs the reference of its case in 'case'")
    return case


def _reference_for(
    ctx: GatewayContext,
    ft: FormType,
    data: Mapping[str, Any],
    form: Mapping[str, Any],
    case: str | None,
    basis: str,
) -> tuple[str, str | None]:
    """(the message's own reference, the case it belongs to if that differs), in the
    reference scheme of the case's basis (1560/2003 Art. 20, 2025/2055 Art. 5)."""
    scheme = rule_set(basis).references
    member_state = ctx.local.member_state
    priority = data.get("priority", False)
    if not isinstance(priority, bool):
        raise SubmissionError("/priority", "'priority' must be true or false")
    if priority and scheme.scheme != ART5:
        raise SubmissionError(
            "/priority", f"only references of {ART5} mark priority; {basis} uses {scheme.scheme}"
        )
    if case is None and ft.name in scheme.group:
        if "case_number" in data:
            raise SubmissionError(
                "/case_number", f"a {ft.name} is numbered by its persons and date ({ART5}(4))"
            )
        try:
            return scheme.build_group(member_state, ft.name, form), None
        except InvalidReference as exc:
            raise SubmissionError("/form", str(exc)) from exc
    if case is None:
        case_number = _string(data, "case_number")
        assert case_number is not None
        try:
            reference = scheme.build(
                member_state,
                scheme.type_of(ft.name, ft.type_digit, form),
                case_number,
                priority=scheme.has_priority(ft.name, form, priority),
                eurodac_reference=_string(data, "eurodac_reference", required=False),
            )
        except InvalidReference as exc:
            raise SubmissionError(_reference_field(exc), str(exc)) from exc
        return reference, None
    if not scheme.allowed_types(ft.name, ft.type_digit) or ft.is_reply:
        if "case_number" in data:
            raise SubmissionError("/case_number", f"a {ft.name} carries its case's reference")
        return case, None
    try:
        of_case = scheme.parse(case)
        number = _string(data, "case_number", required=False) or of_case.case_number
        assert number is not None
        own = scheme.build(
            member_state,
            scheme.type_of(ft.name, ft.type_digit, form),
            number,
            priority=scheme.has_priority(ft.name, form, False) or of_case.priority,
        )
    except InvalidReference as exc:
        raise SubmissionError(_reference_field(exc), str(exc)) from exc
    return own, case


def _reference_field(exc: InvalidReference) -> str:
    """The submission field a reference error is about: the form's field that chooses the
    type, else the case number."""
    text = str(exc)
    return "/form/purpose" if "'purpose'" in text else "/case_number"


def _health_recipients(ctx: GatewayContext, receiver: str) -> list[x509.Certificate]:
    """The receiving authority's health practitioners' encryption certificates that are valid
    now (issued by the network CA for that purpose, unrevoked), and our own practitioners',
    so that they can read back what they sent."""
    state, now = ctx.trust.state, ctx.clock()
    chosen: dict[str, list[x509.Certificate]] = {}
    for code in (receiver, ctx.config.authority):
        auth = ctx.directory.get(code)
        certs = []
        for pem in auth.health_encryption_certificates if auth else ():
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
            try:
                state.anchors.check(cert, now, purpose=HEALTH_ENCRYPTION)
                if state.revocations is not None:
                    state.revocations.check(cert)
            except CertificateError:
                continue
            certs.append(cert)
        chosen[code] = certs
    if not chosen[receiver]:
        raise Rejection(
            Reason.ROLE_NOT_ALLOWED,
            f"the directory publishes no valid health encryption certificate for {receiver}'s "
            "health practitioners, so a health certificate cannot be sealed for them (Art. 39)",
        )
    return chosen[receiver] + chosen[ctx.config.authority]


async def submit(
    ctx: GatewayContext,
    data: Mapping[str, Any],
    role: str,
    idempotency_key: str | None = None,
    principal: str | None = None,
) -> Submitted:
    """Validate, sign and queue a submission. With an `idempotency_key`, repeating the same
    submission returns the original message (nothing new is signed or sent). `principal`:
    the named user submitting, recorded in the register's `submitted` entry."""
    if idempotency_key is None:
        return await _submit_new(ctx, data, role, None, None, principal)
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        raise SubmissionError(
            None, "Idempotency-Key must be 1-200 visible ASCII characters", "idempotency-key"
        )
    key_digest = submission_digest(data, role)
    existing = await ctx.store.messages.by_idempotency_key(idempotency_key)
    if existing is not None:
        return _replay(existing, key_digest)
    try:
        return await _submit_new(ctx, data, role, idempotency_key, key_digest, principal)
    except (SubmissionError, DuplicateMessage):
        # A concurrent request with the same key may have won the race (its case now exists,
        # or its key is taken): then this one is a repeat, not an error.
        await ctx.store.committed()
        existing = await ctx.store.messages.by_idempotency_key(idempotency_key)
        if existing is not None:
            return _replay(existing, key_digest)
        raise


def _read_fields(
    data: Mapping[str, Any],
) -> tuple[FormType, str, Mapping[str, Any], bool, str | None]:
    """The submission's own fields, each checked: the form type, the receiver, the form
    object, the urgency and the message a reply answers (said first for a reply without it:
    a reply's form is checked against what it answers)."""
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
    in_reply_to = _string(data, "in_reply_to", required=False)
    if (ft.is_reply or ft.targets_message) and in_reply_to is None:
        raise SubmissionError(
            "/in_reply_to",
            f"a {ft.name} concerns an earlier message: give its message id in in_reply_to",
        )
    return ft, receiver, form, urgent, in_reply_to


async def _submit_new(
    ctx: GatewayContext,
    data: Mapping[str, Any],
    role: str,
    idempotency_key: str | None,
    key_digest: str | None,
    principal: str | None = None,
) -> Submitted:
    ft, receiver, form, urgent, in_reply_to = _read_fields(data)
    try:
        form_el = form_to_element(ft, form)
    except FormError as exc:
        errors = tuple(("/form" + (f if f != "/" else ""), rule) for f, rule in exc.problems)
        raise SubmissionError("/form" + (exc.field or ""), str(exc), errors=errors) from exc
    twice = duplicate_descriptor(form_el)
    if twice is not None:
        raise SubmissionError(
            f"/form{json_pointer(ft, form_el, twice)}/fileName",
            DESCRIBED_TWICE,
            Reason.ATTACHMENT_INVALID.value,
        )

    try:
        check_sender_role(ft, role)
    except Rejection as exc:
        raise SubmissionError("/type", exc.text, exc.reason.value) from exc
    attachments = attachment_files(data)
    if "extended_by_information" in data and ft.name != "take-charge-request":
        raise SubmissionError(
            "/extended_by_information", "only a take charge request's limit is extended so"
        )
    case = await _case_of(ctx, ft, data, in_reply_to)
    basis = await _legal_basis_for(ctx, ft, data, case)
    reference, case_reference = _reference_for(ctx, ft, data, form, case, basis)
    local = ctx.local

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
        case_reference=case_reference,
        sender_role=ft.sender_role,
        legal_basis=basis,
        rules_version=basis_version(basis),
    )
    try:
        check_requested_date(ctx, ft, form, header)
    except RequestedDateError as exc:
        raise SubmissionError(exc.field, exc.text, exc.rule) from exc
    try:
        check_outbound(header, ctx.directory)
        if ft.name == "health-certificate":
            form_el = seal(form_el, consent_basis(form), _health_recipients(ctx, receiver))
        root = build_transmission(header, form_el, attachments)
        check_attachments(form_el, attachments, ctx.config.peer.max_attachment_bytes)
        validate_envelope(root)
    except Rejection as exc:
        raise SubmissionError(_FIELD_OF_REASON.get(exc.reason), exc.text, exc.reason.value) from exc
    signed = ctx.signer.sign(root)
    digest = hashlib.sha256(signed).hexdigest()
    handoff = ctx.handoff
    lease = handoff.reserve() if handoff is not None else None
    try:
        entry, warning = await _store_submission(
            ctx,
            header,
            ft,
            form,
            signed,
            digest,
            idempotency_key,
            key_digest,
            lease,
            _string(data, "extended_by_information", required=False),
            principal,
        )
    except BaseException:
        if lease is not None and handoff is not None:
            handoff.release()
        raise
    if lease is not None and handoff is not None:
        # Durable now, and leased to the worker: it sends at once, no claim round trip.
        handoff.hand_over(
            OutboxItem(
                header.message_id,
                receiver,
                digest,
                signed,
                0,
                header.created,
                ft.name,
                reference,
                header.case,
            )
        )
    else:
        ctx.wake_delivery.set()
    ctx.log.info(
        "form submitted",
        message_id=header.message_id,
        type=ft.name,
        peer=receiver,
        register_seq=entry.sequence,
    )
    return Submitted(
        header.message_id,
        reference,
        digest,
        entry.sequence,
        tuple(
            w
            for w in (
                warning,
                transfers_wait(ctx, ft, form, header),
                *transfer_form_timing(ctx, ft, form, header),
            )
            if w
        ),
    )


async def _legal_basis_for(
    ctx: GatewayContext, ft: FormType, data: Mapping[str, Any], case: str | None
) -> str:
    """The rule pack the message's case runs under. A form that opens a case opens it under
    the basis the submission names, or `deadlines.legal_basis`; every later message of the
    case runs under the basis its case was opened under, and naming another is refused."""
    named = _string(data, "legal_basis", required=False)
    known = case_bases()
    if named is not None and named not in known:
        raise SubmissionError(
            "/legal_basis",
            f"no case can run under this legal basis; known: {', '.join(known)}",
            Reason.LEGAL_BASIS_UNKNOWN.value,
        )
    if case is None:
        return named or ctx.config.deadlines.legal_basis
    conv = await ctx.store.conversations.get(case)
    if conv is None:
        return named or ctx.config.deadlines.legal_basis  # refused below: no such case
    try:
        return kept_basis(conv, named or pack_named(conv.legal_basis))
    except Rejection as exc:
        raise SubmissionError("/legal_basis", exc.text, exc.reason.value) from exc


async def _check_late_information(
    tx: Transaction, header: Header, form: Mapping[str, Any], now: datetime
) -> None:
    """Information given after the reply limit must say why it is late (proposal Art.
    40(5), 2024/1351 Art. 51(5), 604/2013 Art. 34(5); issue 16, defect 11)."""
    if header.message_type != "info-reply" or header.in_reply_to is None:
        return
    information = form.get("information")
    if not isinstance(information, Mapping) or information.get("lateJustification"):
        return
    limits = await tx.deadlines.find(
        case=header.case, rule="info_reply", opened_by=header.in_reply_to, limit=10
    )
    late = [d for d in limits if d.state == "expired" or now >= d.expires_at]
    if late:
        raise SubmissionError(
            "/form/information/lateJustification",
            f"the reply limit ended on {late[0].due_date}: information given later must "
            "justify the delay",
            Reason.CONVERSATION_RULE.value,
        )


async def _store_submission(
    ctx: GatewayContext,
    header: Header,
    ft: FormType,
    form: Mapping[str, Any],
    signed: bytes,
    digest: str,
    idempotency_key: str | None,
    key_digest: str | None,
    lease: timedelta | None,
    information_case: str | None = None,
    principal: str | None = None,
) -> tuple[PendingEntry, str | None]:
    """Message, outbox row and `submitted` entry: one unit of work, durable on return."""
    now, receiver, reference = header.created, header.receiver, header.reference
    basis = header.legal_basis or ctx.config.deadlines.legal_basis
    async with ctx.store.transaction() as tx:
        await _check_late_information(tx, header, form, now)
        try:
            # Only a form that opens a case moves it now; any other moves the case when its
            # acknowledgement comes, at the receipt time, as on the receiving side (issue 16,
            # defect 7): until then the case shows it in `awaiting_delivery`.
            await record_step(tx, header, form, now, basis_label(basis), save=ft.opens)
        except Rejection as exc:
            field = _FIELD_OF_REASON.get(exc.reason, "/type")
            raise SubmissionError(field, exc.text, exc.reason.value) from exc
        await tx.messages.insert(
            NewMessage(
                message_id=header.message_id,
                direction="out",
                peer=receiver,
                message_type=ft.name,
                reference=reference,
                in_reply_to=header.in_reply_to,
                urgent=header.urgent,
                created_at=now,
                stored_at=now,
                digest=digest,
                signed_xml=signed,
                state="queued",
                case_reference=header.case,
                idempotency_key=idempotency_key,
                submission_digest=key_digest,
            )
        )
        await tx.outbox.enqueue(header.message_id, now, now + lease if lease is not None else None)
        try:
            warning = await record_request_limit(
                tx, ctx, rule_set(basis), header, form, now, information_case
            )
        except Rejection as exc:
            raise SubmissionError("/extended_by_information", exc.text, exc.reason.value) from exc
        filed, form_reference = filed_under(reference, header.case)
        entry = await tx.register.append(
            time=now,
            event=Event.SUBMITTED,
            direction="out",
            peer=receiver,
            message_id=header.message_id,
            message_type=ft.name,
            reference=filed,
            digest=digest,
            status="queued",
            details=form_reference or None,
            principal=principal,
        )
    return entry, warning
