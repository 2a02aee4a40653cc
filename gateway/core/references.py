"""Reference numbers, in the two schemes the legal bases use.

1560/2003 Art. 20 (Dublin III cases and the proposal's): the sender's Eurodac letters, a type
digit and the national case number; a request resting on a Eurodac hit also names the
requested State's Eurodac reference. 2025/2055 Art. 5 (cases under 2024/1351): the sender's
Eurodac letters, a two-digit type (01 to 12), a "P" when the case has priority (minors, or a
request under Arts 25 to 28 or 34 of 2024/1351), then the national case number; a group
transfer form (type 09) has "G", the number of persons and the intended date (day/month/year)
instead. Replies carry the request's reference unchanged.

Art. 5 puts the national case number right after the type or the "P" with no separator: a
reference read back splits a leading "P" off as the priority mark (BE01PAIR-1 reads as
priority and case AIR-1, with or without priority meant: the text, which is all a reference
is compared by, is the same either way), and a case number that would read as a group mark
(G, persons and a date) is refused."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

ART20 = "1560/2003 Art. 20"
ART5 = "2025/2055 Art. 5"
SCHEMES = (ART20, ART5)

CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/.\-]{0,39}$")
EURODAC_REFERENCE = re.compile(r"^[A-Z]{2}[0-9][A-Za-z0-9]{1,30}$")
REFERENCE = re.compile(
    r"^(?P<ms>[A-Z]{2})(?P<digit>[1-7])(?P<case>[A-Za-z0-9][A-Za-z0-9/.\-]{0,39})"
    r"(?::(?P<eurodac>[A-Z]{2}[0-9][A-Za-z0-9]{1,30}))?$"
)


class InvalidReference(ValueError):
    """A reference number or one of its parts is malformed."""


def _check_member_state(member_state: str) -> None:
    if not re.fullmatch(r"[A-Z]{2}", member_state):
        raise InvalidReference("member state letters must be two capital letters")


def _check_case_number(case_number: str | None) -> None:
    if case_number is None or not CASE_NUMBER.match(case_number):
        raise InvalidReference(
            "national case number must be 1-40 letters, digits, '/', '.' or '-', "
            "starting with a letter or digit"
        )


def _check_eurodac_reference(eurodac_reference: str | None) -> None:
    if eurodac_reference is not None and not EURODAC_REFERENCE.match(eurodac_reference):
        raise InvalidReference(
            "Eurodac reference must start with the Member State letters and a category digit"
        )


@dataclass(frozen=True)
class Reference:
    member_state: str
    type_digit: int
    case_number: str
    eurodac_reference: str | None = None

    def __str__(self) -> str:
        base = f"{self.member_state}{self.type_digit}{self.case_number}"
        return f"{base}:{self.eurodac_reference}" if self.eurodac_reference else base

    @classmethod
    def build(
        cls,
        member_state: str,
        type_digit: int,
        case_number: str,
        eurodac_reference: str | None = None,
    ) -> Reference:
        _check_member_state(member_state)
        if not 1 <= type_digit <= 7:
            raise InvalidReference("type digit must be between 1 and 7")
        _check_case_number(case_number)
        _check_eurodac_reference(eurodac_reference)
        return cls(member_state, type_digit, case_number, eurodac_reference)

    @classmethod
    def parse(cls, text: str) -> Reference:
        m = REFERENCE.match(text)
        if not m:
            raise InvalidReference(
                "not a reference number of 1560/2003 Art. 20 (Member State letters, type "
                "digit, national case number)"
            )
        return cls(m["ms"], int(m["digit"]), m["case"], m["eurodac"])


ART5_REFERENCE = re.compile(
    r"^(?P<ms>[A-Z]{2})(?P<type>0[1-9]|1[0-2])"
    r"(?:G(?P<persons>[1-9][0-9]{0,3})(?P<day>[0-9]{2}/[0-9]{2}/[0-9]{4})"
    r"|(?P<priority>P(?=[A-Za-z0-9]))?(?P<case>[A-Za-z0-9][A-Za-z0-9/.\-]{0,39}))"
    r"(?::(?P<eurodac>[A-Z]{2}[0-9][A-Za-z0-9]{1,30}))?$"
)


GROUP_MARK = re.compile(r"G[1-9][0-9]{0,3}[0-9]{2}/[0-9]{2}/[0-9]{4}")


@dataclass(frozen=True)
class GroupTransfer:
    """The group mark of a type 09 reference (2025/2055 Art. 5(4))."""

    persons: int
    day: date


@dataclass(frozen=True)
class Art5Reference:
    """A reference number of 2025/2055 Art. 5 (cases under Regulation 2024/1351)."""

    member_state: str
    type_code: str
    case_number: str | None
    priority: bool = False
    group: GroupTransfer | None = None
    eurodac_reference: str | None = None

    def __str__(self) -> str:
        head = f"{self.member_state}{self.type_code}"
        if self.group is not None:
            base = f"{head}G{self.group.persons}{self.group.day.strftime('%d/%m/%Y')}"
        else:
            base = f"{head}{'P' if self.priority else ''}{self.case_number}"
        return f"{base}:{self.eurodac_reference}" if self.eurodac_reference else base

    @classmethod
    def build(
        cls,
        member_state: str,
        type_code: str,
        case_number: str | None,
        *,
        priority: bool = False,
        group: GroupTransfer | None = None,
        eurodac_reference: str | None = None,
    ) -> Art5Reference:
        _check_member_state(member_state)
        if not re.fullmatch(r"0[1-9]|1[0-2]", type_code):
            raise InvalidReference(f"type must be 01 to 12 ({ART5}(1)), not {type_code!r}")
        if group is not None:
            if type_code != "09" or priority or case_number is not None:
                raise InvalidReference(
                    f"a group transfer reference is type 09, 'G', the number of persons and "
                    f"the intended date, with no priority mark or case number ({ART5}(4))"
                )
            if not 1 <= group.persons <= 9999:
                raise InvalidReference("a group transfer names 1 to 9999 persons")
            return cls(member_state, type_code, None, group=group)
        _check_case_number(case_number)
        assert case_number is not None
        if GROUP_MARK.fullmatch(case_number):
            raise InvalidReference(
                f"in a reference of {ART5} 'G', a number and a date after the type mark a "
                "group transfer: write the national case number another way"
            )
        _check_eurodac_reference(eurodac_reference)
        return cls(member_state, type_code, case_number, priority, None, eurodac_reference)

    @classmethod
    def parse(cls, text: str) -> Art5Reference:
        m = ART5_REFERENCE.match(text)
        if not m:
            raise InvalidReference(
                f"not a reference number of {ART5} (Member State letters, two-digit type, "
                "'P' for priority, national case number; or type 09, 'G', persons and date)"
            )
        if m["persons"] is not None:
            try:
                day, month, year = (int(part) for part in m["day"].split("/"))
                group = GroupTransfer(int(m["persons"]), date(year, month, day))
            except ValueError as exc:
                raise InvalidReference(f"group transfer date {m['day']!r} is no date") from exc
            return cls.build(m["ms"], m["type"], None, group=group)
        return cls(m["ms"], m["type"], m["case"], m["priority"] is not None, None, m["eurodac"])


@dataclass(frozen=True)
class AnyReference:
    """What a policy check needs of a reference in either scheme."""

    member_state: str
    type_code: str
    """The type as written: "1" to "7" (Art. 20), "01" to "12" (Art. 5)."""
    case_number: str | None
    priority: bool = False
    group: bool = False


@dataclass(frozen=True)
class ReferenceScheme:
    """How the cases of a legal basis number their transmissions: the scheme (ART20, ART5)
    and, for ART5, the type of each form (data of the basis's rule pack)."""

    scheme: str = ART20
    verified: bool = True
    source: str = ""
    codes: Mapping[str, str] = field(default_factory=dict)
    """Form type -> its two-digit type, where one code fits every form of the type."""
    chosen_by: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)
    """Form type -> (the form field that chooses the type, its value -> the type)."""
    priority_types: frozenset[str] = frozenset()
    """Form types that always concern minors (Art. 5(2): marked "P")."""
    priority_criteria: frozenset[str] = frozenset()
    """Article numbers whose requests have priority (Art. 5(2): 25 to 28 and 34)."""
    priority_fields: frozenset[str] = frozenset()
    """Form fields that, when true, say the case involves a minor (Art. 5(2))."""
    notes: Mapping[str, str] = field(default_factory=dict)
    """Form type -> what is not verified about its type."""
    note: str = ""
    group: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Form type -> the form fields giving the number of persons and the intended date of a
    group transfer, which number it instead of a case number (Art. 5(4))."""

    def parse(self, text: str) -> AnyReference:
        if self.scheme == ART5:
            a5 = Art5Reference.parse(text)
            return AnyReference(
                a5.member_state, a5.type_code, a5.case_number, a5.priority, a5.group is not None
            )
        a20 = Reference.parse(text)
        return AnyReference(a20.member_state, str(a20.type_digit), a20.case_number)

    def allowed_types(self, form_type: str, type_digit: int | None) -> frozenset[str]:
        """The types a form of `form_type` may carry in its own reference (empty: it carries
        its case's)."""
        if self.scheme == ART20:
            return frozenset() if type_digit is None else frozenset({str(type_digit)})
        if form_type in self.chosen_by:
            return frozenset(self.chosen_by[form_type][1].values())
        return frozenset({self.codes[form_type]}) if form_type in self.codes else frozenset()

    def type_of(self, form_type: str, type_digit: int | None, form: Mapping[str, object]) -> str:
        """The type a new form's reference carries."""
        if self.scheme == ART20:
            if type_digit is None:
                raise InvalidReference(f"a {form_type} carries its case's reference")
            return str(type_digit)
        if form_type in self.chosen_by:
            name, choices = self.chosen_by[form_type]
            value = form.get(name)
            if not isinstance(value, str) or value not in choices:
                raise InvalidReference(
                    f"a {form_type}'s reference type depends on its '{name}' "
                    f"({', '.join(f'{k}: {v}' for k, v in choices.items())}; {ART5}(1))"
                )
            return choices[value]
        if form_type not in self.codes:
            raise InvalidReference(f"{ART5} gives a {form_type} no type of its own")
        return self.codes[form_type]

    def has_priority(self, form_type: str, form: Mapping[str, object], asked: bool) -> bool:
        """Art. 5(2): "P" when the case involves minors (the case system says so, `asked`,
        or the form type always concerns a minor), or the request rests on Arts 25 to 28 or
        34 (the form's criterion names one of them)."""
        if self.scheme != ART5:
            return False
        if asked or form_type in self.priority_types:
            return True
        if any(form.get(name) is True for name in self.priority_fields):
            return True
        criterion = form.get("criterion")
        cited = (
            re.match(r"\s*Art(?:icle|\.)?\s*(\d+)", criterion)
            if isinstance(criterion, str)
            else None
        )
        return cited is not None and cited.group(1) in self.priority_criteria

    def build_group(self, member_state: str, form_type: str, form: Mapping[str, object]) -> str:
        """The Art. 5(4) reference of a group transfer form: type, "G", persons, date."""
        persons_field, date_field = self.group[form_type]
        persons, day = form.get(persons_field), form.get(date_field)
        if not isinstance(persons, int) or not isinstance(day, str):
            raise InvalidReference(
                f"a {form_type} is numbered by its '{persons_field}' and '{date_field}' ({ART5}(4))"
            )
        group = GroupTransfer(persons, date.fromisoformat(day))
        return str(Art5Reference.build(member_state, self.codes[form_type], None, group=group))

    def build(
        self,
        member_state: str,
        type_code: str,
        case_number: str,
        *,
        priority: bool = False,
        eurodac_reference: str | None = None,
    ) -> str:
        if self.scheme == ART5:
            return str(
                Art5Reference.build(
                    member_state,
                    type_code,
                    case_number,
                    priority=priority,
                    eurodac_reference=eurodac_reference,
                )
            )
        return str(Reference.build(member_state, int(type_code), case_number, eurodac_reference))


ART20_SCHEME = ReferenceScheme()
ART5_SCHEME = ReferenceScheme(scheme=ART5)


def parse_any(text: str) -> AnyReference:
    """A reference in either scheme (what a reply or notice carries is its case's reference,
    whichever scheme that case numbers by: matching it to the case checks the rest)."""
    try:
        return ART20_SCHEME.parse(text)
    except InvalidReference:
        pass
    try:
        return ART5_SCHEME.parse(text)
    except InvalidReference:
        raise InvalidReference(
            f"not a reference number of {ART20} or {ART5} (Member State letters, type, "
            "national case number)"
        ) from None


SCHEME_KEYS = frozenset(
    {"scheme", "verified", "source", "types", "chosen_by", "priority", "notes", "note", "group"}
)


def parse_scheme(raw: object, where: str) -> ReferenceScheme:
    """A rule pack's `references` section (see docs/legal-bases): ValueError naming `where`
    when it is malformed."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be an object")
    unknown = set(raw) - SCHEME_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    scheme = raw.get("scheme")
    if scheme not in SCHEMES:
        raise ValueError(f"{where}: 'scheme' must be one of {list(SCHEMES)}")
    if not isinstance(raw.get("verified"), bool) or not isinstance(raw.get("source"), str):
        raise ValueError(f"{where}: needs 'verified' (true or false) and a 'source'")
    codes = raw.get("types", {})
    chosen = raw.get("chosen_by", {})
    priority = raw.get("priority", {})
    notes = raw.get("notes", {})
    two_digits = re.compile(r"0[1-9]|1[0-2]")
    if not isinstance(codes, dict) or not all(
        isinstance(v, str) and two_digits.fullmatch(v) for v in codes.values()
    ):
        raise ValueError(f"{where}: 'types' must map form types to types 01 to 12")
    if not isinstance(chosen, dict) or not all(
        isinstance(v, dict)
        and isinstance(v.get("field"), str)
        and isinstance(v.get("types"), dict)
        and all(isinstance(c, str) and two_digits.fullmatch(c) for c in v["types"].values())
        for v in chosen.values()
    ):
        raise ValueError(f"{where}: 'chosen_by' maps form types to {{field, types}}")
    if not isinstance(priority, dict) or not isinstance(notes, dict):
        raise ValueError(f"{where}: 'priority' and 'notes' must be objects")
    return ReferenceScheme(
        scheme=scheme,
        verified=raw["verified"],
        source=raw["source"],
        codes=dict(codes),
        chosen_by={k: (v["field"], dict(v["types"])) for k, v in chosen.items()},
        priority_types=frozenset(priority.get("types", [])),
        priority_criteria=frozenset(str(a) for a in priority.get("articles", [])),
        priority_fields=frozenset(str(f) for f in priority.get("fields", [])),
        notes={str(k): str(v) for k, v in notes.items()},
        note=str(raw.get("note", "")),
        group={
            str(k): (str(v["persons"]), str(v["date"])) for k, v in raw.get("group", {}).items()
        },
    )


def scheme_json(scheme: ReferenceScheme) -> dict[str, object]:
    """The scheme as a pack writes it (`gateway rules show --format json`)."""
    if scheme.scheme == ART20:
        return {"scheme": ART20, "verified": scheme.verified, "source": scheme.source}
    return {
        "scheme": scheme.scheme,
        "verified": scheme.verified,
        "source": scheme.source,
        "note": scheme.note,
        "types": dict(scheme.codes),
        "chosen_by": {k: {"field": f, "types": dict(t)} for k, (f, t) in scheme.chosen_by.items()},
        "priority": {
            "types": sorted(scheme.priority_types),
            "articles": sorted(scheme.priority_criteria, key=int),
            "fields": sorted(scheme.priority_fields),
        },
        "notes": dict(scheme.notes),
        "group": {k: {"persons": p, "date": d} for k, (p, d) in scheme.group.items()},
    }


def scheme_markdown(scheme: ReferenceScheme, status: Mapping[bool, str]) -> str:
    """One paragraph for the pack's docs page."""
    if scheme.scheme == ART20:
        return (
            f"**Reference numbers** ({ART20}): the sender's Eurodac letters, the type digit of "
            "the form (1 to 7) and the national case number."
        )
    types = ", ".join(f"`{name}` {code}" for name, code in scheme.codes.items())
    chosen = "; ".join(
        f"`{name}` by its `{fld}`: " + ", ".join(f"{v} {c}" for v, c in choices.items())
        for name, (fld, choices) in scheme.chosen_by.items()
    )
    priority = ", ".join(f"`{t}`" for t in sorted(scheme.priority_types))
    articles = ", ".join(sorted(scheme.priority_criteria, key=int))
    notes = " ".join(f"`{name}`: {text}" for name, text in scheme.notes.items())
    return (
        f"**Reference numbers** ({scheme.scheme}, {status[scheme.verified]}): {scheme.note} "
        f'Types: {types}; {chosen}. "P" (priority): always for {priority}; for a request '
        f"whose criterion is Art. {articles}; for a form whose "
        f"{', '.join(f'`{f}`' for f in sorted(scheme.priority_fields)) or 'no field'} is true; "
        "and when the case system says the case involves "
        f'minors (`"priority": true`). {notes} Source: {scheme.source}.'
    )
