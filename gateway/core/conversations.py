"""Conversations: a case between two authorities, as a pure state machine.

A conversation is opened by a request or a notification and named by its reference; every
later message of the case must be allowed in the conversation's state, from the side that
sends it. The same `advance` runs when a case system submits (nothing is sent if it refuses)
and when a transmission arrives (a negative acknowledgement names the rule broken)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Any

from gateway.core.deadlines import (
    DeadlineError,
    available_rule_sets,
    pack_data,
    pack_named,
    pack_value,
    packaged_rule_set,
)
from gateway.core.forms import FORM_TYPES
from gateway.core.official_days import holidays_version
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
    REEXAMINATION_REQUESTED = "reexamination-requested"  # 2025/2055 9(2), 1560/2003 5(2)
    RECONSIDERATION_REQUESTED = "reconsideration-requested"  # 2025/2055 Art. 15(3)-(4)
    APPEAL_PENDING = "appeal-pending"  # an appeal against the transfer has suspensive effect
    ABSCONDED = "absconded"
    AVAILABLE_AGAIN = "available-again"  # the person who absconded is available again
    TRANSFERRED = "transferred"
    NOT_APPEARED = "failed-to-appear"
    RESPONSIBILITY_SHIFTED = "responsibility-shifted"


class Side(StrEnum):
    REQUESTING = "requesting"  # the authority that opened the conversation
    REQUESTED = "requested"


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
    kinds: frozenset[str]


@dataclass(frozen=True)
class Silence:
    """Silence past the reply limit of an open request of `kind` in `state` is `to`."""

    kind: str
    state: State
    to: State
    article: str


@dataclass(frozen=True)
class MessageRules:
    """Which message may follow which in a legal basis: the `conversations` section of its
    rule pack (gateway/core/rules/<pack>.json)."""

    pack: str
    opens: Mapping[str, tuple[str, State]]
    """Form that opens a conversation -> (kind, first state)."""
    groups: Mapping[str, frozenset[State]]
    silence: tuple[Silence, ...]
    expiry_states: frozenset[State]
    """States in which the transfer limit's expiry shifts responsibility."""
    expiry_to: State
    by_type: Mapping[str, tuple[Rule, ...]]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(kind for kind, _ in self.opens.values())


