"""What the standard forms of a basis's annexes ask of a case's opening forms and replies
(Implementing Regulation (EU) 2025/2055: Annex II, the take charge form, Arts 7-9; Annex III,
the take back form, Arts 12-14).

- A take charge request rests on one of the provisions Annex II lists (Art. 7(1): the request
  follows the model of Annex II; its Part I offers these provisions, one to be selected), and
  an acceptance names one of them (Art. 8: the acceptance specifies the applicable provision).
  Only a case that keeps the basis's own criteria is checked: one that keeps the criteria of
  604/2013 (2024/1351 Art. 84(2)) follows Annex XII, which is published as images only and
  was not read, so its criteria are not checked.
- A take back notification names the situation it rests on, one of the six of Annex III
  (Art. 12(1)); it carries the Eurodac hit (Art. 12(2)-(5), Art. 13), except a notification
  under Art. 12(6), where no fingerprints could be compared.
- A non-confirmation on an incorrect indication of responsibility in Eurodac is offered by
  Annex III, Part II, only for a notification under Art. 36(1)(b) of 2024/1351.

The lists are data of the rule pack (its `forms` section); a basis without one (Dublin III,
the proposal) checks only that a take back notification carries its Eurodac hit. A form
that breaks them is refused with `conversation-rule` and the article, on both sides (the same
check runs at submission and at reception)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.deadlines import pack_named, pack_value
from gateway.core.policy import Reason, Rejection

FORMS_KEYS = frozenset(
    {"article", "verified", "source", "note", "take_charge", "take_back", "info_request", "group"}
)
INFO_REQUEST_KEYS = frozenset({"article", "item_purposes"})
GROUP_KEYS = frozenset({"article", "minimum"})
TAKE_CHARGE_KEYS = frozenset({"article", "criteria"})
TAKE_BACK_KEYS = frozenset({"article", "provisions", "hit_article", "non_confirmation"})
PROVISION_KEYS = frozenset({"label", "hit", "incorrect_indication", "reconsider_any_ground"})
INCORRECT_INDICATION = "incorrect-eurodac-indication"
"""The non-confirmation ground (take-back-confirmation's `cessation`) Annex III offers only
after a notification whose provision has `incorrect_indication`."""
_ARTICLE = re.compile(r"Art\. [0-9]{1,3}(\([0-9]{1,2}\))?")


class AnnexError(ValueError):
    """A pack's `forms` section that cannot be read."""


@dataclass(frozen=True)
class Provision:
    """One situation a take back notification may rest on (Annex III, Part I)."""

    label: str
    hit: bool
    """The notification carries the Eurodac hit it rests on."""
    incorrect_indication: bool = False
    """A non-confirmation may rest on an incorrect indication of responsibility in Eurodac."""
    reconsider_any_ground: bool = False
    """Its non-confirmation may be reconsidered whatever its ground (2025/2055 Art. 15(4))."""


@dataclass(frozen=True)
class FormRules:
    article: str
    verified: bool
    source: str
    note: str
    criteria: Mapping[str, str]
    """Annex II: the provisions a take charge request may rest on, with their names."""
    criteria_article: str
    provisions: Mapping[str, Provision]
    """Annex III: the situations a take back notification may rest on, by code."""
    provisions_article: str
    hit_article: str
    non_confirmation_article: str
    item_purposes: Mapping[str, frozenset[str]]
    """Annex VII: items of an information request that only some purposes may ask."""
    item_article: str
    group_minimum: int
    """Annex VI: a group transfer is confirmed for no fewer persons (Art. 26(1)(a))."""
    group_article: str


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise AnnexError(f"{where}: `{key}` is a non-empty string")
    return value


def _section(raw: Any, keys: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict) or set(raw) - keys:
        raise AnnexError(f"{where}: an object with keys {sorted(keys)}")
    return raw


def parse_forms(raw: Any, where: str) -> FormRules:
    """Read a pack's `forms` section; AnnexError says what is wrong and where."""
    top = _section(raw, FORMS_KEYS, where)
    charge = _section(top.get("take_charge"), TAKE_CHARGE_KEYS, f"{where}.take_charge")
    back = _section(top.get("take_back"), TAKE_BACK_KEYS, f"{where}.take_back")
    criteria = charge.get("criteria")
    if not isinstance(criteria, dict) or not criteria:
        raise AnnexError(f"{where}.take_charge.criteria: an object of articles and names")
    for article, name in criteria.items():
        if not _ARTICLE.fullmatch(article) or not isinstance(name, str):
            raise AnnexError(f"{where}.take_charge.criteria: {article!r} is not 'Art. N(p)'")
    provisions: dict[str, Provision] = {}
    raw_provisions = back.get("provisions")
    if not isinstance(raw_provisions, dict) or not raw_provisions:
        raise AnnexError(f"{where}.take_back.provisions: an object of codes and provisions")
    for code, spec in raw_provisions.items():
        at = f"{where}.take_back.provisions.{code}"
        spec = _section(spec, PROVISION_KEYS, at)
        flags = {k: spec.get(k, False) for k in PROVISION_KEYS - {"label"}}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise AnnexError(f"{at}: {sorted(flags)} are true or false")
        provisions[code] = Provision(label=_text(spec, "label", at), **flags)
    if not isinstance(top.get("verified"), bool):
        raise AnnexError(f"{where}: `verified` is true or false")
    info = _section(top.get("info_request"), INFO_REQUEST_KEYS, f"{where}.info_request")
    purposes = info.get("item_purposes")
    if not isinstance(purposes, dict) or not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in purposes.values()
    ):
        raise AnnexError(f"{where}.info_request.item_purposes: items and lists of purposes")
    group = _section(top.get("group"), GROUP_KEYS, f"{where}.group")
    minimum = group.get("minimum")
    if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
        raise AnnexError(f"{where}.group.minimum: a positive whole number")
    return FormRules(
        article=_text(top, "article", where),
        verified=bool(top["verified"]),
        source=_text(top, "source", where),
        note=str(top.get("note", "")),
        criteria=dict(criteria),
        criteria_article=_text(charge, "article", f"{where}.take_charge"),
        provisions=provisions,
        provisions_article=_text(back, "article", f"{where}.take_back"),
        hit_article=_text(back, "hit_article", f"{where}.take_back"),
        non_confirmation_article=_text(back, "non_confirmation", f"{where}.take_back"),
        item_purposes={item: frozenset(p) for item, p in purposes.items()},
        item_article=_text(info, "article", f"{where}.info_request"),
        group_minimum=minimum,
        group_article=_text(group, "article", f"{where}.group"),
    )


