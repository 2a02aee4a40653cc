"""Conversation rules between two Dublin units, decided without I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.directory import Authority, Directory
from gateway.core.policy import (
    Header,
    Reason,
    Rejection,
    check_inbound,
    check_outbound,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def authority(
    code: str, n: int, roles: frozenset[str] = frozenset({"case-officer", "health-practitioner"})
) -> Authority:
    return Authority(
        code=code,
        member_state=code[:2],
        name=f"Dublin unit {code}",
        time_zone="Europe/Brussels",
        endpoint="https://127.0.0.1:1",
        roles=roles,
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


def inbound(header: Header, *, local: str, peer: str) -> None:
    check_inbound(
        header,
        local=local,
        peer=peer,
        directory=DIRECTORY,
        now=NOW,
        max_skew=SKEW,
    )


def reason_of(fn: object, *args: object, **kwargs: object) -> Reason:
    with pytest.raises(Rejection) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    return err.value.reason


def test_art29_take_charge_request_from_directory_authority_is_accepted() -> None:
    inbound(request_header(), local="NL-DU", peer="BE-DU")


def test_art30_reply_carries_the_request_reference_and_names_the_request() -> None:
    inbound(reply_header(), local="BE-DU", peer="NL-DU")
    assert reason_of(inbound, reply_header(in_reply_to=None), local="BE-DU", peer="NL-DU") == (
        Reason.NO_MATCHING_REQUEST
    )


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


AMMR = {"legal_basis": "2024-1351"}


def test_2025_2055_art5_a_case_under_2024_1351_opens_with_a_two_digit_type() -> None:
    inbound(request_header(reference="BE01CASE-1", **AMMR), local="NL-DU", peer="BE-DU")
    for wrong in ("BE1CASE-1", "BE02CASE-1", "NL01CASE-1"):
        h = request_header(reference=wrong, **AMMR)
        assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.REFERENCE_INVALID
    inbound(
        request_header(message_type="info-request", reference="BE05CASE-1", **AMMR),
        local="NL-DU",
        peer="BE-DU",
    )


def test_2025_2055_art5_a_health_certificate_has_type_10_and_names_its_case() -> None:
    h = request_header(
        message_type="health-certificate",
        reference="BE10CASE-1",
        case_reference="BE01CASE-1",
        sender_role="health-practitioner",
        **AMMR,
    )
    check_outbound(h, DIRECTORY)
    wrong = replace(h, reference="BE7CASE-1")
    assert reason_of(check_outbound, wrong, DIRECTORY) == Reason.REFERENCE_INVALID


def test_a_reply_carries_its_cases_reference_in_whichever_scheme_it_was_opened() -> None:
    """Matching the case checks the rest (its basis, a mismatch is refused for that)."""
    for case in ("BE01CASE-1", "BE1CASE-1"):
        inbound(reply_header(reference=case, **AMMR), local="BE-DU", peer="NL-DU")
    h = reply_header(reference="BE-CASE", **AMMR)
    assert reason_of(inbound, h, local="BE-DU", peer="NL-DU") == Reason.REFERENCE_INVALID


def test_1560_art20_reference_type_digit_matches_the_form() -> None:
    h = request_header(reference="BE2CASE-1")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.REFERENCE_INVALID


def test_1560_art20_types_6_and_7_carry_their_own_digit_and_name_their_case() -> None:
    ok = request_header(
        message_type="health-certificate",
        reference="BE7CASE-1",
        case_reference="BE1CASE-1",
        sender_role="health-practitioner",
    )
    inbound(ok, local="NL-DU", peer="BE-DU")
    no_case = request_header(
        message_type="health-certificate", reference="BE7CASE-1", sender_role="health-practitioner"
    )
    assert reason_of(inbound, no_case, local="NL-DU", peer="BE-DU") == Reason.REFERENCE_INVALID
    wrong_digit = request_header(
        message_type="transfer-information", reference="BE7CASE-1", case_reference="BE1CASE-1"
    )
    assert reason_of(inbound, wrong_digit, local="NL-DU", peer="BE-DU") == (
        Reason.REFERENCE_INVALID
    )


def test_1560_art20_notices_carry_the_reference_of_their_case() -> None:
    notice = request_header(message_type="transfer-notice", reference="BE1CASE-1")
    inbound(notice, local="NL-DU", peer="BE-DU")
    other = request_header(
        message_type="transfer-notice", reference="BE1CASE-1", case_reference="BE1OTHER"
    )
    assert reason_of(inbound, other, local="NL-DU", peer="BE-DU") == Reason.REFERENCE_INVALID


def test_art40_8_erasure_notice_names_the_message_concerned() -> None:
    h = request_header(message_type="erasure-notice", reference="BE1CASE-1")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.NO_MATCHING_REQUEST


def test_a_request_cannot_claim_to_answer_a_message() -> None:
    h = request_header(in_reply_to="33333333-3333-4333-8333-333333333333")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.UNEXPECTED_IN_REPLY_TO


def test_unknown_type_is_refused() -> None:
    h = request_header(message_type="pizza-order")
    assert reason_of(inbound, h, local="NL-DU", peer="BE-DU") == Reason.UNKNOWN_TYPE


def test_art41_only_directory_authorities_receive() -> None:
    h = request_header(receiver="FR-DU")
    assert reason_of(check_outbound, h, DIRECTORY) == Reason.WRONG_RECEIVER
    assert reason_of(check_outbound, request_header(receiver="BE-DU"), DIRECTORY) == (
        Reason.WRONG_RECEIVER
    )


def test_art40_3_grounds_of_claim_only_with_written_consent() -> None:
    from gateway.core.policy import check_form_rules

    asked = {"item": ["identity", "grounds-of-claim"]}
    assert reason_of(check_form_rules, "info-request", asked) == Reason.CONSENT_MISSING
    assert reason_of(check_form_rules, "info-request", asked | {"writtenConsent": False}) == (
        Reason.CONSENT_MISSING
    )
    check_form_rules("info-request", asked | {"writtenConsent": True})
    check_form_rules("info-request", {"item": ["identity"]})


def test_art25_2_humanitarian_request_needs_written_consent() -> None:
    from gateway.core.policy import check_form_rules

    assert reason_of(check_form_rules, "humanitarian-request", {"writtenConsent": False}) == (
        Reason.CONSENT_MISSING
    )
    check_form_rules("humanitarian-request", {"writtenConsent": True})


HEALTH = {
    "message_type": "health-certificate",
    "reference": "BE7CASE-1",
    "case_reference": "BE1CASE-1",
    "sender_role": "health-practitioner",
}


def test_art39_health_certificates_are_sent_by_the_health_practitioner_role_only() -> None:
    by_officer = request_header(**HEALTH | {"sender_role": "case-officer"})
    assert reason_of(inbound, by_officer, local="NL-DU", peer="BE-DU") == Reason.ROLE_NOT_ALLOWED
    assert reason_of(check_outbound, by_officer, DIRECTORY) == Reason.ROLE_NOT_ALLOWED
    # ...and a case officer's form is not sent under the health practitioner role.
    disguised = request_header(sender_role="health-practitioner")
    assert reason_of(inbound, disguised, local="NL-DU", peer="BE-DU") == Reason.ROLE_NOT_ALLOWED


def test_art39_health_certificates_go_only_to_endpoints_marked_for_health_practitioners() -> None:
    officers_only = frozenset({"case-officer"})
    no_health_nl = Directory.of(
        [authority("BE-DU", 1), authority("NL-DU", 2, officers_only), authority("GR-DU", 3)]
    )
    h = request_header(**HEALTH)
    with pytest.raises(Rejection) as caught:
        check_outbound(h, no_health_nl)
    assert caught.value.reason == Reason.ROLE_NOT_ALLOWED
    assert "receiver NL-DU is not marked for the health-practitioner role" in str(caught.value)
    no_health_be = Directory.of(
        [authority("BE-DU", 1, officers_only), authority("NL-DU", 2), authority("GR-DU", 3)]
    )
    with pytest.raises(Rejection) as caught:
        check_inbound(
            h, local="NL-DU", peer="BE-DU", directory=no_health_be, now=NOW, max_skew=SKEW
        )
    assert "sender BE-DU is not marked" in str(caught.value)
    # Other forms are untouched by the health role.
    check_outbound(request_header(), no_health_nl)
