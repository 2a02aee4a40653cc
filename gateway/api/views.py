"""How the internal API shows stored messages, deadlines and register events: one view of
each, shared by every endpoint that lists or returns them. Forms are shown only to the role
that may read them (health certificates to health practitioners, Art. 39(3)-(4))."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from gateway.core.forms import FORM_TYPES
from gateway.core.register import RegisterEntry
from gateway.core.times import utc_text
from gateway.service.deadline_keeper import rules_recorded_as
from gateway.store.records import StoredDeadline, StoredMessage
from gateway.xml.envelope import read_acknowledgement, read_form
from gateway.xml.forms import form_from_element
from gateway.xml.parser import parse_trusted


def _ack_view(msg: StoredMessage) -> dict[str, Any] | None:
    if msg.ack_xml is None:
        return None
    ack = read_acknowledgement(parse_trusted(msg.ack_xml))
    return {
        "acknowledgement_id": ack.acknowledgement_id,
        "status": ack.status,
        "receipt_time": utc_text(ack.receipt_time),
        "digest": ack.digest,
        "reason": None
        if ack.reason_code is None
        else {"code": ack.reason_code, "text": ack.reason_text},
        "register_head": {"sequence": ack.head_sequence, "hash": ack.head_hash},
    }


@cache
def _owned(role: str) -> frozenset[str]:
    return frozenset(ft.name for ft in FORM_TYPES.values() if ft.sender_role == role)


def owned_types(roles: str | Iterable[str]) -> frozenset[str]:
    """The message types a role (or any of several) reads, processes and consumes (Art.
    39(3)-(4): health data only for health practitioners; they see nothing else)."""
    held = (roles,) if isinstance(roles, str) else tuple(roles)
    return frozenset().union(*(_owned(r) for r in held))


def may_read_form(roles: str | Iterable[str], message_type: str) -> bool:
    return message_type in owned_types(roles)


def deadline_view(d: StoredDeadline) -> dict[str, Any]:
    """A time limit, with the article and verified flag of its case's legal basis."""
    rules = rules_recorded_as(d.legal_basis)
    rule = None
    if rules is not None and d.rule in rules.rules:
        rule = rules.applied(d.rule, d.derogation is not None)
    return {
        "id": d.id,
        "case": d.case_reference,
        "rule": d.rule,
        "legal_basis": d.legal_basis,
        "article": rule.article if rule is not None else None,
        "verified": rule.verified if rule is not None else None,
        "crisis_derogation": d.derogation,
        "acting": d.acting,
        "opened_by": d.opened_by,
        "started_at": utc_text(d.started_at),
        "due_date": d.due_date,
        "expires_at": utc_text(d.expires_at),
        "state": d.state,
        "consequence": d.consequence,
        "closed_by": d.closed_by,
        "reminders_sent": d.reminders_sent,
    }


def message_view(msg: StoredMessage, *, with_form: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "message_id": msg.message_id,
        "direction": msg.direction,
        "type": msg.message_type,
        "reference": msg.reference,
        "case": msg.case,
        "sender" if msg.direction == "in" else "receiver": msg.peer,
        "in_reply_to": msg.in_reply_to,
        "urgent": bool(msg.urgent),
        "created": utc_text(msg.created_at),
        "state": msg.state,
        "digest": msg.digest,
        "receipt_time": None if msg.receipt_time is None else utc_text(msg.receipt_time),
        "answered_by": msg.answered_by,
        "acknowledgement": _ack_view(msg),
    }
    if msg.state == "undeliverable":
        view["error"] = msg.reason_text
    if msg.reason_code == "late-reply":
        view["late"] = True
    if msg.direction == "in":
        view["consumed_at"] = None if msg.consumed_at is None else utc_text(msg.consumed_at)
    if with_form:
        view["form"] = None
        if msg.signed_xml is not None:
            _, view["form"] = form_from_element(read_form(parse_trusted(msg.signed_xml)))
    return view


def event_view(entry: RegisterEntry) -> dict[str, Any]:
    return {
        "cursor": str(entry.sequence),
        "time": utc_text(entry.time),
        "event": entry.event,
        "direction": entry.direction,
        "peer": entry.peer,
        "message_id": entry.message_id,
        "type": entry.message_type,
        "reference": entry.reference,
        "status": entry.status,
        "reason": entry.reason,
        "details": entry.details,
    }
