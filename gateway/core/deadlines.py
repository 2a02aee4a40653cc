"""Time-limit rules as data: one file per legal basis in gateway/core/rules, holding each
limit's period, what it runs from, who acts, its article and the consequence of silence.
Which messages open and close a limit is code (`core/tracking.py`), keyed by rule name: a
legal basis with other limits or other forms needs both."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.calendar import Period, add_period, due_date, event_day, expires_at

RULE_KEYS = frozenset(
    {"name", "period", "runs_from", "acting", "article", "consequence", "requested_date"}
)


class DeadlineError(ValueError):
    """A rule file, rule name or request that cannot give a deadline."""


@dataclass(frozen=True)
class Rule:
    name: str
    period: Period
    runs_from: str
    acting: str
    article: str
    consequence: str | None
    requested_minimum: Period | None = None
    """Set when the party may request a date instead of the period (urgent requests)."""


@dataclass(frozen=True)
class RuleSet:
    legal_basis: str
    rules: Mapping[str, Rule]


@dataclass(frozen=True)
class Deadline:
    rule: str
    due_date: date
    expires_at: datetime


def parse_rule_set(data: Any, source: str) -> RuleSet:
    if not isinstance(data, dict) or not isinstance(data.get("legal_basis"), str):
        raise DeadlineError(f"{source}: needs a 'legal_basis' and a 'rules' list")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        raise DeadlineError(f"{source}: 'rules' must be a list")
    rules: dict[str, Rule] = {}
    for raw in raw_rules:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            raise DeadlineError(f"{source}: every rule needs a name")
        unknown = set(raw) - RULE_KEYS
        if unknown:
            raise DeadlineError(f"{source}: rule {name}: unknown keys {sorted(unknown)}")
        try:
            minimum = raw.get("requested_date")
            rule = Rule(
                name=name,
                period=Period.parse(str(raw["period"])),
                runs_from=str(raw["runs_from"]),
                acting=str(raw["acting"]),
                article=str(raw["article"]),
                consequence=raw.get("consequence"),
                requested_minimum=Period.parse(minimum["minimum"]) if minimum else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeadlineError(f"{source}: rule {name}: {exc}") from exc
        if rule.acting not in ("requesting", "requested"):
            raise DeadlineError(f"{source}: rule {name}: acting must be requesting or requested")
        if name in rules:
            raise DeadlineError(f"{source}: rule {name} is defined twice")
        rules[name] = rule
    return RuleSet(data["legal_basis"], rules)


def load_rule_set(name: str = "com-2020-610") -> RuleSet:
    """The packaged rule set `name` (a file gateway/core/rules/<name>.json)."""
    if name not in available_rule_sets():
        raise DeadlineError(
            f"unknown legal basis {name!r}; available: {', '.join(available_rule_sets())}"
        )
    text = resources.files("gateway.core.rules").joinpath(f"{name}.json").read_text("utf-8")
    try:
        return parse_rule_set(json.loads(text), f"{name}.json")
    except json.JSONDecodeError as exc:
        raise DeadlineError(f"{name}.json is not JSON: {exc}") from exc


def available_rule_sets() -> list[str]:
    folder = resources.files("gateway.core.rules")
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def compute(rule: Rule, start: datetime, zone: ZoneInfo, requested: date | None = None) -> Deadline:
    """The deadline of `rule` for an event at `start`, in the acting authority's `zone`.
    An urgent request may name its reply date, at least `requested_minimum` after the
    event day (Art. 30(7))."""
    if requested is not None:
        if rule.requested_minimum is None:
            raise DeadlineError(f"rule {rule.name} does not take a requested date")
        earliest = add_period(event_day(start, zone), rule.requested_minimum)
        if requested < earliest:
            raise DeadlineError(
                f"the requested date {requested.isoformat()} is less than "
                f"{rule.requested_minimum} after the start ({earliest.isoformat()} at the "
                "earliest)"
            )
        due = requested
    else:
        due = due_date(start, rule.period, zone)
    return Deadline(rule.name, due, expires_at(due, zone))
