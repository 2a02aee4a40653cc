"""Reference numbers of 1560/2003 Art. 20: the sender's Eurodac letters, the type digit and the
national case number; a request resting on a Eurodac hit also names the requested State's
Eurodac reference. Replies carry the request's reference unchanged."""

from __future__ import annotations

import re
from dataclasses import dataclass

CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/.\-]{0,39}$")
EURODAC_REFERENCE = re.compile(r"^[A-Z]{2}[0-9][A-Za-z0-9]{1,30}$")
REFERENCE = re.compile(
    r"^(?P<ms>[A-Z]{2})(?P<digit>[1-7])(?P<case>[A-Za-z0-9][A-Za-z0-9/.\-]{0,39})"
    r"(?::(?P<eurodac>[A-Z]{2}[0-9][A-Za-z0-9]{1,30}))?$"
)


class InvalidReference(ValueError):
    """A reference number or one of its parts is malformed."""


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
        if not re.fullmatch(r"[A-Z]{2}", member_state):
            raise InvalidReference("member state letters must be two capital letters")
        if not 1 <= type_digit <= 7:
            raise InvalidReference("type digit must be between 1 and 7")
        if not CASE_NUMBER.match(case_number):
            raise InvalidReference(
                "national case number must be 1-40 letters, digits, '/', '.' or '-', "
                "starting with a letter or digit"
            )
        if eurodac_reference is not None and not EURODAC_REFERENCE.match(eurodac_reference):
            raise InvalidReference(
                "Eurodac reference must start with the Member State letters and a category digit"
            )
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
