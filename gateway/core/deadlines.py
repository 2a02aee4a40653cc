"""Time-limit rules as data: one rule pack per legal basis in gateway/core/rules, holding
each limit's period, what it runs from, who acts, its article, the consequence of silence,
whether the value was verified against the official text and where it comes from, and the
basis's counting rule (Art. 65 of COM(2020) 610, Art. 75 of 2024/1351, Art. 42 of 604/2013).
Which messages open and close a limit is still code (`core/tracking.py`), keyed by rule name:
a legal basis with other forms needs both."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.calendar import Period, add_period, due_date, event_day, expires_at
from gateway.core.official_days import UnknownState, off_day
from gateway.core.references import ART20_SCHEME, ReferenceScheme, parse_scheme

RULE_KEYS = frozenset(
    {
        "name",
        "period",
        "runs_from",
        "acting",
        "article",
        "consequence",
        "requested_date",
        "verified",
        "source",
        "note",
        "waived_by",
        "hits",
        "extended_by",
    }
)
PACK_KEYS = frozenset(
    {
        "legal_basis",
        "title",
        "version",
        "counting",
        "applies_from",
        "sources",
        "rules",
        "conversations",
        "tracking",
        "derogations",
        "superseded_by",
        "references",
        "transfer_form",
        "reconsideration",
        "forms",
    }
)
"""A pack's sections; `references` (how its cases number their transmissions) is read by
`core/references.py`, `transfer_form` (when a transfer form is sent) by
`core/transfer_forms.py`, `reconsideration` (which non-confirmations may be reconsidered) by
`service/cases.py`, `forms` (what the standard forms' annexes ask) by `core/annexes.py`;
`conversations` (which message may follow which) is read by `core/conversations.py`,
`tracking` (which message opens and closes which limit) by `core/tracking.py`."""
COUNTING_KEYS = frozenset({"article", "roll_over", "verified", "source", "note"})
DEROGATION_KEYS = frozenset({"article", "periods", "verified", "source", "note"})
APPLIES_KEYS = frozenset(
    {
        "date",
        "verified",
        "source",
        "note",
        "earlier_criteria",
        "criteria_article",
        "earlier_criteria_form",
    }
)
SUPERSEDED_KEYS = frozenset({"legal_basis", "note"})


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
    requested_grounds: frozenset[str] | None = None
    """The grounds an urgent reply may be asked on (2024/1351 Art. 39(2): registered after a
    refusal of entry or a return decision); None: the basis names none."""
    requested_article: str = ""
    """Where the requested period and its grounds are laid down (2024/1351 Art. 39(2))."""
    """Set when the requesting party may ask for a reply date (urgent requests): that date is
    shown as due, while silence takes effect only at the end of `period`."""
    verified: bool = False
    """True when the value was read in the official text; False: shown as unverified."""
    source: str = ""
    note: str = ""
    waived_by: str | None = None
    """A form field that, when true, lifts the limit (2024/1351 Art. 39(1), fourth
    subparagraph: a request for an unaccompanied minor may be made at any time before a
    first decision on the substance)."""
    hits: frozenset[str] | None = None
    """For a limit that runs from a hit: the hit categories (a form's `hitCategory`) it runs
    from; None: any hit."""
    extended_by: str | None = None
    """A rule whose late compliance by the other State extends this limit by the delay
    (2024/1351 Art. 51(5): the information reply, for the Art. 39 request limits)."""


@dataclass(frozen=True)
class Counting:
    """How a basis counts its limits. `roll_over`: a limit that ends on a Saturday, Sunday or
    official holiday of the acting State ends with the next working day (Art. 75(c) of
    2024/1351); without it those days simply count (Art. 65 of the proposal, Art. 42 of
    604/2013)."""

    article: str
    roll_over: bool
    verified: bool
    source: str
    note: str = ""


@dataclass(frozen=True)
class Applicability:
    """The day from which a basis applies, with how sure we are of it."""

    date: date
    verified: bool
    source: str
    note: str = ""
    earlier_criteria: str | None = None
    """The pack whose criteria applications registered before `date` keep (2024/1351 Art.
    84(2): those of 604/2013), with the article that says so."""
    criteria_article: str = ""
    earlier_criteria_form: str = ""
    """The standard form a take charge request uses for such an application (2025/2055 Art.
    7(1), second subparagraph: Annex XII)."""


@dataclass(frozen=True)
class Derogation:
    """The periods a Member State authorised to derogate (a crisis or force majeure: Council
    implementing decision under 2024/1359 Art. 12) applies to the limits it must meet that
    open during the authorised period, by rule name."""

    article: str
    periods: Mapping[str, Period]
    verified: bool
    source: str
    note: str = ""


@dataclass(frozen=True)
class RuleSet:
    legal_basis: str
    """The label recorded with every case and deadline opened under this basis."""
    rules: Mapping[str, Rule]
    name: str = ""
    """The pack's file name, e.g. 2024-1351."""
    title: str = ""
    version: str = "1"
    counting: Counting | None = None
    applies_from: Applicability | None = None
    sources: Mapping[str, str] | None = None
    derogation: Derogation | None = None
    references: ReferenceScheme = ART20_SCHEME
    """How the basis's cases number their transmissions (1560/2003 Art. 20 unless the pack
    says otherwise)."""
    superseded_by: str | None = None
    """The pack that replaced this one: this one then serves only applications registered
    before that one's `applies_from` (604/2013 after 2024/1351)."""

    @property
    def rolls_over(self) -> bool:
        return self.counting is not None and self.counting.roll_over

    def rule(self, name: str) -> Rule:
        if name not in self.rules:
            raise DeadlineError(
                f"unknown rule {name!r} for {self.name or self.legal_basis}; known: "
                f"{', '.join(sorted(self.rules))}"
            )
        return self.rules[name]

    def derogated(self, name: str) -> Rule:
        """Rule `name` as a State authorised to derogate must meet it: the derogating period,
        and the derogation's article with the rule's; the rule itself where the derogation
        does not change it."""
        rule = self.rule(name)
        d = self.derogation
        if d is None or name not in d.periods:
            return rule
        return replace(
            rule,
            period=d.periods[name],
            article=f"{rule.article} as derogated by {d.article}",
            verified=rule.verified and d.verified,
        )

    def applied(self, name: str, derogating: bool) -> Rule:
        """Rule `name` as it applies to one limit: derogated (see `derogated`) when the limit
        opened under a crisis derogation, else as written."""
        return self.derogated(name) if derogating else self.rule(name)

    def extend(self, deadline: Deadline, days: int, zone: ZoneInfo, state: str | None) -> Deadline:
        """`deadline` extended by `days` (2024/1351 Art. 51(5): by the delay of a reply),
        moved on to the next working day where this basis rolls a limit over."""
        due = deadline.due_date + timedelta(days=days)
        if self.rolls_over and state is not None:
            working = off_day(state)
            while working(due):
                due += timedelta(days=1)
        return replace(deadline, due_date=due, expires_at=expires_at(due, zone))

    def derogates(self, name: str) -> bool:
        """Whether this pack's derogation changes rule `name`."""
        return self.derogated(name) != self.rule(name)

    def deadline(
        self,
        name: str,
        start: datetime,
        zone: ZoneInfo,
        *,
        state: str | None = None,
        requested: date | None = None,
        derogating: bool = False,
    ) -> Deadline:
        """The deadline of rule `name` for an event at `start`, acted on by an authority in
        `zone` of Member State `state` (whose official holidays count where this basis
        rolls a limit over to the next working day: then `state` is required); `derogating`:
        the acting State is authorised to derogate (see `derogated`)."""
        rule = self.applied(name, derogating)
        working: Callable[[date], bool] | None = None
        if state is not None or self.rolls_over:
            if state is None:
                article = self.counting.article if self.counting else "its counting rule"
                raise DeadlineError(
                    f"{self.name} moves a limit ending on a Saturday, Sunday or official "
                    f"holiday to the next working day ({article}): give the acting State "
                    "(--state, e.g. NL)"
                )
            try:
                working = off_day(state)
            except UnknownState as exc:
                raise DeadlineError(str(exc)) from exc
        return compute(rule, start, zone, requested, off_day=working if self.rolls_over else None)


@dataclass(frozen=True)
class Deadline:
    rule: str
    due_date: date
    """The last day of the limit: silence takes effect (its consequence) after it."""
    expires_at: datetime
    requested_date: date | None = None
    """The reply date an urgent request asked for, shown as due; silence takes effect only
    at `due_date`."""


def _text(raw: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = raw.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise DeadlineError(f"{where}: {key!r} must be a non-empty text")
    return value


def _flag(raw: Mapping[str, Any], key: str, where: str) -> bool:
    value = raw.get(key)
    if not isinstance(value, bool):
        raise DeadlineError(f"{where}: {key!r} must be true or false")
    return value


def _known(raw: Any, keys: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise DeadlineError(f"{where}: must be an object")
    unknown = set(raw) - keys
    if unknown:
        raise DeadlineError(f"{where}: unknown keys {sorted(unknown)}")
    return raw


def _rule(raw: Any, source: str) -> Rule:
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        raise DeadlineError(f"{source}: every rule needs a name")
    where = f"{source}: rule {name}"
    raw = _known(raw, RULE_KEYS, where)
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
            requested_grounds=(
                frozenset(str(g) for g in minimum["grounds"])
                if minimum and "grounds" in minimum
                else None
            ),
            requested_article=str(minimum.get("article", "")) if minimum else "",
            verified=_flag(raw, "verified", where),
            source=_text(raw, "source", where),
            note=_text(raw, "note", where, required=False),
            waived_by=_text(raw, "waived_by", where, required=False) or None,
            hits=frozenset(str(h) for h in raw["hits"]) if "hits" in raw else None,
            extended_by=_text(raw, "extended_by", where, required=False) or None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DeadlineError):
            raise
        raise DeadlineError(f"{where}: {exc}") from exc
    if rule.acting not in ("requesting", "requested"):
        raise DeadlineError(f"{where}: acting must be requesting or requested")
    return rule


def _counting(raw: Any, source: str) -> Counting:
    where = f"{source}: counting"
    raw = _known(raw, COUNTING_KEYS, where)
    return Counting(
        article=_text(raw, "article", where),
        roll_over=_flag(raw, "roll_over", where),
        verified=_flag(raw, "verified", where),
        source=_text(raw, "source", where),
        note=_text(raw, "note", where, required=False),
    )


def _applies_from(raw: Any, source: str) -> Applicability:
    where = f"{source}: applies_from"
    raw = _known(raw, APPLIES_KEYS, where)
    try:
        day = date.fromisoformat(_text(raw, "date", where))
    except ValueError as exc:
        raise DeadlineError(f"{where}: 'date' must be a date (YYYY-MM-DD)") from exc
    return Applicability(
        date=day,
        verified=_flag(raw, "verified", where),
        source=_text(raw, "source", where),
        note=_text(raw, "note", where, required=False),
        earlier_criteria=raw.get("earlier_criteria"),
        criteria_article=_text(raw, "criteria_article", where, required=False),
        earlier_criteria_form=_text(raw, "earlier_criteria_form", where, required=False),
    )


def _superseded_by(raw: Any, source: str) -> str:
    where = f"{source}: superseded_by"
    return _text(_known(raw, SUPERSEDED_KEYS, where), "legal_basis", where)


def parse_rule_set(data: Any, source: str, name: str = "") -> RuleSet:
    if not isinstance(data, dict) or not isinstance(data.get("legal_basis"), str):
        raise DeadlineError(f"{source}: needs a 'legal_basis' and a 'rules' list")
    _known(data, PACK_KEYS, source)
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        raise DeadlineError(f"{source}: 'rules' must be a list")
    rules: dict[str, Rule] = {}
    for raw in raw_rules:
        rule = _rule(raw, source)
        if rule.name in rules:
            raise DeadlineError(f"{source}: rule {rule.name} is defined twice")
        rules[rule.name] = rule
    if "counting" not in data:
        raise DeadlineError(f"{source}: needs a 'counting' rule (article, roll_over, ...)")
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise DeadlineError(f"{source}: 'sources' must map names to texts")
    return RuleSet(
        legal_basis=data["legal_basis"],
        rules=rules,
        name=name or data["legal_basis"],
        title=_text(data, "title", source, required=False),
        version=str(data.get("version", "1")),
        counting=_counting(data["counting"], source),
        applies_from=(
            _applies_from(data["applies_from"], source) if "applies_from" in data else None
        ),
        sources=sources,
        derogation=_derogation(data["derogations"], source, rules)
        if "derogations" in data
        else None,
        superseded_by=(
            _superseded_by(data["superseded_by"], source) if "superseded_by" in data else None
        ),
        references=_references(data["references"], source)
        if "references" in data
        else ART20_SCHEME,
    )


def _references(raw: Any, source: str) -> ReferenceScheme:
    try:
        return parse_scheme(raw, f"{source}: references")
    except ValueError as exc:
        raise DeadlineError(str(exc)) from exc


def _derogation(raw: Any, source: str, rules: Mapping[str, Rule]) -> Derogation:
    where = f"{source}: derogations"
    data = _known(raw, DEROGATION_KEYS, where)
    periods = data.get("periods")
    if not isinstance(periods, dict) or not periods:
        raise DeadlineError(f"{where}: 'periods' must map rule names to periods")
    unknown = sorted(set(periods) - set(rules))
    if unknown:
        raise DeadlineError(f"{where}: names rules the pack does not have: {unknown}")
    return Derogation(
        article=_text(data, "article", where),
        periods={str(k): Period.parse(str(v)) for k, v in periods.items()},
        verified=_flag(data, "verified", where),
        source=_text(data, "source", where),
        note=_text(data, "note", where, required=False),
    )


def pack_data(name: str) -> dict[str, Any]:
    """The packaged rule pack `name` (a file gateway/core/rules/<name>.json), as JSON (a
    copy of its own: the caller may change it)."""
    return copy.deepcopy(_pack(name))


@functools.cache
def _pack(name: str) -> dict[str, Any]:
    """The pack `name`, read once per process (packaged data does not change while it runs);
    never to be changed by its readers."""
    if name not in available_rule_sets():
        raise DeadlineError(
            f"unknown legal basis {name!r}; available: {', '.join(available_rule_sets())}"
        )
    text = resources.files("gateway.core.rules").joinpath(f"{name}.json").read_text("utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeadlineError(f"{name}.json is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DeadlineError(f"{name}.json: must be an object")
    return data


def load_rule_set(name: str = "com-2020-610") -> RuleSet:
    """The packaged rule set `name` (a file gateway/core/rules/<name>.json)."""
    return parse_rule_set(pack_data(name), f"{name}.json", name)


@functools.cache
def packaged_rule_set(name: str) -> RuleSet:
    """`load_rule_set(name)`, parsed once per process."""
    return load_rule_set(name)


def pack_named(label: str) -> str:
    """The pack whose cases are recorded with `label` (e.g. "COM(2020) 610")."""
    for name in available_rule_sets():
        if name == label or _pack(name).get("legal_basis") == label:
            return name
    raise DeadlineError(
        f"no rule pack records its cases as {label!r}; available: "
        f"{', '.join(available_rule_sets())}"
    )


def available_rule_sets() -> list[str]:
    return list(_packaged())


@functools.cache
def _packaged() -> tuple[str, ...]:
    folder = resources.files("gateway.core.rules")
    return tuple(
        sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))
    )


def pack_value(name: str, key: str) -> Any:
    """One top-level value of the pack `name` (None when it has none), read without a copy."""
    return _pack(name).get(key)


def compute(
    rule: Rule,
    start: datetime,
    zone: ZoneInfo,
    requested: date | None = None,
    *,
    off_day: Callable[[date], bool] | None = None,
) -> Deadline:
    """The deadline of `rule` for an event at `start`, in the acting authority's `zone`.
    With `off_day`, a limit ending on such a day ends with the next working day (Art. 75(c)
    of 2024/1351). An urgent request may name its reply date, at least `requested_minimum`
    after the event day; that date is shown as due, and silence still takes effect only at
    the end of the rule's period (Art. 30(8) of the proposal, 40(8) of 2024/1351, 22(7) of
    604/2013)."""
    due = due_date(start, rule.period, zone)
    while off_day is not None and off_day(due):
        due += timedelta(days=1)
    if requested is not None:
        check_requested(rule, start, zone, requested)
    return Deadline(rule.name, due, expires_at(due, zone), requested)


def check_requested(rule: Rule, start: datetime, zone: ZoneInfo, requested: date) -> None:
    """DeadlineError unless `rule` takes a requested date and `requested` is at least its
    `requested_minimum` after the event day of `start` in `zone` (2024/1351 Art. 39(2),
    604/2013 Art. 21(2): one week)."""
    if rule.requested_minimum is None:
        raise DeadlineError(f"rule {rule.name} does not take a requested date")
    earliest = add_period(event_day(start, zone), rule.requested_minimum)
    if requested < earliest:
        raise DeadlineError(
            f"the requested date {requested.isoformat()} is less than "
            f"{rule.requested_minimum} after the start ({earliest.isoformat()} at the "
            "earliest)"
        )
