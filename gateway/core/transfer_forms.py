"""When the standard transfer form is sent (Implementing Regulation (EU) 2025/2055 Arts 24-26):
no more than 14 and no less than 7 days before the arrival, or the date by which the person is
to appear; at least 21 days before where the person has special needs, is an unaccompanied
minor or (under escort) poses a threat to internal security; and a voluntary transfer is
confirmed not to concern any of these (Art. 24(1)).

The text gives no consequence for a form sent outside these days, so the gateway only warns
the case system at submission (never refuses). The days are data of the rule pack (its
`transfer_form` section); a basis without one (Dublin III, the proposal) checks nothing."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.core.deadlines import pack_named, pack_value

TRANSFER_FORM_KEYS = frozenset({"article", "verified", "source", "note", "types"})
TYPE_KEYS = frozenset(
    {
        "earliest",
        "latest",
        "article",
        "advance",
        "advance_grounds",
        "advance_article",
        "excluded",
        "excluded_article",
    }
)
GROUNDS = frozenset({"special-needs", "unaccompanied-minor", "security-threat"})


class TransferFormError(ValueError):
    """A pack's `transfer_form` section that cannot be read."""


@dataclass(frozen=True)
class TransferTiming:
    """The days one type of transfer (voluntary, supervised departure, escort) asks."""

    earliest: int
    """At most this many days before the arrival."""
    latest: int
    """At least this many days before the arrival."""
    article: str
    advance: int | None = None
    """At least this many days before, instead, where one of `advance_grounds` applies."""
    advance_grounds: frozenset[str] = frozenset()
    advance_article: str = ""
    excluded: frozenset[str] = frozenset()
    """Grounds this type of transfer is confirmed not to concern (voluntary: Art. 24(1))."""
    excluded_article: str = ""


@dataclass(frozen=True)
class TransferFormRules:
    article: str
    verified: bool
    source: str
    types: Mapping[str, TransferTiming]


def parse_transfer_form(raw: Any, where: str) -> TransferFormRules:
    if not isinstance(raw, dict) or set(raw) - TRANSFER_FORM_KEYS:
        raise TransferFormError(f"{where}: an object with keys {sorted(TRANSFER_FORM_KEYS)}")
    types = raw.get("types")
    if not isinstance(types, dict) or not types:
        raise TransferFormError(f"{where}: 'types' maps transfer types to their days")
    parsed: dict[str, TransferTiming] = {}
    for name, spec in types.items():
        at = f"{where}: types.{name}"
        if not isinstance(spec, dict) or set(spec) - TYPE_KEYS:
            raise TransferFormError(f"{at}: an object with keys {sorted(TYPE_KEYS)}")
        grounds = frozenset(spec.get("advance_grounds", [])) | frozenset(spec.get("excluded", []))
        if grounds - GROUNDS:
            raise TransferFormError(f"{at}: unknown grounds {sorted(grounds - GROUNDS)}")
        try:
            timing = TransferTiming(
                earliest=int(spec["earliest"]),
                latest=int(spec["latest"]),
                article=str(spec["article"]),
                advance=int(spec["advance"]) if "advance" in spec else None,
                advance_grounds=frozenset(spec.get("advance_grounds", [])),
                advance_article=str(spec.get("advance_article", "")),
                excluded=frozenset(spec.get("excluded", [])),
                excluded_article=str(spec.get("excluded_article", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferFormError(f"{at}: {exc!r}") from exc
        if not 0 <= timing.latest <= timing.earliest:
            raise TransferFormError(f"{at}: 'latest' must be between 0 and 'earliest'")
        parsed[str(name)] = timing
    if not isinstance(raw.get("verified"), bool) or not isinstance(raw.get("source"), str):
        raise TransferFormError(f"{where}: needs 'verified' (true or false) and a 'source'")
    return TransferFormRules(str(raw.get("article", "")), raw["verified"], raw["source"], parsed)


def timing_warnings(
    rules: TransferFormRules,
    transfer_type: str | None,
    arrival: date | None,
    sent: date,
    grounds: frozenset[str],
) -> list[str]:
    """What the case system is told about a transfer form sent on `sent` (the sender's
    day) for an arrival (or appearance) on `arrival`: nothing when it keeps to the days."""
    if transfer_type is None or arrival is None:
        return [
            f"a transfer form gives the type of transfer and the date of the arrival "
            f"(transferType, arrivalDate; {rules.article}): its timing was not checked"
        ]
    timing = rules.types.get(transfer_type)
    if timing is None:
        return []
    out: list[str] = []
    days = (arrival - sent).days
    excluded = sorted(grounds & timing.excluded)
    if excluded:
        out.append(
            f"a {transfer_type} transfer is confirmed not to concern {', '.join(excluded)} "
            f"({timing.excluded_article}): choose a supervised departure or an escort"
        )
    advance = sorted(grounds & timing.advance_grounds)
    if advance and timing.advance is not None:
        if days < timing.advance:
            out.append(
                f"the transfer form is sent {days} days before the arrival; for "
                f"{', '.join(advance)} it is sent at least {timing.advance} days before "
                f"({timing.advance_article})"
            )
        return out
    if not timing.latest <= days <= timing.earliest:
        out.append(
            f"the transfer form is sent {days} days before the arrival; it is sent no more "
            f"than {timing.earliest} and no less than {timing.latest} days before "
            f"({timing.article})"
        )
    return out


@functools.cache
def transfer_form_rules(legal_basis: str) -> TransferFormRules | None:
    """The `transfer_form` section of the pack `legal_basis` (None: it has none)."""
    pack = pack_named(legal_basis)
    raw = pack_value(pack, "transfer_form")
    return None if raw is None else parse_transfer_form(raw, f"{pack}.json: transfer_form")


def transfer_form_markdown(rules: TransferFormRules, status: Mapping[bool, str]) -> str:
    """One paragraph for the pack's docs page."""
    parts = []
    for name, t in rules.types.items():
        text = f"`{name}` {t.earliest} to {t.latest} days before ({t.article})"
        if t.advance is not None:
            text += (
                f", at least {t.advance} days for {', '.join(sorted(t.advance_grounds))} "
                f"({t.advance_article})"
            )
        if t.excluded:
            text += f", never for {', '.join(sorted(t.excluded))} ({t.excluded_article})"
        parts.append(text)
    return (
        f"**Transfer form** ({rules.article}, {status[rules.verified]}): sent {'; '.join(parts)}. "
        "Checked at submission of a transfer notice `arrangements` (its `transferType`, "
        "`arrivalDate` and `circumstance`) with a warning: the text gives no consequence for "
        f"a form sent outside these days. Source: {rules.source}."
    )
