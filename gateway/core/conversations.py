"""Conversations: a case between two authorities, as a pure state machine.

A conversation is opened by a request or a notification and named by its reference; every
later message of the case must be allowed in the conversation's state, from the side that
sends it. The same `advance` runs when a case system submits (nothing is sent if it refuses)
and when a transmission arrives (a negative acknowledgement names the rule broken)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from gateway.core.forms import FORM_TYPES
from gateway.core.policy import PriorMessage, Reason, Rejection

LEGAL_BASIS = "COM(2020) 610"


class State(StrEnum):
    REQUESTED = "requested"  # a take charge, humanitarian, dependants, minor or info request
    NOTIFIED = "notified"  # a take back notification awaiting confirmation
    ACCEPTED = "accepted"
    DEEMED_ACCEPTED = "deemed-accepted"  # silence past the reply limit (Art. 30(8), 34(3))
    REFUSED = "refused"
    CONFIRMED = "confirmed"
    DEEMED_CONFIRMED = "deemed-confirmed"  # silence past the confirmation limit (Art. 31(4))
    CEASED = "responsibility-ceased"
    ANSWERED = "answered"
    TRANSFER_DECIDED = "transfer-decided"
    TRANSFER_ARRANGED = "transfer-arranged"
    POSTPONED = "transfer-postponed"
    ABSCONDED = "absconded"
    TRANSFERRED = "transferred"
    NOT_APPEARED = "failed-to-appear"
    RESPONSIBILITY_SHIFTED = "responsibility-shifted"


class Side(StrEnum):
    REQUESTING = "requesting"  # the authority that opened the conversation
    REQUESTED = "requested"


# Kinds of conversation, by the form that opens them.
KINDS: dict[str, str] = {
    "take-charge-request": "take-charge",
    "humanitarian-request": "humanitarian",
    "take-back-notification": "take-back",
    "info-request": "information",
    "dependants-request": "dependants",
    "minor-family-request": "minor-family",
}
OPENED_STATE = {"take-back-notification": State.NOTIFIED}
TRANSFER_KINDS = frozenset(
    {"take-charge", "humanitarian", "take-back", "dependants", "minor-family"}
)
# After acceptance or confirmation and until the transfer is over: the case heads to transfer.
TRANSFER_PHASE = frozenset(
    {
        State.ACCEPTED,
        State.DEEMED_ACCEPTED,
        State.CONFIRMED,
        State.DEEMED_CONFIRMED,
        State.TRANSFER_DECIDED,
        State.TRANSFER_ARRANGED,
        State.POSTPONED,
        State.ABSCONDED,
    }
)


@dataclass(frozen=True)
class Rule:
    """`message_type` (with `outcome`, when the form has one) may be sent by `side` in any of
    `states`, and moves the conversation to `to` (None: the state stays)."""

    message_type: str
    outcome: str | None
    states: frozenset[State]
    side: Side | None  # None: either side
    to: State | None
    article: str
    kinds: frozenset[str] = TRANSFER_KINDS


def _r(
    mtype: str,
    outcome: str | None,
    states: set[State] | frozenset[State],
    side: Side | None,
    to: State | None,
    article: str,
    kinds: frozenset[str] = TRANSFER_KINDS,
) -> Rule:
    return Rule(mtype, outcome, frozenset(states), side, to, article, kinds)


_REQ, _ED = Side.REQUESTING, Side.REQUESTED
_ALL_KINDS = frozenset(KINDS.values())
_ANSWERABLE = frozenset({"take-charge", "humanitarian", "dependants", "minor-family"})
_DECIDED = {State.TRANSFER_DECIDED, State.TRANSFER_ARRANGED}
_AFTER_TRANSFER_PHASE = TRANSFER_PHASE | {State.NOT_APPEARED}

RULES: tuple[Rule, ...] = (
    _r(
        "take-charge-reply",
        "acceptance",
        {State.REQUESTED},
        _ED,
        State.ACCEPTED,
        "Art. 30(1)",
        frozenset({"take-charge"}),
    ),
    _r(
        "take-charge-reply",
        "refusal",
        {State.REQUESTED},
        _ED,
        State.REFUSED,
        "Art. 30(1)",
        frozenset({"take-charge"}),
    ),
    _r(
        "humanitarian-reply",
        "acceptance",
        {State.REQUESTED},
        _ED,
        State.ACCEPTED,
        "Art. 25(2)",
        frozenset({"humanitarian"}),
    ),
    _r(
        "humanitarian-reply",
        "refusal",
        {State.REQUESTED},
        _ED,
        State.REFUSED,
        "Art. 25(2)",
        frozenset({"humanitarian"}),
    ),
    _r(
        "dependants-reply",
        "acceptance",
        {State.REQUESTED},
        _ED,
        State.ACCEPTED,
        "Art. 24",
        frozenset({"dependants"}),
    ),
    _r(
        "dependants-reply",
        "refusal",
        {State.REQUESTED},
        _ED,
        State.REFUSED,
        "Art. 24",
        frozenset({"dependants"}),
    ),
    _r(
        "minor-family-reply",
        "acceptance",
        {State.REQUESTED},
        _ED,
        State.ACCEPTED,
        "Art. 15",
        frozenset({"minor-family"}),
    ),
    _r(
        "minor-family-reply",
        "refusal",
        {State.REQUESTED},
        _ED,
        State.REFUSED,
        "Art. 15",
        frozenset({"minor-family"}),
    ),
    # Late replies after deemed acceptance or confirmation: acknowledged, stored, flagged
    # late; the deemed outcome stands.
    _r(
        "take-charge-reply",
        "acceptance",
        {State.DEEMED_ACCEPTED},
        _ED,
        None,
        "Art. 30(8)",
        frozenset({"take-charge"}),
    ),
    _r(
        "take-charge-reply",
        "refusal",
        {State.DEEMED_ACCEPTED},
        _ED,
        None,
        "Art. 30(8)",
        frozenset({"take-charge"}),
    ),
    _r(
        "take-back-confirmation",
        "confirmation",
        {State.DEEMED_CONFIRMED},
        _ED,
        None,
        "Art. 31(4)",
        frozenset({"take-back"}),
    ),
    _r(
        "take-back-confirmation",
        "responsibilityCeased",
        {State.DEEMED_CONFIRMED},
        _ED,
        None,
        "Art. 31(4)",
        frozenset({"take-back"}),
    ),
    _r(
        "take-back-confirmation",
        "confirmation",
        {State.NOTIFIED},
        _ED,
        State.CONFIRMED,
        "Art. 31(3)",
        frozenset({"take-back"}),
    ),
    _r(
        "take-back-confirmation",
        "responsibilityCeased",
        {State.NOTIFIED},
        _ED,
        State.CEASED,
        "Art. 31(3), 27",
        frozenset({"take-back"}),
    ),
    _r(
        "info-reply",
        "information",
        {State.REQUESTED},
        _ED,
        State.ANSWERED,
        "Art. 40(5)",
        frozenset({"information"}),
    ),
    _r(
        "info-reply",
        "refusal",
        {State.REQUESTED},
        _ED,
        State.ANSWERED,
        "Art. 40(3)",
        frozenset({"information"}),
    ),
    _r("transfer-information", None, TRANSFER_PHASE, _REQ, None, "Art. 37(1)"),
    _r("security-information", None, TRANSFER_PHASE, _REQ, None, "Art. 38"),
    _r("health-certificate", None, TRANSFER_PHASE, _REQ, None, "Art. 39(1)"),
    _r(
        "transfer-notice",
        "decision-taken",
        {State.ACCEPTED, State.DEEMED_ACCEPTED, State.CONFIRMED, State.DEEMED_CONFIRMED},
        _REQ,
        State.TRANSFER_DECIDED,
        "Art. 32(1)",
    ),
    _r(
        "transfer-notice",
        "arrangements",
        TRANSFER_PHASE,
        _REQ,
        State.TRANSFER_ARRANGED,
        "Art. 35(1)",
    ),
    _r("transfer-notice", "postponed", _DECIDED, _REQ, State.POSTPONED, "Art. 35(4)"),
    _r(
        "transfer-notice",
        "absconded",
        TRANSFER_PHASE - {State.ABSCONDED},
        _REQ,
        State.ABSCONDED,
        "Art. 35(2) second subparagraph",
    ),
    _r("transfer-notice", "arrived", _DECIDED, _ED, State.TRANSFERRED, "Art. 35(1)"),
    _r("transfer-notice", "failed-to-appear", _DECIDED, _ED, State.NOT_APPEARED, "Art. 35(1)"),
    _r(
        "responsibility-notice",
        "responsibility-ceased",
        _AFTER_TRANSFER_PHASE,
        None,
        State.RESPONSIBILITY_SHIFTED,
        "Art. 27",
    ),
    _r(
        "responsibility-notice",
        "transfer-time-limit-expired",
        _AFTER_TRANSFER_PHASE,
        None,
        State.RESPONSIBILITY_SHIFTED,
        "Art. 35(2)",
    ),
    _r("rectification-notice", None, frozenset(State), None, None, "Art. 40(8)", _ALL_KINDS),
    _r("erasure-notice", None, frozenset(State), None, None, "Art. 40(8)", _ALL_KINDS),
)
_RULES_BY_TYPE: dict[str, list[Rule]] = {}
for _rule in RULES:
    _RULES_BY_TYPE.setdefault(_rule.message_type, []).append(_rule)
assert _ANSWERABLE <= _ALL_KINDS


@dataclass(frozen=True)
class Conversation:
    reference: str
    kind: str
    requesting: str
    requested: str
    state: State
    legal_basis: str = LEGAL_BASIS

    def side_of(self, authority: str) -> Side | None:
        if authority == self.requesting:
            return Side.REQUESTING
        if authority == self.requested:
            return Side.REQUESTED
        return None


@dataclass(frozen=True)
class Step:
    """One message offered to the conversation."""

    message_type: str
    sender: str
    receiver: str
    reference: str
    outcome: str | None = None
    target: PriorMessage | None = None
    """The message this one refers to: the request a reply answers, the data a rectification
    or erasure notice concerns."""


def _refuse(text: str) -> Rejection:
    return Rejection(Reason.CONVERSATION_RULE, text)


def advance(
    conversation: Conversation | None, step: Step, legal_basis: str = LEGAL_BASIS
) -> Conversation:
    """The conversation after `step`, or Rejection(CONVERSATION_RULE) naming the article."""
    ft = FORM_TYPES.get(step.message_type)
    if ft is None:
        raise Rejection(Reason.UNKNOWN_TYPE, f"unknown message type {step.message_type!r}")
    if ft.opens:
        if conversation is not None:
            raise _refuse(
                f"case {step.reference} already exists; a {ft.name} opens a new case "
                "under its own reference (1560/2003 Art. 20)"
            )
        return Conversation(
            reference=step.reference,
            kind=KINDS[ft.name],
            requesting=step.sender,
            requested=step.receiver,
            state=OPENED_STATE.get(ft.name, State.REQUESTED),
            legal_basis=legal_basis,
        )
    side = conversation.side_of(step.sender) if conversation is not None else None
    if (
        conversation is None
        or side is None
        or conversation.side_of(step.receiver) is None
        or step.sender == step.receiver
    ):
        # A case of another pair is, to these two, no case at all: the same answer, which
        # tells a third authority nothing about who exchanges what.
        raise _refuse(
            f"no case under this reference is open between these authorities; a {ft.name} "
            f"({ft.article}) belongs to an existing case"
        )
    if (ft.is_reply or ft.type_digit is None) and step.reference != conversation.reference:
        raise Rejection(
            Reason.REFERENCE_INVALID,
            f"a {ft.name} carries the reference of its case, {conversation.reference}",
        )
    if ft.answers is not None:
        _check_answer(conversation, step, ft.answers)
    if ft.targets_message:
        _check_target(conversation, step)
    candidates = [
        r
        for r in _RULES_BY_TYPE.get(step.message_type, [])
        if r.outcome == step.outcome and conversation.kind in r.kinds
    ]
    if not candidates:
        raise _refuse(
            f"a {ft.name} ({ft.article}) has no place in a {conversation.kind} case"
            + (f" with outcome {step.outcome!r}" if step.outcome else "")
        )
    for rule in candidates:
        if conversation.state in rule.states and (rule.side is None or rule.side == side):
            return replace(conversation, state=rule.to or conversation.state)
    rule = candidates[0]
    if conversation.state not in rule.states:
        raise _refuse(
            f"a {ft.name}{_label(step.outcome)} is not allowed once the case is "
            f"{conversation.state.value} ({rule.article})"
        )
    raise _refuse(
        f"a {ft.name}{_label(step.outcome)} is sent by the {rule.side.value if rule.side else ''} "
        f"State, not the {side.value} one ({rule.article})"
    )


def _label(outcome: str | None) -> str:
    return f" ({outcome})" if outcome else ""


def _check_answer(conversation: Conversation, step: Step, request_type: str) -> None:
    target = step.target
    if target is None or target.message_type != request_type:
        raise _refuse(
            f"a {step.message_type} answers only a {request_type} "
            f"({FORM_TYPES[step.message_type].article})"
        )
    if target.reference != conversation.reference:
        raise _refuse(
            f"the request answered belongs to case {target.reference}, not {conversation.reference}"
        )
    if target.answered:
        raise Rejection(
            Reason.ALREADY_ANSWERED,
            f"request {target.message_id} has already been answered (a reply is given once)",
        )


def _check_target(conversation: Conversation, step: Step) -> None:
    """Art. 40(8): only the State that sent data notifies its rectification or erasure."""
    target = step.target
    if target is None or target.reference != conversation.reference:
        raise _refuse(
            f"a {step.message_type} must name a message of case "
            f"{conversation.reference} (Art. 40(8))"
        )
    if not _sent_by(target, step.sender, step.receiver):
        raise _refuse(f"a {step.message_type} may only concern data its sender sent (Art. 40(8))")


def _sent_by(target: PriorMessage, sender: str, receiver: str) -> bool:
    """Whether `target` went from `sender` to `receiver`, seen from either gateway: the
    sender's holds it as outbound to the receiver, the receiver's as inbound from the sender."""
    return (target.direction == "out" and target.peer == receiver) or (
        target.direction == "in" and target.peer == sender
    )


LATE_STATES = frozenset({State.DEEMED_ACCEPTED, State.DEEMED_CONFIRMED})


def is_late_reply(after: Conversation, message_type: str) -> bool:
    """A reply taken after silence was deemed acceptance or confirmation (the state stays)."""
    return FORM_TYPES[message_type].is_reply and after.state in LATE_STATES


def deem(conversation: Conversation) -> Conversation | None:
    """The consequence of silence on the open request: deemed acceptance of a take charge
    request (Art. 30(8), 34(3)) or deemed confirmation of a take back notification
    (Art. 31(4)); None when the case has moved on."""
    if conversation.kind == "take-charge" and conversation.state is State.REQUESTED:
        return replace(conversation, state=State.DEEMED_ACCEPTED)
    if conversation.kind == "take-back" and conversation.state is State.NOTIFIED:
        return replace(conversation, state=State.DEEMED_CONFIRMED)
    return None


def shift_responsibility(conversation: Conversation) -> Conversation | None:
    """Art. 35(2): the transfer time limit passed without transfer (and without a timely
    absconding notice): responsibility moves to the requesting State."""
    if conversation.state in TRANSFER_PHASE - {State.ABSCONDED}:
        return replace(conversation, state=State.RESPONSIBILITY_SHIFTED)
    return None


def outcome_of(form_type_name: str, form: dict[str, object]) -> str | None:
    """The outcome the conversation reads from a form's JSON, by the catalogue's rule."""
    ft = FORM_TYPES[form_type_name]
    if ft.outcome is None:
        return None
    if ft.outcome == "choice":
        keys = list(form)
        return keys[0] if len(keys) == 1 else None
    value = form.get(ft.outcome)
    return value if isinstance(value, str) else None