@functools.cache
def form_rules(legal_basis: str) -> FormRules | None:
    """The `forms` section of the pack `legal_basis` (None: it has none)."""
    pack = pack_named(legal_basis)
    raw = pack_value(pack, "forms")
    return None if raw is None else parse_forms(raw, f"{pack}.json: forms")


def _listed(article: Any, criteria: Mapping[str, str]) -> bool:
    """`Art. 25` covers `Art. 25(1)`; `Art. 29(1)` does not cover `Art. 29(3)`."""
    if not isinstance(article, str):
        return False
    return any(article == a or article.startswith(a + "(") for a in criteria)


def check_opening_or_reply(
    legal_basis: str,
    own_criteria: bool,
    message_type: str,
    form: Mapping[str, Any],
) -> None:
    """The checks on a take charge request, its acceptance and a take back notification (see
    the module's text); `own_criteria` is false where the case keeps another basis's criteria
    (2024/1351 Art. 84(2)), whose form (Annex XII) is not checked."""
    rules = form_rules(legal_basis)
    if rules is None:
        if message_type == "take-back-notification" and not form.get("eurodacHit"):
            raise Rejection(
                Reason.CONVERSATION_RULE,
                f"a take back notification carries the Eurodac hit it rests on: only a case "
                f"under a basis whose forms know notifications without one (2025/2055 Art. "
                f"12(6)) may leave it out, and this case's basis is {legal_basis}",
            )
        return
    if message_type in ("take-charge-request", "take-charge-reply") and own_criteria:
        if message_type == "take-charge-request":
            field, article, what = "criterion", form.get("criterion"), "request rests on"
        else:
            acceptance = form.get("acceptance")
            if not isinstance(acceptance, Mapping):
                return
            field, article, what = (
                "acceptance.legalBasis",
                acceptance.get("legalBasis"),
                ("acceptance names"),
            )
        if not _listed(article, rules.criteria):
            raise Rejection(
                Reason.CONVERSATION_RULE,
                f"a take charge {what} one of the provisions of the standard form "
                f"({rules.criteria_article}): {', '.join(rules.criteria)}; give it in {field}",
            )
    if message_type == "info-request":
        purpose = form.get("purpose")
        for item in form.get("item") or ():
            allowed = rules.item_purposes.get(item)
            if allowed is not None and purpose not in allowed:
                raise Rejection(
                    Reason.CONVERSATION_RULE,
                    f"an information request may ask for {item} only for the purpose of "
                    f"{' or '.join(sorted(allowed))} ({rules.item_article})",
                )
    if message_type == "take-back-notification":
        provision = rules.provisions.get(str(form.get("provision")))
        if provision is None:
            raise Rejection(
                Reason.CONVERSATION_RULE,
                f"a take back notification names the situation it rests on "
                f"({rules.provisions_article}): {', '.join(rules.provisions)} in provision",
            )
        if provision.hit and not form.get("eurodacHit"):
            raise Rejection(
                Reason.CONVERSATION_RULE,
                f"a take back notification under {provision.label} carries the Eurodac hit it "
                f"rests on ({rules.hit_article}): give it in eurodacHit",
            )


