"""Conversation rules between two Dublin units, decided without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.directory import Authority, Directory
from gateway.core.policy import (
    Header,
    PriorMessage,
    Reason,
    Rejection,
    check_inbound,
    check_outbound,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def authority(code: str, n: int) -> Authority:
    return Authority(
        code=code,
        member_state=code[:2],
        name=f"Dublin unit {code}",
        time_zone="Europe/Brussels",
        endpoint="https://127.0.0.1:1",
        roles=frozenset({"case-officer"}),
        tls_fingerprints=frozenset({f"{n:064x}"}),
        signing_fingerprints=frozenset({f"{n + 100:064x}"}),
    )


DIRECTORY = Directory.of([authority("BE-DU", 1), authority("NL-DU", 2), authority("GR-DU", 3)])


def request_header(**kw: object) -> Header:
    base: dict[str, object] = {
        "message_id": "11111111-1111-4111-8111-111111111111",
        "reference": "BE1CASE-1",
        "message_type": "take-charge-request",
        "sender": "BE-DU",
        "receiver": "NL-DU",
        "created": NOW,
    }
    base.update(kw)
    return Header(**base)  # type: ignore[arg-type]


def reply_header(**kw: object) -> Header:
    base: dict[str, object] = {
        "message_id": "22222222-2222-4222-8222-222222222222",
        "reference": "BE1CASE-1",
        "message_type": "take-charge-reply",
        "sender": "NL-DU",
        "receiver": "BE-DU",
        "created": NOW,
        "in_reply_to": "11111111-1111-4111-8111-111111111111",
    }
    base.update(kw)
    return Header(**base)  # type: ignore[arg-type]


SENT_REQUEST = PriorMessage(
    "11111111-1111-4111-8111-111111111111",
    "out",
    "take-charge-request",
    "NL-DU",
    "BE1CASE-1",
    answered=False,
)


def inbound(header: Header, *, local: str, peer: str, request: PriorMessage | None = None) -> None:
    check_inbound(
        header,
        local=local,
        peer=peer,
        directory=DIRECTORY,
        request=request,
        now=NOW,
        max_skew=SKEW,
    )


def reason_of(fn: object, *args: object, **kwargs: object) -> Reason:
    with pytest.raises(Rejection) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    return err.value.reason


def test_art29_take_charge_request_from_directory_authority_is_accepted() -> None:
    inbound(request_header(), local="NL-DU", peer="BE-DU")


def test_art30_reply_to_our_open_request_is_accepted() -> None:
    inbound(reply_header(), local="BE-DU", peer="NL-DU", request=SENT_REQUEST)


def test_header_sender_must_be_the_tls_peer() -> None:
    assert reason_of(inbound, request_header(), local="NL-DU", peer="GR-DU") == (
        Reason.SENDER_MISMATCH
    )


def test_transmission_addressed_to_another_authority_is_refused() -> None:
    h = request_header(receiver="GR-DU")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.WRONG_RECEIVER


def test_clock_skew_beyond_tolerance_is_refused() -> None:
    h = request_header(created=NOW - timedelta(minutes=6))
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.CLOCK_SKEW


def test_1560_art20_request_reference_starts_with_sender_letters() -> None:
    h = request_header(reference="NL1CASE-1")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.REFERENCE_INVALID


def test_1560_art20_reference_type_digit_matches_the_form() -> None:
    h = request_header(reference="BE2CASE-1")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.REFERENCE_INVALID


def test_art30_reply_without_matching_request_is_refused() -> None:
    assert reason_of(inbound, reply_header(), local="BE-DU", peer="NL-DU") == (
        Reason.NO_MATCHING_REQUEST
    )


def test_art30_reply_to_a_request_sent_to_someone_else_is_refused() -> None:
    other = PriorMessage(
        SENT_REQUEST.message_id, "out", "take-charge-request", "GR-DU", "BE1CASE-1", answered=False
    )
    assert reason_of(inbound, reply_header(), local="BE-DU", peer="NL-DU", request=other) == (
        Reason.NO_MATCHING_REQUEST
    )


def test_art30_reply_carries_the_request_reference() -> None:
    h = reply_header(reference="BE1OTHER")
    assert reason_of(inbound, h, local="BE-DU", peer="NL-DU", request=SENT_REQUEST) == (
        Reason.REFERENCE_INVALID
    )


def test_art30_second_reply_to_the_same_request_is_refused() -> None:
    answered = PriorMessage(
        SENT_REQUEST.message_id, "out", "take-charge-request", "NL-DU", "BE1CASE-1", answered=True
    )
    assert reason_of(inbound, reply_header(), local="BE-DU", peer="NL-DU", request=answered) == (
        Reason.ALREADY_ANSWERED
    )


def test_a_request_cannot_claim_to_answer_a_message() -> None:
    h = request_header(in_reply_to="33333333-3333-4333-8333-333333333333")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.UNEXPECTED_IN_REPLY_TO


def test_unknown_type_is_refused() -> None:
    h = request_header(message_type="pizza-order")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.UNKNOWN_TYPE


def test_art41_only_directory_authorities_receive() -> None:
    h = request_header(receiver="FR-DU")
    assert reason_of(check_outbound, h, DIRECTORY, None) == Reason.WRONG_RECEIVER


def test_outbound_reply_must_answer_a_request_we_received_from_the_receiver() -> None:
    received = PriorMessage(
        SENT_REQUEST.message_id, "in", "take-charge-request", "BE-DU", "BE1CASE-1", answered=False
    )
    check_outbound(reply_header(), DIRECTORY, received)
    assert reason_of(check_outbound, reply_header(), DIRECTORY, SENT_REQUEST) == (
        Reason.NO_MATCHING_REQUEST
    )
