"""Personal data in free text: which kind, where; never the value.

ICONET early warnings and liaison-officer reports must carry no personal data. Before such a
message is submitted, its free-text fields are checked here and a hit is refused naming the
field and the kind (`check_fields`), so the value never reaches a log or an error message:
a `Finding` holds offsets only, and its repr shows no text.

Detection is pattern matching with the `re` module (no language model), tuned for precision
on operational text: a date alone, a count, a price, a route or road number, coordinates and
a description of forgery methods do not match; a date does only after a birth cue ("born",
"né le", "geb.", "nata il", "ur." ...) or in parentheses after a capitalised name. Numbers
that carry a checksum (IBANs) are accepted only when it holds. The labelled corpus in
tests/data/personal-data-corpus.json measures precision and recall (`measure`); precompiled,
the default detectors check 100 kB of report text in about 40 ms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_DETECTORS",
    "Detector",
    "Finding",
    "check_fields",
    "detectors_from_patterns",
    "find_personal_data",
    "iban_is_valid",
    "measure",
]

NAME_WITH_DATE_OF_BIRTH = "name-with-date-of-birth"
PASSPORT_OR_ID_NUMBER = "passport-or-id-number"
EURODAC_REFERENCE = "eurodac-reference"
EMAIL_ADDRESS = "email-address"
TELEPHONE_NUMBER = "telephone-number"
IBAN = "iban"

Spans = Callable[[str], Iterable[tuple[int, int]]]
"""A detector written as code: the (start, end) spans it finds in a text."""


@dataclass(frozen=True)
class Finding:
    """Personal data of `kind` at text[start:end]; the text itself is deliberately absent."""

    kind: str
    start: int
    end: int

    def __repr__(self) -> str:
        return f"Finding(kind={self.kind!r}, start={self.start}, end={self.end})"


@dataclass(frozen=True)
class Detector:
    """One kind of personal data: a compiled pattern or a function finding spans, and
    optionally a validator that must accept the matched text (a checksum, a calendar)."""

    name: str
    pattern: re.Pattern[str] | Spans
    validator: Callable[[str], bool] | None = None

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        found = (
            (m.span() for m in self.pattern.finditer(text))
            if isinstance(self.pattern, re.Pattern)
            else self.pattern(text)
        )
        for start, end in found:
            if end > start and (self.validator is None or self.validator(text[start:end])):
                yield start, end


# --- dates of birth ---------------------------------------------------------------------

_DATE = (
    r"(?<![\d.])(?:"
    r"(?:19|20)\d\d-[01]?\d-[0-3]?\d"  # ISO 1990-03-12
    r"|[0-3]?\d\s?[./-]\s?[01]?\d\s?[./-]\s?(?:(?:19|20)\d\d|\d\d)"  # 12/03/1990, 3.4.88
    r"|[0-3]?\d(?:st|nd|rd|th|er|º|ª|o|η|\.)?\s+(?:de\s+|of\s+)?[^\W\d_]{3,12}\.?,?\s+"
    r"(?:de\s+)?(?:19|20)\d\d"  # 5 mai 1992, 3 de abril de 1988, 12 Μαρτίου 1990
    r"|[^\W\d_]{3,9}\.?\s+[0-3]?\d(?:st|nd|rd|th)?,?\s+(?:19|20)\d\d"  # March 12, 1990
    r")(?![\d])"
)
"""A calendar date with day, month and year, in the forms reports use (not a year alone)."""

_BIRTH_CUES = (
    # EN
    r"born|date\s+of\s+birth|birth\s*date|d\.?o\.?b\.?",
    # FR
    r"née?|né\(e\)|date\s+de\s+naissance",
    # DE, NL
    r"geboren|geb\.|geburtsdatum|geboortedatum",
    # IT (lowercase only: "Nato" is also the alliance)
    r"(?-i:nat[oa])|(?-i:Nat[oa])(?=\s+(?:il|a|ad)\b)|data\s+di\s+nascita",
    # ES, PT
    r"nacid[oa]|fecha\s+de\s+nacimiento|f\.\s?nac\.?|nascid[oa]|data\s+de\s+nascimento",
    # EL
    r"γεννήθηκε|γεννημένο[ςη]|γεννημένη|ημερομηνία\s+γέννησης|ημ/νία\s+γέννησης",
    # PL, CS, SK, HR, SL, HU, RO, BG, SV, DA, FI
    r"ur\.|urodzon[ya]|data\s+urodzenia|narozen[aá]?|datum\s+narozen[íi]|rođen[aio]?|"
    r"rojen[a]?|született|născut[ăa]?|data\s+nașterii|роден[а]?|дата\s+на\s+раждане|"  # noqa: RUF001
    r"född|født|syntynyt|syntymäaika",
)

_UPPER = r"A-ZÀ-ÖØ-ÞĀ-Ž\u0391-\u03a9\u0386-\u038f\u0400-\u042f"  # Latin, Greek, Cyrillic
_CAPITALISED = rf"(?-i:[{_UPPER}])[^\W\d_]*"
_FILLER = (
    rf"(?:[\s,:\-\u2013]+(?:{_CAPITALISED}\.?|[^\W\d_]{{1,4}}\.?|\({_CAPITALISED}\)))"
    r"{0,6}[\s,:]*"
)
"""What may stand between a birth cue and its date: a place and a preposition ("born in
Aleppo, Syria, on", "nata a San Giovanni il"); not a digit and not a lowercase word longer
than four letters ("nato da una scissione il ...", "born on board on ...")."""

_CUED_BIRTH_DATE = re.compile(
    rf"(?<!\w)(?:{'|'.join(_BIRTH_CUES)})(?!\w){_FILLER}(?P<date>{_DATE})",
    re.IGNORECASE,
)

_NAMED_BIRTH_DATE = re.compile(
    rf"(?<!\w){_CAPITALISED}\.?(?:[ \-]{_CAPITALISED}\.?){{1,3}},?\s*\(\s*(?:\*\s*)?"
    r"(?P<date>[0-3]?\d[./-][01]?\d[./-](?:19\d\d|20[01]\d))\s*\)"
)
"""A name and a date in parentheses, "Maria Rossi (03.04.1988)": only with a year before
2020, since a recent date after a capitalised place is an observation, not a birth."""


def _is_calendar_date(text: str) -> bool:
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if len(numbers) != 3:
        return True  # a month written as a word: the words around it already decided
    if numbers[0] > 31:  # ISO: year, month, day
        numbers.reverse()
    day, month = numbers[0], numbers[1]
    return 1 <= day <= 31 and 1 <= month <= 12


def _birth_dates(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_CUED_BIRTH_DATE, _NAMED_BIRTH_DATE):
        for m in pattern.finditer(text):
            if _is_calendar_date(m["date"]):
                yield m.span()


# --- identity documents -----------------------------------------------------------------

_DOCUMENT_CUES = (
    r"passports?|passeports?|reisepass|(?-i:Pass)|pasaportes?|passaport[oe]s?|paspoort|"
    r"paszport|passaporte|διαβατήριο|διαβατηρίου|passnummer|pass-?nr\.?|ausweisnummer|"
    r"(?:national\s+)?(?:id|identity)\s+card|id(?:entity)?\s+(?:no|number|nr)\.?|"
    r"carte\s+(?:nationale\s+)?d['\u2019]identit[ée]|c\.?n\.?i\.?|personalausweis|ausweis|"
    r"carta\s+d['\u2019]identit[àa]|documento(?:\s+(?:de\s+identidad|d['\u2019]identit[àa]|"
    r"nacional\s+de\s+identidad))?|(?-i:DNI|NIE)|identiteitskaart|id-kaart|"
    r"δελτίο\s+ταυτότητας|α\.?δ\.?τ\.?|dow[óo]d(?:\s+osobisty)?|"  # noqa: RUF001
    r"cart[ãa]o\s+de\s+cidad[ãa]o|bilhete\s+de\s+identidade|"
    r"travel\s+document|document(?:\s+(?:no|number|nr)\.?)|titre\s+de\s+s[ée]jour|"
    r"residence\s+permit|aufenthaltstitel|pesel|(?-i:BSN|NIF|CNP|ЕГН)|codice\s+fiscale"
)
_NUMBER_MARK = (
    r"(?:\s*(?:no|nr|n(?:\.?[°ºo])?|num(?:ber|ero|éro)?|número|nummer|numer|"
    r"αρ|αριθ(?:μός)?|#)\.?)?"  # noqa: RUF001
)
# Abbreviations that are also words ("nie", "dni" in Polish, "pass") count in capitals only.
_DOCUMENT_NUMBER = re.compile(
    rf"(?<!\w)(?:{_DOCUMENT_CUES})(?!\w){_NUMBER_MARK}\s*[:.]?\s*"
    r"(?P<number>(?=[A-Z\u0391-\u03a90-9\-]*\d)[A-Z\u0391-\u03a90-9]"
    r"(?:[A-Z\u0391-\u03a90-9]|-(?=[A-Z\u0391-\u03a90-9])){5,15})(?![\w\-])",
    re.IGNORECASE,
)
_MRZ = re.compile(r"(?<![A-Z0-9<])(?=[A-Z0-9<]*<<)[A-Z0-9<]{30,44}(?![A-Z0-9<])")
"""A machine-readable zone line (ICAO 9303: 30, 36 or 44 characters with '<' fillers)."""
# A document number is 6 to 16 capitals and digits with a digit: 12 covers passports, 16 the
# national numbers written beside them (codice fiscale, PESEL, NIE).


_YEARS = re.compile(r"(?:19|20)\d\d(?:-(?:19|20)?\d\d)?")


def _document_numbers(text: str) -> Iterator[tuple[int, int]]:
    for m in _DOCUMENT_NUMBER.finditer(text):
        number = m["number"]
        # capitals and digits (a number, not a word), not years ("passports of 2019-2021")
        if number == number.upper() and not _YEARS.fullmatch(number):
            yield m.span()
    for m in _MRZ.finditer(text):
        yield m.span()


# --- Eurodac references -----------------------------------------------------------------

EURODAC_STATES = (
    "AT BE BG CY CZ DE DK EE EL ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK "
    "CH IS LI NO"
).split()
"""The States that take part in Eurodac, by the letters that open their references."""

_EURODAC = re.compile(
    rf"(?<![\w\-/])(?:{'|'.join(EURODAC_STATES)})[123](?=[A-Z0-9]*\d[A-Z0-9]*\d[A-Z0-9]*\d)"
    r"[A-Z0-9]{6,30}(?![\w\-/])"
)
"""The form of gateway.core.references.EURODAC_REFERENCE (a participating State's letters,
category 1 to 3, letters and digits: "NL1ABC123") in capitals, at least nine characters with
three digits after the category: shorter, it is a flight number ("LH1234"), a road ("E75")
or a boat registration."""


def _eurodac_references(text: str) -> Iterator[tuple[int, int]]:
    for m in _EURODAC.finditer(text):
        if not iban_is_valid(m[0]):  # "DE12 ..." without spaces is an IBAN, not a reference
            yield m.span()


# --- e-mail, telephone ------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+\-])[A-Za-z0-9][\w.+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z]{2,24}"
    r"(?![\w\-])"
)

_PHONE_CUES = (
    r"tel|tél|téléphone|telephone|phone|telefon|telefono|teléfono|telefone|telefoon|"
    r"telemóvel|tlf|mobile|mob|mobil|mobiel|handy|cell|cellulare|móvil|portable|gsm|"
    r"whatsapp|viber|τηλ|τηλέφωνο|κινητό|komórka|kom\.|nr\s+tel|numer\s+telefonu"
)
_GROUP = r"\(?\d{1,15}(?:\)\d{0,15})?"
_PHONE = re.compile(
    rf"(?<!\w)(?:(?:{_PHONE_CUES})(?!\w)\.?{_NUMBER_MARK}\s*[:.]?\s*(?=[+(\d])"
    rf"|(?=\+[1-9]))(?P<number>\+?{_GROUP}(?:[ ./\-]{_GROUP}){{0,9}})(?!\d)",
    re.IGNORECASE,
)
"""A number after a telephone cue, or one in international form (+ and the country code);
its groups are then trimmed from the right until the rest is a plausible number (a sentence
may go on with a date or a count after it)."""
_LAST_GROUP = re.compile(rf"[ ./\-]{_GROUP}$")
_WHOLE_DATE = re.compile(_DATE)
_DECIMAL = re.compile(r"\d\.\d{4,6}(?!\d)")


def _is_dialled_number(number: str) -> bool:
    digits = sum(c.isdigit() for c in number)
    if not 8 <= digits <= 15:
        return False
    # a date ("Tel. 12.03.2026" is a date of contact) or a decimal coordinate is no number
    return not _WHOLE_DATE.fullmatch(number) and not _DECIMAL.search(number)


def _telephone_numbers(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        number = m["number"]
        while number:
            if _is_dialled_number(number):
                yield m.start(), m.start("number") + len(number)
                break
            shorter = _LAST_GROUP.sub("", number)
            number = "" if shorter == number else shorter


# --- IBAN -------------------------------------------------------------------------------

_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d\d(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
    r"(?![A-Za-z0-9])"
)


def iban_is_valid(text: str) -> bool:
    """ISO 13616 / ISO 7064 mod 97-10: move the country and check digits to the end, letters
    to numbers (A=10 ... Z=35); a valid IBAN leaves remainder 1."""
    compact = text.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d\d[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        candidate = m[0]
        # A grouped IBAN may be followed by a group that is not its own: drop trailing
        # groups until the checksum holds or too little is left.
        while len(candidate.replace(" ", "")) >= 15:
            if iban_is_valid(candidate):
                yield m.start(), m.start() + len(candidate)
                break
            if " " not in candidate:
                break
            candidate = candidate.rsplit(" ", 1)[0]


DEFAULT_DETECTORS: tuple[Detector, ...] = (
    Detector(NAME_WITH_DATE_OF_BIRTH, _birth_dates),
    Detector(PASSPORT_OR_ID_NUMBER, _document_numbers),
    Detector(EURODAC_REFERENCE, _eurodac_references),
    Detector(EMAIL_ADDRESS, _EMAIL),
    Detector(TELEPHONE_NUMBER, _telephone_numbers),
    Detector(IBAN, _ibans),
)


def find_personal_data(
    text: str, detectors: Sequence[Detector] = DEFAULT_DETECTORS
) -> list[Finding]:
    """Every finding of every detector, in text order (two detectors may find the same span:
    an IBAN is not also a Eurodac reference, but an MRZ line names a document number)."""
    findings = {
        Finding(detector.name, start, end)
        for detector in detectors
        for start, end in detector.spans(text)
    }
    return sorted(findings, key=lambda f: (f.start, f.end, f.kind))


def detectors_from_patterns(extra: Mapping[str, str]) -> tuple[Detector, ...]:
    """An operator's own detectors, name -> regular expression (case-insensitive): a name
    becomes the finding's kind. ValueError names the pattern that does not compile."""
    detectors = []
    for name, pattern in extra.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9\-]{0,63}", name):
            raise ValueError(
                f"personal-data pattern name {name!r}: lowercase letters, digits and '-'"
            )
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(
                f"personal-data pattern {name!r} is not a regular expression: {exc}"
            ) from exc
        if compiled.fullmatch(""):
            raise ValueError(f"personal-data pattern {name!r} matches the empty text")
        detectors.append(Detector(name, compiled))
    return tuple(detectors)


