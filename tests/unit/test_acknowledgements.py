"""Which signed acknowledgements a sender records (issue 14, item 1): the receipt time starts
the legal time limits (COM(2020) 610 Art. 30(1), 65; 2025/2055 Art. 1(3)), so a receiver
may state only a receipt time between the transmission's creation and the sender's clock
(each widened by the tolerated clock skew), only to the sender, with a known reason code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.acknowledgements import AckRefusal, refusal
from gateway.core.policy import Reason

CREATED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=3)
SKEW = timedelta(seconds=300)


def decide(**changes: Any) -> AckRefusal | None:
    fields: dict[str, Any] = {
        "receipt_time": CREATED + timedelta(seconds=1),
        "receiver": "BE-DU",
        "status": "accepted",
        "reason_code": None,
        "created": CREATED,
        "now": NOW,
        "max_skew": SKEW,
        "local": "BE-DU",
    } | changes
    found = refusal(**fields)
    return None if found is None else found.reason


def test_an_honest_acknowledgement_is_recorded() -> None:
    assert decide() is None
    assert decide(status="rejected", reason_code="schema-invalid") is None


def test_art30_a_receipt_time_five_years_ahead_is_refused() -> None:
    """It would push the receiver's own reply limit (Art. 30(1)) to years from now."""
    assert decide(receipt_time=NOW + timedelta(days=5 * 365)) is AckRefusal.RECEIPT_IN_FUTURE


def test_art30_8_a_receipt_time_a_year_ago_is_refused() -> None:
    """It would make the sender record deemed acceptance (Art. 30(8)) at once."""
    assert decide(receipt_time=CREATED - timedelta(days=365)) is AckRefusal.RECEIPT_BEFORE_CREATION


def test_the_window_bounds_are_inclusive_and_one_microsecond_beyond_is_refused() -> None:
    tick = timedelta(microseconds=1)
    assert decide(receipt_time=CREATED - SKEW) is None
    assert decide(receipt_time=NOW + SKEW) is None
    assert decide(receipt_time=CREATED - SKEW - tick) is AckRefusal.RECEIPT_BEFORE_CREATION
    assert decide(receipt_time=NOW + SKEW + tick) is AckRefusal.RECEIPT_IN_FUTURE


def test_a_late_proof_of_receipt_inside_the_window_is_recorded() -> None:
    """Reconciliation weeks later: the receipt time is old but after the creation."""
    assert decide(receipt_time=CREATED + timedelta(minutes=1), now=NOW + timedelta(days=40)) is None


def test_an_acknowledgement_addressed_to_another_authority_or_to_none_is_refused() -> None:
    assert decide(receiver="GR-DU") is AckRefusal.WRONG_RECEIVER
    assert decide(receiver=None) is AckRefusal.WRONG_RECEIVER


def test_an_unknown_reason_code_or_a_negative_acknowledgement_without_one_is_refused() -> None:
    assert decide(status="rejected", reason_code="you-are-late") is AckRefusal.UNKNOWN_REASON
    assert decide(status="rejected", reason_code=None) is AckRefusal.UNKNOWN_REASON
    assert decide(reason_code="made-up") is AckRefusal.UNKNOWN_REASON
    assert decide(status="maybe") is AckRefusal.UNKNOWN_STATUS


def test_every_reason_code_of_the_network_is_known() -> None:
    for reason in Reason:
        assert decide(status="rejected", reason_code=reason.value) is None


def test_refusal_texts_name_the_times_and_the_limit() -> None:
    found = refusal(
        receipt_time=NOW + timedelta(days=1),
        receiver="BE-DU",
        status="accepted",
        reason_code=None,
        created=CREATED,
        now=NOW,
        max_skew=SKEW,
        local="BE-DU",
    )
    assert found is not None
    assert "300 s" in found.text and (NOW + timedelta(days=1)).isoformat() in found.text


offsets = st.integers(min_value=-(10**9), max_value=10**9).map(
    lambda us: timedelta(microseconds=us * 1000)
)


@given(receipt=offsets, waited=st.integers(min_value=0, max_value=10**7), skew=st.integers(0, 3600))
def test_a_receipt_time_is_recorded_exactly_inside_the_window(
    receipt: timedelta, waited: int, skew: int
) -> None:
    now = CREATED + timedelta(seconds=waited)
    max_skew = timedelta(seconds=skew)
    moment = CREATED + receipt
    found = decide(receipt_time=moment, now=now, max_skew=max_skew)
    inside = CREATED - max_skew <= moment <= now + max_skew
    assert (found is None) == inside
    if moment > now + max_skew:
        assert found is AckRefusal.RECEIPT_IN_FUTURE
    elif moment < CREATED - max_skew:
        assert found is AckRefusal.RECEIPT_BEFORE_CREATION


@given(receiver=st.sampled_from(["BE-DU", "NL-DU", "GR-DU", None]), code=st.text(max_size=20))
def test_only_our_own_authority_and_known_codes_pass(receiver: str | None, code: str) -> None:
    found = decide(receiver=receiver, status="rejected", reason_code=code)
    known = code in {r.value for r in Reason}
    assert (found is None) == (receiver == "BE-DU" and known)
