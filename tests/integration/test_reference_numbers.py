"""Reference numbers on real gateways: a case under Regulation 2024/1351 numbers its
transmissions by Implementing Regulation (EU) 2025/2055 Art. 5 (two-digit types, "P" for
priority), a Dublin III case keeps 1560/2003 Art. 20, and a receiver refuses a request whose
reference does not follow its basis's scheme (a hostile sender holding BE-DU's real keys)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.client import ApiError

from .conftest import Harness, example, send_request
from .test_rejections import assert_rejected, header, post, with_files

pytestmark = pytest.mark.asyncio


async def test_2025_2055_art5_references_of_an_ammr_case_on_both_sides(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    sent = await send_request(be, case_number="2026-0100")
    assert sent["reference"] == "BE012026-0100", "Art. 5(1)(a), 5(3): type 01"
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    assert (await nl.case(sent["reference"]))["legal_basis"] == "2024-1351"

    minors = await send_request(be, case_number="2026-0101", priority=True)
    assert minors["reference"] == "BE01P2026-0101", "Art. 5(2): the case involves minors"

    for purpose, code in (("determining-responsibility", "03"), ("return-decision", "06")):
        form = example("info-request.json") | {"purpose": purpose}
        info = await be.submit("info-request", "NL-DU", form, case_number=f"INFO-{code}")
        assert info["reference"] == f"BE{code}INFO-{code}", "Art. 5(1)(c)-(f)"
        await be.wait_for_state(info["message_id"], {"delivered"}, within=20)

    unnamed = example("info-request.json")
    del unnamed["purpose"]
    with pytest.raises(ApiError) as refused:
        await be.submit("info-request", "NL-DU", unnamed, case_number="INFO-X")
    assert refused.value.problem["field"] == "/form/purpose"


async def test_1560_art20_a_dublin_iii_case_keeps_its_type_digit(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    form = example("take-back-request.json")
    form["application"] |= {"date": "2026-05-20"}  # registered before the cut-over
    sent = await be.submit(
        "take-back-request", "NL-DU", form, case_number="D3-1", legal_basis="604-2013"
    )
    assert sent["reference"] == "BE2D3-1"
    with pytest.raises(ApiError) as refused:
        await be.submit(
            "take-back-request",
            "NL-DU",
            form,
            case_number="D3-2",
            legal_basis="604-2013",
            priority=True,
        )
    assert refused.value.problem["field"] == "/priority"


async def test_2025_2055_art5_a_request_numbered_by_the_old_scheme_is_refused(
    harness: Harness,
) -> None:
    """BE-DU's real keys sign an AMMR take charge request numbered BE1...: NL-DU refuses
    it with a signed reason and a register entry, and opens no case."""
    await harness.start("NL-DU")
    body = harness.signer("BE-DU").sign(
        with_files(dataclasses.replace(header(), reference="BE1OLD-1"))
    )
    async with harness.session_as("BE-DU") as s:
        status, ack = await post(s, harness, body)
    await assert_rejected(harness, status, ack, 422, "reference-invalid")
    with pytest.raises(ApiError):
        await harness.api("NL-DU").case("BE1OLD-1")


async def test_2025_2055_art26_2_a_group_transfer_is_announced_numbered_and_answered(
    harness: Harness,
) -> None:
    """A transfer under escort of 10 persons or more is announced on the Annex VI form
    (Art. 26(2)), numbered by type 09, "G", the persons and the intended date (Art. 5(4));
    the receiving State's 5 days to answer open on both sides and its confirmation closes
    them. A group notice numbered like a case is refused by the receiver."""
    from datetime import date

    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    form = example("group-transfer-notice.json")
    day = date.fromisoformat(form["intendedDate"])
    sent = await be.submit("group-transfer-notice", "NL-DU", form)
    assert sent["reference"] == f"BE09G{form['persons']}{day.strftime('%d/%m/%Y')}"
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    for code in ("BE-DU", "NL-DU"):
        view = await harness.api(code).case(sent["reference"])
        (answer,) = [d for d in view["deadlines"] if d["rule"] == "transfer_form_answer"]
        assert (answer["state"], answer["acting"]) == ("open", "NL-DU")
        assert answer["article"] == "2025/2055 Art. 25(5), 26(2)-(3)"
    reply = await nl.submit(
        "group-transfer-reply",
        "BE-DU",
        example("group-transfer-reply-confirmation.json"),
        in_reply_to=sent["message_id"],
    )
    assert reply["reference"] == sent["reference"]
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    for code in ("BE-DU", "NL-DU"):
        for _ in range(200):
            view = await harness.api(code).case(sent["reference"])
            if view["state"] == "accepted":
                break
            await asyncio.sleep(0.05)
        assert view["state"] == "accepted"
        (answer,) = [d for d in view["deadlines"] if d["rule"] == "transfer_form_answer"]
        assert answer["state"] == "met"
    with pytest.raises(ApiError) as refused:
        await be.submit("group-transfer-notice", "NL-DU", form, case_number="G-1")
    assert refused.value.problem["field"] == "/case_number"


async def test_2025_2055_art5_4_a_group_notice_numbered_as_a_case_is_refused(
    harness: Harness,
) -> None:
    await harness.start("NL-DU")
    from gateway.core.forms import form_type
    from gateway.xml.envelope import build_transmission
    from gateway.xml.forms import form_to_element

    head = dataclasses.replace(
        header(), reference="BE09GROUP-1", message_type="group-transfer-notice"
    )
    element = form_to_element(
        form_type("group-transfer-notice"), example("group-transfer-notice.json")
    )
    body = harness.signer("BE-DU").sign(build_transmission(head, element))
    async with harness.session_as("BE-DU") as s:
        status, ack = await post(s, harness, body)
    await assert_rejected(harness, status, ack, 422, "reference-invalid")
