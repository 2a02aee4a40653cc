"""Which deadlines a message opens and closes, decided without I/O from the `tracking`
section of the case's rule pack (gateway/core/rules/<pack>.json).

Both gateways run this on the same message with the same instant (the receipt time in the
acknowledgement), so both compute the same expiry for both parties."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.core.conversations import Conversation, message_rules
from gateway.core.deadlines import DeadlineError, RuleSet, pack_data, pack_named

ACTING = frozenset({"sender", "receiver", "requesting", "requested"})


@dataclass(frozen=True)
class Opening:
    rule: str
    acting: str
    """The authority that must act before expiry."""
    requested: date | None = None
    runs_from: date | None = None
    """The day the limit runs from, when the form gives it (a final decision on an appeal);
    else it runs from the message's acknowledged receipt."""
    runs_as: str | None = None
    """The limit runs from where the case's limit of this name ran from, and replaces it: an
    extension (imprisonment: 1 year from the acceptance, not from the notice). Opened only
    if this message closed that limit while it was running."""
    resumes: bool = False
    """The case's limit of this rule that was suspended last runs again for the time it had
    left (proposal Art. 35(2): the transfer « dans le délai restant » once the person is
    available again): counted from its start moved on by the time it was suspended. Opened
    only when such a limit exists and none of this rule is open."""
    replaces_if_later: str | None = None
    """Opened only if it ends later than the case's open limit of this name, which it then
    closes (2024/1351 Art. 46(2), second subparagraph: a person available again with less
    than 3 months of the limit left gets 3 months); otherwise that limit keeps running."""
    planned: bool = False
    """`runs_from` is a day still to come that the form plans (the date by which a person
    transferred is to appear, 2025/2055 Art. 24(4)): the limit runs from it, not from the
    earlier of it and the message."""


@dataclass(frozen=True)
class Changes:
    open: tuple[Opening, ...] = ()
    close: frozenset[str] = field(default_factory=frozenset)
    """Rule names whose open deadlines in the case are met (closed) by this message."""
    close_reason: str = "met"
    suspends: bool = False
    """The limits closed are suspended, not ended: an opening may resume them."""


WHEN_KEYS = frozenset({"urgent", "field", "is", "any_field", "no_field"})
"""A choice's condition: the header's urgency, a field's value (`field`, `is`), one of some
fields given (`any_field`), none of some fields given (`no_field`); all must hold."""


@dataclass(frozen=True)
class Choice:
    """One candidate limit: `rule` when the form (or the header) meets `when`."""

    rule: str
    when: Mapping[str, Any]
    requested_date: str | None = None
    """Dotted path of the form field holding a requested date (urgent requests)."""
    runs_from: str | None = None
    """Dotted path of the form field holding the day the limit runs from."""
    runs_as: str | None = None
    """The limit it extends (see Opening.runs_as)."""
    resumes: bool = False
    replaces_if_later: str | None = None
    planned: bool = False


@dataclass(frozen=True)
class OpenSpec:
    acting: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class MessageLimits:
    message: str
    outcome: str | None
    open: tuple[OpenSpec, ...]
    close: frozenset[str]
    close_reason: str
    after_acceptance: bool
    suspends: bool = False


@dataclass(frozen=True)
class Tracking:
    after_acceptance: tuple[tuple[str, str], ...]
    """(rule, acting) opened once a case is accepted or confirmed, given or deemed."""
    messages: tuple[MessageLimits, ...]