def check_non_confirmation(
    legal_basis: str, cessation: str | None, notification: Mapping[str, Any] | None
) -> None:
    """A non-confirmation on an incorrect indication in Eurodac answers only a notification
    whose provision offers it (Annex III, Part II: under Art. 36(1)(b) of 2024/1351). A
    notification that names no provision (a case opened before its basis had a `forms`
    section) or whose payload was erased is not checked."""
    rules = form_rules(legal_basis)
    if rules is None or cessation != INCORRECT_INDICATION or notification is None:
        return
    provision = rules.provisions.get(str(notification.get("provision")))
    if provision is None or provision.incorrect_indication:
        return
    offered = [p.label for p in rules.provisions.values() if p.incorrect_indication]
    raise Rejection(
        Reason.CONVERSATION_RULE,
        f"a non-confirmation on an incorrect indication of responsibility in Eurodac answers "
        f"only a notification under {' or '.join(offered)} "
        f"({rules.non_confirmation_article}); this one was under {provision.label}",
    )


def check_group_reply(
    legal_basis: str, notice: Mapping[str, Any] | None, reply: Mapping[str, Any]
) -> None:
    """A group transfer confirmed for a reduced number of persons keeps at least the
    minimum of a group transfer and no more than were announced (2025/2055 Annex VI, Part
    II: not below 10 persons, Art. 26(1)(a)). An erased announcement is not checked against."""
    rules = form_rules(legal_basis)
    confirmation = reply.get("confirmation")
    if rules is None or not isinstance(confirmation, Mapping):
        return
    persons = confirmation.get("persons")
    if not isinstance(persons, int):
        return
    announced = notice.get("persons") if notice is not None else None
    top = announced - 1 if isinstance(announced, int) else None
    if persons < rules.group_minimum or (top is not None and persons > top):
        within = f" and below the {announced} announced" if top is not None else ""
        raise Rejection(
            Reason.CONVERSATION_RULE,
            f"a confirmation for a reduced number of persons keeps at least "
            f"{rules.group_minimum}{within} ({rules.group_article}): give it in "
            "confirmation.persons, or confirm the whole group without it",
        )


def reconsider_any_ground(legal_basis: str, notification: Mapping[str, Any]) -> bool:
    """The notification's non-confirmation may be reconsidered whatever its ground: one
    under 2025/2055 Art. 12(6) (its provision, or the older `minorWithoutBiometrics` mark)."""
    if notification.get("minorWithoutBiometrics") is True:
        return True
    rules = form_rules(legal_basis)
    if rules is None:
        return False
    provision = rules.provisions.get(str(notification.get("provision")))
    return provision is not None and provision.reconsider_any_ground


def forms_markdown(rules: FormRules, status: Mapping[bool, str]) -> str:
    """One paragraph for the pack's docs page."""
    criteria = ", ".join(f"{a} ({n})" for a, n in rules.criteria.items())
    provisions = ", ".join(
        f"`{code}` {p.label}" + ("" if p.hit else " (no Eurodac hit)")
        for code, p in rules.provisions.items()
    )
    incorrect = " or ".join(p.label for p in rules.provisions.values() if p.incorrect_indication)
    return (
        f"**Standard forms** ({rules.article}, {status[rules.verified]}): a take charge "
        f"request, and its acceptance, name one of {criteria} ({rules.criteria_article}; not "
        f"checked for a case that keeps earlier criteria); a take back notification names its "
        f"`provision`, one of {provisions} ({rules.provisions_article}), and carries its "
        f"Eurodac hit where it rests on one ({rules.hit_article}); a non-confirmation on an "
        f"incorrect indication in Eurodac answers only a notification under {incorrect} "
        f"({rules.non_confirmation_article}); an information request asks "
        + "; ".join(
            f"`{i}` only for {' or '.join(sorted(p))}" for i, p in rules.item_purposes.items()
        )
        + f" ({rules.item_article}); a group transfer confirmed for a reduced number keeps at "
        f"least {rules.group_minimum} persons ({rules.group_article}). Checked at submission "
        f"and at reception "
        f"(`conversation-rule`). Source: {rules.source}."
    )


def forms_json(rules: FormRules | None) -> dict[str, Any] | None:
    """The section as `gateway rules show --format json` prints it."""
    if rules is None:
        return None
    return {
        "article": rules.article,
        "verified": rules.verified,
        "source": rules.source,
        "take_charge": {"article": rules.criteria_article, "criteria": dict(rules.criteria)},
        "info_request": {
            "article": rules.item_article,
            "item_purposes": {i: sorted(p) for i, p in rules.item_purposes.items()},
        },
        "group": {"article": rules.group_article, "minimum": rules.group_minimum},
        "take_back": {
            "article": rules.provisions_article,
            "hit_article": rules.hit_article,
            "non_confirmation": rules.non_confirmation_article,
            "provisions": {
                code: {
                    "label": p.label,
                    "hit": p.hit,
                    "incorrect_indication": p.incorrect_indication,
                    "reconsider_any_ground": p.reconsider_any_ground,
                }
                for code, p in rules.provisions.items()
            },
        },
    }
