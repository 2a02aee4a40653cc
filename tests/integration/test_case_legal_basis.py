"""A legal basis per case (issue 16, item 2): fixed when the case opens, carried signed in the
envelope of every message of the case, and checked by both gateways. Regulation (EU)
2024/1351 is the default; a case system may name another basis for a new case (e.g. the
proposal, for training); a message that names no basis this gateway knows, or another basis
than its case's, is refused with a reason code."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.client import ApiError
from gateway.core.conversations import basis_version
from gateway.xml.envelope import build_transmission

from .conftest import Harness, example, send_request
from .test_rejections import assert_rejected, header, post, with_files


async def test_a_new_case_runs_under_regulation_2024_1351_on_both_sides(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = await send_request(be, case_number="LB-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    assert (await be.case(sent["reference"]))["legal_basis"] == "2024-1351"
    assert (await nl.case(sent["reference"]))["legal_basis"] == "2024-1351"
    stored = await harness.ctx("BE-DU").store.messages.get(sent["message_id"])
    assert (
        f'<gw:LegalBasis rules="{basis_version("2024-1351")}">2024-1351</gw:LegalBasis>'.encode()
        in stored.signed_xml
    )


async def test_a_case_opened_under_the_proposal_keeps_it_for_every_message(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = await send_request(be, case_number="LB-2", legal_basis="com-2020-610")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    assert (await nl.case(sent["reference"]))["legal_basis"] == "COM(2020) 610"
    acceptance = example("take-charge-reply-acceptance.json")
    with pytest.raises(ApiError) as err:
        await nl.submit(
            "take-charge-reply",
            "BE-DU",
            acceptance,
            in_reply_to=sent["message_id"],
            legal_basis="2024-1351",
        )
    assert err.value.status == 422
    assert err.value.problem["field"] == "/legal_basis"
    assert err.value.problem["rule"] == "legal-basis-mismatch"
    assert "runs under com-2020-610" in err.value.problem["detail"]
    reply = await nl.submit(
        "take-charge-reply", "BE-DU", acceptance, in_reply_to=sent["message_id"]
    )
    stored = await harness.ctx("NL-DU").store.messages.get(reply["message_id"])
    assert b">com-2020-610</gw:LegalBasis>" in stored.signed_xml
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    assert (await be.case(sent["reference"]))["legal_basis"] == "COM(2020) 610"


async def test_a_submission_naming_an_unknown_basis_is_refused_listing_the_known_ones(
    harness: Harness,
) -> None:
    await harness.start("BE-DU")
    with pytest.raises(ApiError) as err:
        await send_request(harness.api("BE-DU"), case_number="LB-3", legal_basis="9999-1")
    assert err.value.status == 422 and err.value.problem["rule"] == "legal-basis-unknown"
    assert "2024-1351" in err.value.problem["detail"]
    assert await harness.ctx("BE-DU").store.messages.count() == 0


@pytest.mark.parametrize("basis", [None, "9999-1"])
async def test_a_transmission_naming_no_known_basis_is_refused(
    harness: Harness, basis: str | None
) -> None:
    """A hostile or outdated sender, with BE-DU's real keys, leaves the basis out or names
    one NL-DU runs no cases under: refused, signed, with a register entry."""
    await harness.start("NL-DU")
    body = harness.signer("BE-DU").sign(with_files(header(legal_basis=basis)))
    async with harness.session_as("BE-DU") as s:
        status, ack = await post(s, harness, body)
    await assert_rejected(harness, status, ack, 422, "legal-basis-unknown")


async def test_a_message_under_another_basis_than_its_case_is_refused(harness: Harness) -> None:
    """NL-DU, with its real keys, answers a 2024/1351 case under the proposal: BE-DU refuses
    it, and the case stays where it was."""
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="LB-4")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    before = (await be.case(sent["reference"]))["state"]
    reply = dataclasses.replace(
        header(),
        reference=sent["reference"],
        message_type="take-charge-reply",
        sender="NL-DU",
        receiver="BE-DU",
        in_reply_to=sent["message_id"],
        legal_basis="com-2020-610",
        rules_version=basis_version("com-2020-610"),
    )
    from gateway.core.forms import form_type
    from gateway.xml.forms import form_to_element

    form = form_to_element(
        form_type("take-charge-reply"), example("take-charge-reply-acceptance.json")
    )
    status, ack = await harness.post_signed(
        "NL-DU", "BE-DU", harness.signer("NL-DU").sign(build_transmission(reply, form))
    )
    assert status == 422 and ack.reason_code == "legal-basis-mismatch"
    assert "runs under 2024-1351" in (ack.reason_text or "")
    assert (await be.case(sent["reference"]))["state"] == before


async def test_a_peer_on_another_version_of_the_pack_is_recorded_not_refused(
    harness: Harness,
) -> None:
    await harness.start("NL-DU")
    body = harness.signer("BE-DU").sign(with_files(header(rules_version="0")))
    async with harness.session_as("BE-DU") as s:
        status, _ = await post(s, harness, body)
    assert status == 200
    received = await harness.ctx("NL-DU").store.register.query(event="received")
    assert received[-1].details["rules_version"] == {
        "peer": "0",
        "ours": basis_version("2024-1351"),
    }


@pytest.mark.parametrize(("opened_under", "status"), [("com-2020-610", 200), ("2024-1351", 422)])
async def test_a_message_signed_before_the_upgrade_is_taken_only_for_a_proposal_case(
    harness: Harness, opened_under: str, status: int
) -> None:
    """Transmissions queued before every message named its basis carry none: the receiver
    takes one for a case that runs under the proposal (every case did then), and refuses it
    for any other case."""
    from gateway.core.forms import form_type
    from gateway.xml.forms import form_to_element

    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number=f"LB-U-{status}", legal_basis=opened_under)
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    reply = dataclasses.replace(
        header(),
        reference=sent["reference"],
        message_type="take-charge-reply",
        sender="NL-DU",
        receiver="BE-DU",
        in_reply_to=sent["message_id"],
        legal_basis=None,
        rules_version=None,
    )
    form = form_to_element(
        form_type("take-charge-reply"), example("take-charge-reply-acceptance.json")
    )
    answer, ack = await harness.post_signed(
        "NL-DU", "BE-DU", harness.signer("NL-DU").sign(build_transmission(reply, form))
    )
    assert answer == status
    if status == 422:
        assert ack.reason_code == "legal-basis-unknown"
    else:
        assert (await be.case(sent["reference"]))["state"] == "accepted"