def _states(value: Any, groups: Mapping[str, frozenset[State]], where: str) -> frozenset[State]:
    if value == "any":
        return frozenset(State)
    if isinstance(value, str):
        if value not in groups:
            raise DeadlineError(f"{where}: unknown state group {value!r}")
        return groups[value]
    try:
        return frozenset(State(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DeadlineError(f"{where}: {exc}") from exc


def _kinds(
    value: Any, groups: Mapping[str, frozenset[str]], every: frozenset[str]
) -> frozenset[str]:
    if value == "any":
        return every
    if isinstance(value, str):
        return groups[value]
    return frozenset(value)


def parse_message_rules(data: Mapping[str, Any], pack: str) -> MessageRules:
    """The `conversations` section of a pack; DeadlineError names what is wrong."""
    where = f"{pack}.json: conversations"
    try:
        opens = {form: (str(v["kind"]), State(v["state"])) for form, v in data["opens"].items()}
        groups = {
            name: frozenset(State(x) for x in states)
            for name, states in data.get("state_groups", {}).items()
        }
        kind_groups = {
            name: frozenset(kinds) for name, kinds in data.get("kind_groups", {}).items()
        }
        every = frozenset(kind for kind, _ in opens.values())
        by_type: dict[str, list[Rule]] = {}
        for t in data["transitions"]:
            side = None if t["side"] == "either" else Side(t["side"])
            rule = Rule(
                message_type=t["message"],
                outcome=t.get("outcome"),
                states=_states(t["states"], groups, f"{where}: {t['message']}"),
                side=side,
                to=State(t["to"]) if t["to"] is not None else None,
                article=str(t["article"]),
                kinds=_kinds(t["kinds"], kind_groups, every),
            )
            if rule.message_type not in FORM_TYPES:
                raise DeadlineError(f"{where}: unknown message type {rule.message_type!r}")
            by_type.setdefault(rule.message_type, []).append(rule)
        silence = tuple(
            Silence(str(x["kind"]), State(x["state"]), State(x["to"]), str(x["article"]))
            for x in data.get("silence", [])
        )
        expiry = data["transfer_limit_expiry"]
        expiry_states = _states(expiry["states"], groups, f"{where}: transfer_limit_expiry")
        expiry_to = State(expiry["to"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DeadlineError):
            raise
        raise DeadlineError(f"{where}: {exc!r}") from exc
    for form in opens:
        if form not in FORM_TYPES or not FORM_TYPES[form].opens:
            raise DeadlineError(f"{where}: {form!r} is not a form that opens a case")
    return MessageRules(
        pack=pack,
        opens=opens,
        groups=groups,
        silence=silence,
        expiry_states=expiry_states,
        expiry_to=expiry_to,
        by_type={k: tuple(v) for k, v in by_type.items()},
    )


@functools.cache
def message_rules(legal_basis: str = LEGAL_BASIS) -> MessageRules:
    """The message rules of the pack whose cases are recorded as `legal_basis`."""
    pack = pack_named(legal_basis)
    section = pack_data(pack).get("conversations")
    if not isinstance(section, dict):
        raise DeadlineError(
            f"the rule pack {pack} has no message rules yet: no case can run under it"
        )
    return parse_message_rules(section, pack)


def case_bases() -> list[str]:
    """The rule packs a case can run under: those with message rules."""
    return [n for n in available_rule_sets() if isinstance(pack_value(n, "conversations"), dict)]


def basis_label(name: str) -> str:
    """What cases opened under the pack `name` record as their legal basis."""
    return str(pack_value(name, "legal_basis"))


def basis_version(name: str) -> str:
    """The version of the pack `name`, carried with every message of its cases."""
    return str(pack_value(name, "version"))


def kept_basis(case: Conversation | None, named: str) -> str:
    """The rule pack a message of `case` runs under, when it names the pack `named`: a case
    keeps the basis it was opened under (issue 16, item 2), so naming another is a
    `legal-basis-mismatch` Rejection; a message that opens a case (None) runs under `named`.
    The same check at submission and at reception."""
    if case is None:
        return named
    runs = pack_named(case.legal_basis)
    if named != runs:
        raise Rejection(
            Reason.LEGAL_BASIS_MISMATCH,
            f"case {case.reference} runs under {runs}, the basis it was opened under; its "
            f"messages cannot be sent under {named}",
        )
    return runs


def criteria_for(pack: str, registered: date | None) -> str | None:
    """The criteria a case opened under `pack` for an application registered on `registered`
    keeps when they are not `pack`'s own (see Conversation.criteria), from the pack's
    `applies_from`; a pack another superseded (its `superseded_by`) serves only applications
    registered before the other applied: naming it for a later one is a
    `legal-basis-mismatch` Rejection that says why (issue 16, item 2)."""
    if registered is None:
        return None
    rules = packaged_rule_set(pack)
    if rules.superseded_by is not None:
        start = packaged_rule_set(rules.superseded_by).applies_from
        if start is not None and registered >= start.date:
            disputed = "" if start.verified else " (a date not verified: see that pack)"
            raise Rejection(
                Reason.LEGAL_BASIS_MISMATCH,
                f"the application was registered on {registered.isoformat()}, on or after "
                f"{start.date.isoformat()}, when {rules.superseded_by} began to apply"
                f"{disputed}; {pack} serves only applications registered before "
                f"({start.criteria_article or 'see that pack'})",
            )
    start = rules.applies_from
    if start is not None and start.earlier_criteria and registered < start.date:
        return start.earlier_criteria
    return None


def computing_versions() -> dict[str, Any]:
    """What this release computes time limits with: each rule pack's version and the
    `holidays` package's (issue 16, item 8). Both gateways of a case must agree on both."""
    return {
        "rules": {name: basis_version(name) for name in available_rule_sets()},
        "holidays": holidays_version(),
    }


_PROPOSAL = message_rules()
KINDS: Mapping[str, str] = {form: kind for form, (kind, _) in _PROPOSAL.opens.items()}
TRANSFER_PHASE = _PROPOSAL.groups["transfer-phase"]
"""The proposal's states after acceptance or confirmation until the transfer is over."""


@dataclass(frozen=True)
class Conversation:
    reference: str
    kind: str
    requesting: str
    requested: str
    state: State
    legal_basis: str = LEGAL_BASIS
    criteria: str | None = None
    """The pack whose responsibility criteria the case keeps, when not its basis's own: an
    AMMR case for an application registered before the cut-over keeps those of 604/2013
    (2024/1351 Art. 84(2))."""

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
    conversation: Conversation | None,
    step: Step,
    legal_basis: str = LEGAL_BASIS,
    rules: MessageRules | None = None,
) -> Conversation:
    """The conversation after `step`, or Rejection(CONVERSATION_RULE) naming the article.
    The message rules are the packaged pack's of the case's legal basis, or `rules` (a pack
    read from elsewhere, e.g. a basis being drafted)."""
    ft = FORM_TYPES.get(step.message_type)
    if ft is None:
        raise Rejection(Reason.UNKNOWN_TYPE, f"unknown message type {step.message_type!r}")
    rules = rules or message_rules(conversation.legal_basis if conversation else legal_basis)
    if ft.opens:
        if conversation is not None:
            raise _refuse(
                f"case {step.reference} already exists; a {ft.name} opens a new case "
                "under its own reference (1560/2003 Art. 20; 2025/2055 Art. 5)"
            )
        if ft.name not in rules.opens:
            raise _refuse(f"a {ft.name} opens no case under {rules.pack}")
        kind, state = rules.opens[ft.name]
        return Conversation(
            reference=step.reference,
            kind=kind,
            requesting=step.sender,
            requested=step.receiver,
            state=state,
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
        for r in rules.by_type.get(step.message_type, ())
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
    for silence in message_rules(conversation.legal_basis).silence:
        if conversation.kind == silence.kind and conversation.state is silence.state:
            return replace(conversation, state=silence.to)
    return None


def shift_responsibility(conversation: Conversation) -> Conversation | None:
    """Art. 35(2): the transfer time limit passed without transfer (and without a timely
    absconding notice): responsibility moves to the requesting State."""
    rules = message_rules(conversation.legal_basis)
    if conversation.state in rules.expiry_states:
        return replace(conversation, state=rules.expiry_to)
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


def check_reconsiderable(legal_basis: str, cessation: str | None, any_ground: bool) -> None:
    """A reconsideration of a non-confirmed take back notification is asked only where the
    case's pack allows it for the non-confirmation's ground (`reconsideration` section:
    2025/2055 Art. 15(3)-(4), a cessation under Art. 37(2), (4) or (5) of 2024/1351, or any
    ground for a notification under Art. 12(6)). A non-confirmation that names no ground is
    not checked (its ground is free text: the case systems must)."""
    section = pack_value(pack_named(legal_basis), "reconsideration")
    if not isinstance(section, dict) or cessation is None or any_ground:
        return
    grounds = [str(g) for g in section.get("grounds", [])]
    if cessation in grounds:
        return
    raise Rejection(
        Reason.CONVERSATION_RULE,
        f"a reconsideration may be asked only of a non-confirmation on {', '.join(grounds)} "
        f"({section.get('article', 'the case rules')}); this one rests on {cessation}",
    )


def standard_form(conversation: Conversation) -> str | None:
    """The standard form a take charge case's request is to follow where its basis names
    one for applications that keep earlier criteria (2024/1351 Art. 84(2): 2025/2055 Annex
    XII, Art. 7(1), second subparagraph); None otherwise."""
    if conversation.kind != "take-charge" or conversation.criteria is None:
        return None
    try:
        start = packaged_rule_set(pack_named(conversation.legal_basis)).applies_from
    except DeadlineError:
        return None
    if start is None or start.earlier_criteria != conversation.criteria:
        return None
    return start.earlier_criteria_form or None
