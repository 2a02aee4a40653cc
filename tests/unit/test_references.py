"""Reference numbers of Regulation 1560/2003 Art. 20 and of Implementing Regulation (EU)
2025/2055 Art. 5."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.core.deadlines import packaged_rule_set
from gateway.core.forms import FORM_TYPES
from gateway.core.references import (
    ART20,
    GROUP_MARK,
    Art5Reference,
    GroupTransfer,
    InvalidReference,
    Reference,
)


def test_1560_art20_reference_is_letters_type_digit_case_number() -> None:
    ref = Reference.build("BE", 1, "2026/0001")
    assert str(ref) == "BE12026/0001"
    assert Reference.parse("BE12026/0001") == ref


def test_1560_art20_reference_carries_the_requested_states_eurodac_reference() -> None:
    ref = Reference.build("BE", 1, "CASE-7", "NL1ABC123")
    assert str(ref) == "BE1CASE-7:NL1ABC123"
    assert Reference.parse(str(ref)).eurodac_reference == "NL1ABC123"


@pytest.mark.parametrize(
    ("ms", "digit", "case"),
    [
        ("be", 1, "X1"),
        ("BE", 0, "X1"),
        ("BE", 8, "X1"),
        ("BE", 1, ""),
        ("BE", 1, "a b"),
        ("BE", 1, "x" * 41),
        ("BE", 1, "/lead"),
    ],
)
def test_malformed_parts_are_refused(ms: str, digit: int, case: str) -> None:
    with pytest.raises(InvalidReference):
        Reference.build(ms, digit, case)


def test_parse_refuses_text_that_is_not_a_reference() -> None:
    for text in ("", "B1X", "BE9X", "BE1", "BE1X:bad"):
        with pytest.raises(InvalidReference):
            Reference.parse(text)


@given(
    st.from_regex(r"[A-Z]{2}", fullmatch=True),
    st.integers(min_value=1, max_value=7),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/.\-]{0,39}", fullmatch=True),
)
def test_build_then_parse_round_trips(ms: str, digit: int, case: str) -> None:
    ref = Reference.build(ms, digit, case)
    assert Reference.parse(str(ref)) == ref


# Implementing Regulation (EU) 2025/2055 Art. 5: the references of cases under 2024/1351.

AMMR = packaged_rule_set("2024-1351").references


def test_2025_2055_art5_1_3_reference_is_letters_two_digit_type_priority_case_number() -> None:
    ref = Art5Reference.build("BE", "01", "2026/0001")
    assert str(ref) == "BE012026/0001"
    assert Art5Reference.parse("BE012026/0001") == ref
    urgent = Art5Reference.build("BE", "08", "K-7", priority=True)
    assert str(urgent) == "BE08PK-7"
    assert Art5Reference.parse("BE08PK-7") == urgent


def test_2025_2055_art5_4_group_transfer_reference_has_persons_and_date() -> None:
    ref = Art5Reference.build("NL", "09", None, group=GroupTransfer(12, date(2027, 3, 1)))
    assert str(ref) == "NL09G1201/03/2027"
    assert Art5Reference.parse("NL09G1201/03/2027") == ref
    with pytest.raises(InvalidReference, match="type 09"):
        Art5Reference.build("NL", "01", None, group=GroupTransfer(2, date(2027, 3, 1)))
    with pytest.raises(InvalidReference, match="no date"):
        Art5Reference.parse("NL09G1231/02/2027")


@pytest.mark.parametrize(
    "text", ["", "BE1X", "BE00X", "BE13X", "BE01", "be01X", "BE01X:bad", "BE01-X"]
)
def test_2025_2055_art5_parse_refuses_text_that_is_not_a_reference(text: str) -> None:
    with pytest.raises(InvalidReference):
        Art5Reference.parse(text)


def test_2025_2055_art5_2_a_case_number_may_start_with_p_and_reads_back_the_same() -> None:
    """Nothing separates the marks from the case number: "BE01PAIR-1" reads as priority and
    case AIR-1, and builds back the same text; only a case number that reads as a group mark
    is refused."""
    plain = Art5Reference.build("BE", "01", "PAIR-1")
    read = Art5Reference.parse(str(plain))
    assert str(plain) == "BE01PAIR-1" == str(read)
    assert (read.priority, read.case_number) == (True, "AIR-1")
    assert str(Art5Reference.parse("BE01G-22")) == "BE01G-22"
    with pytest.raises(InvalidReference, match="group transfer"):
        Art5Reference.build("BE", "01", "G1201/03/2027")


@given(
    st.from_regex(r"[A-Z]{2}", fullmatch=True),
    st.sampled_from([f"{n:02d}" for n in range(1, 13)]),
    st.booleans(),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/.\-]{0,39}", fullmatch=True),
)
def test_2025_2055_art5_build_then_parse_round_trips(
    ms: str, code: str, priority: bool, case: str
) -> None:
    """The text reads back the same (a case number starting with "P" reads as the mark)."""
    assume(not GROUP_MARK.fullmatch(case))
    ref = Art5Reference.build(ms, code, case, priority=priority)
    read = Art5Reference.parse(str(ref))
    assert str(read) == str(ref) and read.type_code == code
    if not case.startswith("P"):
        assert read == ref


@pytest.mark.parametrize(
    ("form_type", "form", "code"),
    [
        ("take-charge-request", {}, "01"),
        ("take-back-notification", {}, "02"),
        ("info-request", {"purpose": "determining-responsibility"}, "03"),
        ("info-request", {"purpose": "examining-application"}, "04"),
        ("info-request", {"purpose": "other-obligation"}, "05"),
        ("info-request", {"purpose": "return-decision"}, "06"),
        ("dependants-request", {}, "07"),
        ("minor-family-request", {}, "08"),
        ("transfer-information", {}, "09"),
        ("health-certificate", {}, "10"),
    ],
)
def test_2025_2055_art5_1_each_form_has_its_type(
    form_type: str, form: dict[str, str], code: str
) -> None:
    digit = FORM_TYPES[form_type].type_digit
    assert AMMR.type_of(form_type, digit, form) == code
    assert code in AMMR.allowed_types(form_type, digit)


def test_2025_2055_art5_1_an_information_request_names_its_article_51_1_purpose() -> None:
    with pytest.raises(InvalidReference, match="'purpose'"):
        AMMR.type_of("info-request", 3, {})
    assert AMMR.allowed_types("reexamination-request", None) == frozenset()


def test_2025_2055_art5_2_priority_for_minors_and_arts_25_to_28_and_34() -> None:
    assert AMMR.has_priority("minor-family-request", {}, asked=False)
    assert AMMR.has_priority("take-charge-request", {"criterion": "Art. 25(1)"}, asked=False)
    assert AMMR.has_priority("take-charge-request", {"criterion": "Art. 34"}, asked=False)
    assert not AMMR.has_priority("take-charge-request", {"criterion": "Art. 29(1)"}, False)
    assert AMMR.has_priority("take-charge-request", {"criterion": "Art. 29(1)"}, asked=True)


def test_bases_without_a_references_section_keep_1560_2003_art20() -> None:
    for basis in ("604-2013", "com-2020-610"):
        scheme = packaged_rule_set(basis).references
        assert scheme.scheme == ART20
        assert scheme.type_of("take-charge-request", 1, {}) == "1"
        assert not scheme.has_priority("minor-family-request", {}, asked=True)
