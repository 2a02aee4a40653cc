"""Who may send what to whom, and whether a transmission fits the conversation it claims to
belong to. Pure decisions: the shell looks up the facts and acts on the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gateway.core.deadlines import DeadlineError, pack_named, packaged_rule_set
from gateway.core.directory import Directory
from gateway.core.forms import FORM_TYPES, FormType
from gateway.core.references import (
    ART20,
    ART20_SCHEME,
    InvalidReference,
    ReferenceScheme,
    parse_any,
)


class Reason(StrEnum):
    """Reason codes of negative acknowledgements and register rejections (a public interface)."""

    TLS_REFUSED = "tls-refused"
    UNKNOWN_PEER = "unknown-peer"
    BODY_TOO_LARGE = "body-too-large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    MALFORMED_XML = "malformed-xml"
    DOCTYPE_FORBIDDEN = "doctype-forbidden"
    TOO_DEEP = "too-deep"
    SCHEMA_INVALID = "schema-invalid"
    SIGNATURE_MISSING = "signature-missing"
    SIGNATURE_MULTIPLE = "signature-multiple"
    SIGNATURE_LOCATION = "signature-location"
    SIGNATURE_REFERENCE = "signature-reference"
    SIGNATURE_ALGORITHM = "signature-algorithm"
    SIGNATURE_INVALID = "signature-invalid"
    SIGNER_UNKNOWN = "signer-unknown"
    SIGNER_MISMATCH = "signer-mismatch"
    SENDER_MISMATCH = "sender-mismatch"
    WRONG_RECEIVER = "wrong-receiver"
    UNKNOWN_TYPE = "unknown-type"
    REFERENCE_INVALID = "reference-invalid"
    CLOCK_SKEW = "clock-skew"
    UNEXPECTED_IN_REPLY_TO = "unexpected-in-reply-to"
    NO_MATCHING_REQUEST = "no-matching-request"
    ALREADY_ANSWERED = "already-answered"
    MESSAGE_ID_REUSED = "message-id-reused"
    CONVERSATION_RULE = "conversation-rule"
    ATTACHMENT_INVALID = "attachment-invalid"
    ROLE_NOT_ALLOWED = "role-not-allowed"
    CONSENT_MISSING = "consent-missing"
    URGENCY_INCOMPLETE = "urgency-incomplete"
    SEALED_FORM_INVALID = "sealed-form-invalid"
    CERTIFICATE_REVOKED = "certificate-revoked"
    CERTIFICATE_EXPIRED = "certificate-expired"
    THROTTLED = "throttled"
    LEGAL_BASIS_UNKNOWN = "legal-basis-unknown"
    LEGAL_BASIS_MISMATCH = "legal-basis-mismatch"
    NOT_A_MEMBER = "not-a-network-member"  # a network's messages stay between its members
    PERSONAL_DATA = "personal-data"  # the operational family carries no personal data
    FORWARDING_FORBIDDEN = "forwarding-forbidden"  # a handling code forbids passing it on
    ITEM_UNKNOWN = "item-unknown"  # a withdrawal, permission or forwarding of no known item


class Rejection(Exception):
    """Input we refuse, at any layer (transport, parsing, signature, rules): `reason` is the
    code, str() the explanation. Texts never quote payload values (they may be personal data)."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Header:
    """The signed envelope header of a transmission."""

    message_id: str
    reference: str
    message_type: str
    sender: str
    receiver: str
    created: datetime
    in_reply_to: str | None = None
    urgent: bool = False
    case_reference: str | None = None
    """The case a follow-up form (types 6 and 7) belongs to, when its own reference differs."""
    sender_role: str = "case-officer"
    """The role that sent it (signed): health certificates come from health practitioners."""
    legal_basis: str | None = None
    """The rule pack the case runs under (signed), e.g. "2024-1351"; None only in
    transmissions stored before every message carried it."""
    rules_version: str | None = None
    """The version of that pack the sender computes time limits with."""
    item_id: str | None = None
    """The operational family: the item every copy of one distribution carries."""

    @property
    def case(self) -> str:
        """The conversation this message belongs to."""
        return self.case_reference or self.reference


@dataclass(frozen=True)
class PriorMessage:
    """What we hold about a message another one refers to."""

    message_id: str
    direction: str  # "in" or "out", from the holder's point of view
    message_type: str
    peer: str
    reference: str
    """The reference of the case (conversation) the message belongs to."""
    answered: bool

    def between(self, sender: str, receiver: str) -> bool:
        """Whether the message was exchanged between `sender` and `receiver`. Its holder is
        always one of the two (we only ever hold what we sent or received), so the other end
        must be the other one; a message of another pair is, to them, no message at all."""
        return self.peer in (sender, receiver)