def _open_spec(raw: Mapping[str, Any], where: str) -> OpenSpec:
    acting = str(raw["acting"])
    if acting not in ACTING:
        raise DeadlineError(f"{where}: acting must be one of {sorted(ACTING)}")
    if "rule" in raw:
        choice = Choice(
            str(raw["rule"]),
            {},
            None,
            raw.get("runs_from"),
            raw.get("runs_as"),
            bool(raw.get("resumes", False)),
            raw.get("replaces_if_later"),
        )
        return OpenSpec(acting, (choice,))
    for c in raw["first_of"]:
        if set(c.get("when", {})) - WHEN_KEYS:
            raise DeadlineError(f"{where}: a `when` has only the keys {sorted(WHEN_KEYS)}")
    choices = tuple(
        Choice(
            str(c["rule"]),
            dict(c.get("when", {})),
            c.get("requested_date"),
            c.get("runs_from"),
            planned=bool(c.get("planned", False)),
        )
        for c in raw["first_of"]
    )
    return OpenSpec(acting, choices)


def parse_tracking(data: Mapping[str, Any], pack: str, limits: frozenset[str]) -> Tracking:
    """The `tracking` section of a pack; every rule it names must be one of `limits`."""
    where = f"{pack}.json: tracking"
    try:
        after = tuple((str(x["rule"]), str(x["acting"])) for x in data["after_acceptance"])
        messages = tuple(
            MessageLimits(
                message=str(m["message"]),
                outcome=m.get("outcome"),
                open=tuple(_open_spec(o, f"{where}: {m['message']}") for o in m.get("open", [])),
                close=frozenset(m.get("close", [])),
                close_reason=str(m.get("close_reason", "met")),
                after_acceptance=bool(m.get("after_acceptance", False)),
                suspends=bool(m.get("suspends", False)),
            )
            for m in data["messages"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DeadlineError):
            raise
        raise DeadlineError(f"{where}: {exc!r}") from exc
    named = {rule for rule, _ in after}
    for m in messages:
        named |= m.close | {c.rule for spec in m.open for c in spec.choices}
        named |= {c.replaces_if_later for s in m.open for c in s.choices if c.replaces_if_later}
    if named - limits:
        raise DeadlineError(
            f"{where}: names limits the pack does not have: {sorted(named - limits)}"
        )
    return Tracking(after, messages)


@functools.cache
def tracking(legal_basis: str) -> Tracking:
    pack = pack_named(legal_basis)
    data = pack_data(pack)
    section = data.get("tracking")
    if not isinstance(section, dict):
        raise DeadlineError(f"the rule pack {pack} does not say which message opens which limit")
    limits = frozenset(str(r.get("name")) for r in data.get("rules", []) if isinstance(r, dict))
    return parse_tracking(section, pack, limits)


def _field(form: Mapping[str, Any], path: str) -> Any:
    value: Any = form
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _meets(when: Mapping[str, Any], form: Mapping[str, Any], urgent: bool) -> bool:
    if "urgent" in when and urgent is not when["urgent"]:
        return False
    if "field" in when and _field(form, when["field"]) != when["is"]:
        return False
    if any(_field(form, f) for f in when.get("no_field", ())):
        return False
    return "any_field" not in when or any(_field(form, f) for f in when["any_field"])


def opens_rule(
    legal_basis: str, message_type: str, outcome: str | None, form: Mapping[str, Any], rule: str
) -> bool:
    """Whether the form, sent as `message_type` with `outcome`, opens the limit `rule` by the
    pack of `legal_basis` (a transfer form that asks the receiving State's answer opens
    `transfer_form_answer`, 2025/2055 Art. 25(5), 26(3))."""
    for spec in tracking(legal_basis).messages:
        if spec.message != message_type or spec.outcome not in (None, outcome):
            continue
        return any(
            choice.rule == rule and _meets(choice.when, form, False)
            for o in spec.open
            for choice in o.choices
        )
    return False


def _acting(who: str, sender: str, receiver: str, conversation: Conversation) -> str:
    return {
        "sender": sender,
        "receiver": receiver,
        "requesting": conversation.requesting,
        "requested": conversation.requested,
    }[who]


def transfer_openings(conversation: Conversation) -> tuple[Opening, ...]:
    """After acceptance or confirmation (given or deemed) the limits the pack opens, e.g. the
    transfer decision (Art. 32(1)) and the transfer (Art. 35(1)) under the proposal."""
    return tuple(
        Opening(rule, _acting(who, "", "", conversation))
        for rule, who in tracking(conversation.legal_basis).after_acceptance
    )


def _date(form: Mapping[str, Any], path: str | None) -> date | None:
    text = _field(form, path) if path else None
    return date.fromisoformat(text) if isinstance(text, str) else None


def _opening(spec: OpenSpec, form: Mapping[str, Any], urgent: bool, acting: str) -> Opening | None:
    for choice in spec.choices:
        if _meets(choice.when, form, urgent):
            return Opening(
                choice.rule,
                acting,
                _date(form, choice.requested_date),
                _date(form, choice.runs_from),
                choice.runs_as,
                choice.resumes,
                choice.replaces_if_later,
                choice.planned,
            )
    return None


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
    opened = message_rules(after.legal_basis).opens.get(message_type)
    if opened is not None and after.state is not opened[1]:
        return Changes()  # the answer overtook the acknowledgement of the request
    spec = next(
        (
            m
            for m in tracking(after.legal_basis).messages
            if m.message == message_type and m.outcome in (None, outcome)
        ),
        None,
    )
    if spec is None:
        return Changes()
    openings = [
        opening
        for o in spec.open
        if (opening := _opening(o, form, urgent, _acting(o.acting, sender, receiver, after)))
    ]
    if spec.after_acceptance and after.state in ("accepted", "confirmed"):
        openings += transfer_openings(after)
    return Changes(
        open=tuple(openings),
        close=spec.close,
        close_reason=spec.close_reason,
        suspends=spec.suspends,
    )


def request_limit(
    rules: RuleSet, form: Mapping[str, Any], limit: str = "take_charge_request"
) -> tuple[str, str] | None:
    """Which of the pack's limits for making a take charge request the form's facts choose,
    and the day it runs from (ISO): None when a form field waives it (an unaccompanied minor,
    2024/1351 Art. 39(1), fourth subparagraph).

    Detained: 1 week from a placement in detention after the registration where the pack
    has that limit (45(1), second subparagraph), else 2 weeks from registration (45(1)). A
    hit of a category the pack's hit rule names received: from its receipt (39(1), second
    subparagraph: 1 month; 604/2013 Art. 21(1): 2 months); a form naming no category is taken
    to rest on such a hit. Else
    from the registration where the rule says so and the form gives it (39(1)), or from the
    application date the form gives (lodging: 604/2013 Art. 21(1)). `limit` names the
    family: `take_charge_request`, or `take_back_request` (604/2013 Art. 23(2)-(3), 28(3))."""
    application = form.get("application") or {}
    lodged = str(application["date"])
    registered = str(application.get("registrationDate") or lodged)
    detention = form.get("detentionDate")
    hit = form.get("hitReceived")
    if limit not in rules.rules:
        return None
    if form.get("detained") is True and f"{limit}_detained" in rules.rules:
        later = f"{limit}_detained_later"
        if isinstance(detention, str) and detention > registered and later in rules.rules:
            return _unless_waived(rules, later, form, detention)
        name = f"{limit}_detained"
    elif isinstance(hit, str) and _hit_counts(rules, form, f"{limit}_hit"):
        return _unless_waived(rules, f"{limit}_hit", form, hit)
    else:
        name = limit
    start = registered if rules.rule(name).runs_from == "registration" else lodged
    return _unless_waived(rules, name, form, start)


def _unless_waived(
    rules: RuleSet, name: str, form: Mapping[str, Any], start: str
) -> tuple[str, str] | None:
    waiver = rules.rule(name).waived_by
    return None if waiver is not None and form.get(waiver) is True else (name, start)


def _hit_counts(rules: RuleSet, form: Mapping[str, Any], name: str) -> bool:
    rule = rules.rules.get(name)
    if rule is None:
        return False
    category = form.get("hitCategory")
    return rule.hits is None or category is None or category in rule.hits
