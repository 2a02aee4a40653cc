"""Reference numbers of Regulation 1560/2003 Art. 20."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.references import InvalidReference, Reference


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