NO_SUCH_MESSAGE = "the message named in InReplyTo is not known between these authorities"
"""The one answer to a message that names another one we do not hold for this pair: the same
whether it exists between others or not at all, so that it tells a third authority nothing."""


def check_outbound(header: Header, directory: Directory) -> None:
    """Rules a case system's submission must satisfy before we sign it."""
    if directory.get(header.receiver) is None:
        raise Rejection(Reason.WRONG_RECEIVER, "the receiver is not an authority of the directory")
    if header.receiver == header.sender:
        raise Rejection(Reason.WRONG_RECEIVER, "an authority cannot send to itself")
    check_reference(header)
    check_roles(header, directory)


def check_inbound(
    header: Header,
    *,
    local: str,
    peer: str,
    directory: Directory,
    now: datetime,
    max_skew: timedelta,
) -> None:
    """Rules a verified transmission must satisfy before we look at its case. `peer` is the
    authority identified by the TLS client certificate; the header comes from signed bytes."""
    if header.sender != peer:
        raise Rejection(
            Reason.SENDER_MISMATCH,
            f"header names sender {header.sender!r} but the TLS peer is {peer!r}",
        )
    if header.receiver != local:
        raise Rejection(
            Reason.WRONG_RECEIVER,
            f"transmission is addressed to {header.receiver!r}, not {local!r}",
        )
    if directory.get(header.sender) is None:
        raise Rejection(Reason.UNKNOWN_PEER, f"{header.sender!r} is not in the directory")
    if header.created.tzinfo is None:
        raise Rejection(Reason.SCHEMA_INVALID, "created time has no time zone")
    if abs(header.created - now) > max_skew:
        raise Rejection(
            Reason.CLOCK_SKEW,
            f"created time {header.created.isoformat()} is more than "
            f"{int(max_skew.total_seconds())} s from our clock",
        )
    check_reference(header)
    check_roles(header, directory)


def check_roles(header: Header, directory: Directory) -> None:
    """The signed sender role must be the one the form belongs to, and both ends must be
    marked for it in the directory: health certificates go from health practitioners to
    health practitioners only (Art. 39(3)-(4))."""
    ft = FORM_TYPES.get(header.message_type)
    if ft is None:
        raise Rejection(Reason.UNKNOWN_TYPE, f"unknown message type {header.message_type!r}")
    check_sender_role(ft, header.sender_role)
    for side, code in (("sender", header.sender), ("receiver", header.receiver)):
        auth = directory.get(code)
        if auth is not None and ft.sender_role not in auth.roles:
            raise Rejection(
                Reason.ROLE_NOT_ALLOWED,
                f"the {side} {code} is not marked for the {ft.sender_role} role in the "
                f"directory, so it may not {'send' if side == 'sender' else 'receive'} a "
                f"{ft.name} ({ft.article})",
            )


def check_sender_role(ft: FormType, role: str) -> None:
    """A form is sent by its own role only (health certificates by health practitioners,
    Art. 39(3)-(4); everything else by case officers): at submission and at reception."""
    if role != ft.sender_role:
        raise Rejection(
            Reason.ROLE_NOT_ALLOWED,
            f"a {ft.name} is sent by the {ft.sender_role} role, not {role} ({ft.article})",
        )


def reference_scheme(legal_basis: str | None) -> ReferenceScheme:
    """How the cases of `legal_basis` number their transmissions: its pack's scheme (1560/2003
    Art. 20 for a message signed before every message named its basis)."""
    if legal_basis is None:
        return ART20_SCHEME
    try:
        return packaged_rule_set(pack_named(legal_basis)).references
    except DeadlineError as exc:
        raise Rejection(Reason.LEGAL_BASIS_UNKNOWN, str(exc)) from exc