def check_fields(
    fields: Mapping[str, str], detectors: Sequence[Detector] = DEFAULT_DETECTORS
) -> list[tuple[str, str]]:
    """(field path, kind) for each kind of personal data each field contains, in the fields'
    order: what a refusal names (never the value)."""
    found: list[tuple[str, str]] = []
    for path, text in fields.items():
        kinds = dict.fromkeys(f.kind for f in find_personal_data(text, detectors))
        found.extend((path, kind) for kind in kinds)
    return found


def measure(
    corpus: Sequence[Mapping[str, object]], detectors: Sequence[Detector] = DEFAULT_DETECTORS
) -> dict[str, dict[str, int]]:
    """The confusion matrix of `detectors` on a labelled corpus (objects with "text",
    "language", "personal" and "kinds"): "all" and each language count texts (tp, fp, tn,
    fn: personal data found or not, labelled or not); "kind:<name>" counts kinds (tp: a
    labelled kind found, fn: a labelled kind missed, fp: a kind found but not labelled)."""
    result: dict[str, dict[str, int]] = {}

    def count(key: str, cell: str) -> None:
        empty = (
            {"tp": 0, "fp": 0, "fn": 0}
            if key.startswith("kind:")
            else {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
        )
        result.setdefault(key, empty)[cell] += 1

    for entry in corpus:
        text, language, kinds = entry["text"], entry["language"], entry.get("kinds", [])
        if not isinstance(text, str) or not isinstance(language, str):
            raise ValueError("a corpus entry needs a 'text' and a 'language'")
        if not isinstance(kinds, list):
            raise ValueError("a corpus entry's 'kinds' is a list")
        labelled = {str(k) for k in kinds}
        found = {f.kind for f in find_personal_data(text, detectors)}
        cell = {
            (True, True): "tp",
            (False, True): "fp",
            (False, False): "tn",
            (True, False): "fn",
        }[(entry["personal"] is True, bool(found))]
        count("all", cell)
        count(language, cell)
        for kind in labelled | found:
            count(
                f"kind:{kind}",
                "tp" if kind in labelled & found else "fn" if kind in labelled else "fp",
            )
    return result
