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
from gateway.core.deadlines import DeadlineError, pack_data, pack_named

ACTING = frozenset({"sender", "receiver", "requesting", "requested"})


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


@dataclass(frozen=True)
class Choice:
    """One candidate limit: `rule` when the form (or the header) meets `when`."""

    rule: str
    when: Mapping[str, Any]
    requested_date: str | None = None
    """Dotted path of the form field holding a requested date (urgent requests)."""


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
        return OpenSpec(acting, (Choice(str(raw["rule"]), {}),))
    choices = tuple(
        Choice(str(c["rule"]), dict(c.get("when", {})), c.get("requested_date"))
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
    return "any_field" not in when or any(_field(form, f) for f in when["any_field"])


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


def _opening(spec: OpenSpec, form: Mapping[str, Any], urgent: bool, acting: str) -> Opening | None:
    for choice in spec.choices:
        if _meets(choice.when, form, urgent):
            text = _field(form, choice.requested_date) if choice.requested_date else None
            requested = date.fromisoformat(text) if isinstance(text, str) else None
            return Opening(choice.rule, acting, requested)
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
    return Changes(open=tuple(openings), close=spec.close, close_reason=spec.close_reason)
