"""Which deadlines a message opens and closes (Art. 29-35, 40), decided without I/O.

Both gateways run this on the same message with the same instant (the receipt time in the
acknowledgement), so both compute the same expiry for both parties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.core.conversations import Conversation, State
from gateway.core.forms import FORM_TYPES

REPLY_RULES = frozenset(
    {
        "take_charge_reply",
        "take_charge_reply_hit",
        "take_charge_reply_urgent",
        "take_charge_reply_detained",
    }
)
TRANSFER_RULES = frozenset({"transfer", "transfer_imprisoned", "transfer_detained"})


@dataclass(frozen=True)
class Opening:
    rule: str
    acting: str
    """The authority that must act before expiry."""
    requested: date | None = None


@dataclass(frozen=True)
class Changes:
    open: tuple[Opening, ...] = ()
    close: frozenset[str] = field(default_factory=frozenset)
    """Rule names whose open deadlines in the case are met (closed) by this message."""
    close_reason: str = "met"


def _reply_rule(form: Mapping[str, Any], urgent: bool) -> tuple[str, date | None]:
    """Art. 30(7)-(8), 34(3): the reply limit depends on detention, urgency and a hit."""
    if form.get("detained") is True:
        return "take_charge_reply_detained", None
    if urgent:
        requested = (form.get("urgency") or {}).get("requestedReplyDate")
        return "take_charge_reply_urgent", date.fromisoformat(requested) if requested else None
    if form.get("eurodacHit") or form.get("visHit"):
        return "take_charge_reply_hit", None
    return "take_charge_reply", None


def transfer_openings(conversation: Conversation) -> tuple[Opening, ...]:
    """After acceptance or confirmation (given or deemed) the requesting State must decide
    the transfer (Art. 32(1)) and carry it out (Art. 35(1))."""
    return (
        Opening("transfer_decision", conversation.requesting),
        Opening("transfer", conversation.requesting),
    )


def changes_for(
    message_type: str,
    outcome: str | None,
    form: Mapping[str, Any],
    *,
    urgent: bool,
    sender: str,
    receiver: str,
    after: Conversation,
    late: bool,
) -> Changes:
    """The deadline changes of one message, given the conversation after it."""
    if late:
        return Changes()  # the deemed outcome stands; its deadlines are already running
    if FORM_TYPES[message_type].opens and after.state not in (State.REQUESTED, State.NOTIFIED):
        return Changes()  # the answer overtook the acknowledgement of the request
    match message_type:
        case "take-charge-request":
            rule, requested = _reply_rule(form, urgent)
            return Changes(open=(Opening(rule, receiver, requested),))
        case "humanitarian-request":
            return Changes(open=(Opening("humanitarian_reply", receiver),))
        case "take-back-notification":
            return Changes(open=(Opening("take_back_confirmation", receiver),))
        case "info-request":
            return Changes(open=(Opening("info_reply", receiver),))
        case "take-charge-reply" | "humanitarian-reply" | "take-back-confirmation":
            closes = REPLY_RULES | {"humanitarian_reply", "take_back_confirmation"}
            opens = (
                transfer_openings(after) if after.state in (State.ACCEPTED, State.CONFIRMED) else ()
            )
            return Changes(open=opens, close=frozenset(closes))
        case "info-reply":
            return Changes(close=frozenset({"info_reply"}))
        case "transfer-notice":
            if outcome == "decision-taken":
                return Changes(close=frozenset({"transfer_decision"}))
            if outcome == "arrived":
                return Changes(close=TRANSFER_RULES | {"transfer_decision"})
            if outcome == "absconded":
                # Art. 35(2) second subparagraph: notified before expiry, responsibility
                # does not shift when the limit passes.
                return Changes(close=TRANSFER_RULES, close_reason="absconding-notified")
            return Changes()
        case "responsibility-notice":
            return Changes(
                close=REPLY_RULES
                | TRANSFER_RULES
                | {"transfer_decision", "take_back_confirmation", "humanitarian_reply"},
                close_reason="responsibility-notice",
            )
    return Changes()