def check_reference(header: Header) -> None:
    """The reference scheme of the case's basis (1560/2003 Art. 20; 2025/2055 Art. 5 for
    cases under 2024/1351): requests and forms with a type of their own carry the sender's
    letters and that type; replies and notices carry the reference of their case."""
    ft = FORM_TYPES.get(header.message_type)
    if ft is None:
        raise Rejection(Reason.UNKNOWN_TYPE, f"unknown message type {header.message_type!r}")
    scheme = reference_scheme(header.legal_basis)
    allowed = scheme.allowed_types(ft.name, ft.type_digit)
    own_reference = ft.opens or (bool(allowed) and not ft.is_reply)
    try:
        # A form's own reference follows its basis's scheme; the case's reference it carries
        # or names is its case's, whichever scheme: matching the case checks it.
        ref = scheme.parse(header.reference) if own_reference else parse_any(header.reference)
        if header.case_reference is not None:
            parse_any(header.case_reference)
    except InvalidReference as exc:
        if header.legal_basis is None:
            # Only a message signed before every message named its basis may name none, and
            # such messages were numbered by Art. 20: the missing basis is the fault.
            raise Rejection(
                Reason.LEGAL_BASIS_UNKNOWN,
                f"the transmission names no legal basis, and its reference is not one of "
                f"{ART20} ({exc})",
            ) from exc
        raise Rejection(Reason.REFERENCE_INVALID, str(exc)) from exc
    if own_reference:
        if ref.type_code not in allowed:
            raise Rejection(
                Reason.REFERENCE_INVALID,
                f"reference type {ref.type_code} does not match {ft.name} "
                f"({' or '.join(sorted(allowed))}, {scheme.scheme})",
            )
        if ref.group != (ft.name in scheme.group):
            raise Rejection(
                Reason.REFERENCE_INVALID,
                f"a {ft.name}'s reference "
                + ("is" if ft.name in scheme.group else "is not")
                + f" a group transfer's (type, 'G', persons, date; {scheme.scheme}(4))",
            )
        if ref.member_state != header.sender[:2]:
            raise Rejection(
                Reason.REFERENCE_INVALID,
                f"a {ft.name}'s reference starts with the sender's letters "
                f"{header.sender[:2]!r} ({scheme.scheme})",
            )
    if ft.opens and header.case_reference not in (None, header.reference):
        raise Rejection(Reason.REFERENCE_INVALID, f"a {ft.name} opens its own case")
    if own_reference and not ft.opens and header.case_reference is None:
        raise Rejection(Reason.REFERENCE_INVALID, f"a {ft.name} must name the case it belongs to")
    if not own_reference and header.case_reference not in (None, header.reference):
        raise Rejection(Reason.REFERENCE_INVALID, f"a {ft.name} carries the reference of its case")
    names_message = ft.is_reply or ft.targets_message
    if names_message and header.in_reply_to is None:
        raise Rejection(
            Reason.NO_MATCHING_REQUEST, f"a {ft.name} must name the message it concerns"
        )
    if not names_message and header.in_reply_to is not None:
        raise Rejection(
            Reason.UNEXPECTED_IN_REPLY_TO, f"a {ft.name} does not answer another message"
        )


def check_urgency(
    message_type: str,
    urgent: bool,
    form: Mapping[str, Any],
    grounds: frozenset[str] | None = None,
    article: str = "",
) -> None:
    """An urgent take charge request states its reasons and the period within which a reply
    is requested (proposal Art. 29(2), 2024/1351 Art. 39(2), 604/2013 Art. 21(2); issue 16,
    defect 4): the header's urgent flag and the form's urgency, with its requested reply
    date, go together. Where the case's basis names the `grounds` an urgent reply may be
    asked on (2024/1351 Art. 39(2)), the urgency gives one of them."""
    if message_type != "take-charge-request":
        return
    urgency = form.get("urgency")
    if urgent and not (isinstance(urgency, Mapping) and urgency.get("requestedReplyDate")):
        raise Rejection(
            Reason.URGENCY_INCOMPLETE,
            "an urgent request states its reasons and the date by which a reply is requested "
            "(urgency.reasons, urgency.requestedReplyDate)",
        )
    if urgency is not None and not urgent:
        raise Rejection(
            Reason.URGENCY_INCOMPLETE,
            "a request giving the reasons for urgency must be sent as urgent",
        )
    if urgent and grounds is not None and isinstance(urgency, Mapping):
        if urgency.get("ground") not in grounds:
            raise Rejection(
                Reason.URGENCY_INCOMPLETE,
                f"an urgent reply may be asked only where the application was registered after "
                f"a {' or a '.join(g.replace('-', ' ') for g in sorted(grounds))} "
                f"({article or 'the case rules'}): give it in urgency.ground",
            )


def check_form_rules(message_type: str, form: Mapping[str, Any]) -> None:
    """Rules on a form's content that a schema cannot state."""
    persons = form.get("personsCovered")
    if persons is not None and persons != 1 + len(form.get("coveredFamilyMember") or []):
        raise Rejection(
            Reason.SCHEMA_INVALID,
            "personsCovered counts the person concerned and each coveredFamilyMember: the "
            "members of a family requested or notified together are in the same form "
            "(2025/2055 Art. 7(1), Art. 12(1), Annexes II and III)",
        )
    if message_type == "info-request":
        items = form.get("item", [])
        if "grounds-of-claim" in items and form.get("writtenConsent") is not True:
            raise Rejection(
                Reason.CONSENT_MISSING,
                "the grounds of the applicant's claim may be requested only with the "
                "applicant's written consent (Art. 40(3))",
            )
    if message_type in ("humanitarian-request", "dependants-request") and (
        form.get("writtenConsent") is not True
    ):
        raise Rejection(
            Reason.CONSENT_MISSING,
            "the persons concerned must have expressed their consent in writing (Art. 25(2))",
        )
