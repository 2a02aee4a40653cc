"""When the standard transfer form is sent: Implementing Regulation (EU) 2025/2055 Arts 24-26
(data of the 2024-1351 pack), a warning and never a refusal, since the text gives no
consequence for a late form."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gateway.core.transfer_forms import (
    TransferFormError,
    parse_transfer_form,
    timing_warnings,
    transfer_form_rules,
)

AMMR = transfer_form_rules("2024-1351")
SENT = date(2027, 2, 1)
ONE_DAY = {"earliest": 1, "latest": 0, "article": "a"}


def warned(kind: str | None, days: int | None, *grounds: str) -> list[str]:
    assert AMMR is not None
    arrival = None if days is None else SENT + timedelta(days=days)
    return timing_warnings(AMMR, kind, arrival, SENT, frozenset(grounds))


@pytest.mark.parametrize(
    ("kind", "days", "grounds", "article"),
    [
        ("voluntary", 14, (), None),  # 2025/2055 Art. 24(2): 14 to 7 days
        ("voluntary", 7, (), None),
        ("voluntary", 15, (), "2025/2055 Art. 24(2)"),
        ("voluntary", 6, (), "2025/2055 Art. 24(2)"),
        ("supervised-departure", 10, (), None),  # Art. 25(2)
        ("supervised-departure", 20, (), "2025/2055 Art. 25(2)"),
        ("supervised-departure", 21, ("unaccompanied-minor",), None),  # Art. 25(3)
        ("supervised-departure", 30, ("special-needs",), None),
        ("supervised-departure", 14, ("special-needs",), "2025/2055 Art. 25(3)"),
        ("supervised-departure", 10, ("security-threat",), None),  # not a 25(3) ground
        ("escort", 7, (), None),  # Art. 26(3), first subparagraph
        ("escort", 5, (), "2025/2055 Art. 26(3)"),
        ("escort", 14, ("security-threat",), "2025/2055 Art. 26(3), second subparagraph"),
        ("escort", 21, ("security-threat",), None),
    ],
)
def test_2025_2055_arts_24_26_the_days_a_transfer_form_is_sent(
    kind: str, days: int, grounds: tuple[str, ...], article: str | None
) -> None:
    out = warned(kind, days, *grounds)
    if article is None:
        assert out == []
    else:
        (warning,) = out
        assert f"({article})" in warning and f"sent {days} days before" in warning


def test_2025_2055_art24_1_a_voluntary_transfer_excludes_minors_threats_and_special_needs() -> None:
    (warning,) = warned("voluntary", 10, "unaccompanied-minor")
    assert "2025/2055 Art. 24(1)" in warning and "unaccompanied-minor" in warning


def test_2025_2055_art22_1_a_form_without_type_or_arrival_is_said_to_be_unchecked() -> None:
    for kind, days in ((None, 10), ("escort", None)):
        (warning,) = warned(kind, days)
        assert "not checked" in warning and "Art. 22(1)" in warning


def test_bases_without_transfer_form_days_check_nothing() -> None:
    assert transfer_form_rules("604-2013") is None
    assert transfer_form_rules("com-2020-610") is None


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"verified": True, "source": "x", "types": {}},
        {"verified": True, "source": "x", "types": {"escort": {"earliest": 7, "latest": 14}}},
        {"verified": True, "source": "x", "types": {"escort": {"latest": 7, "article": "a"}}},
        {
            "verified": "yes",
            "source": "x",
            "types": {"e": {"earliest": 1, "latest": 0, "article": "a"}},
        },
        {
            "source": "x",
            "types": {"e": {"earliest": 1, "latest": 0, "article": "a", "excluded": ["x"]}},
        },
    ],
)
def test_a_malformed_transfer_form_section_is_refused_naming_it(raw: object) -> None:
    with pytest.raises(TransferFormError, match="transfer_form"):
        parse_transfer_form(raw, "x.json: transfer_form")
