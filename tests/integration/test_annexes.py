"""The standard forms of Implementing Regulation (EU) 2025/2055 between real gateways, in
cases under Regulation (EU) 2024/1351: Annex II (take charge, Arts 7-8) and Annex III (take
back, Arts 12-14). The same check refuses a submission and, from a sender holding a real
member's keys, a transmission."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.client import ApiError
from gateway.core.forms import form_type
from gateway.examples import attachments_for
from gateway.xml.forms import form_to_element

from .conftest import Harness, example
from .test_deadlines import case_state
from .test_legal_bases import _start
from .test_rejections import assert_rejected, header, post, signer, with_files


async def test_2025_2055_art7_1_a_peers_request_on_a_provision_annex_ii_lacks_is_refused(
    harness: Harness,
) -> None:
    """A sender holding BE-DU's real keys opens a 2024/1351 case on the proposal's visa
    criterion (Art. 19(2)): NL-DU refuses it with `conversation-rule`, naming the article,
    and keeps a register entry and nothing else."""
    await harness.start("NL-DU")
    transmission = with_files(header(reference="BE01ANNEX-1"))
    form = example("take-charge-request.json")
    form["criterion"] = "Art. 19(2)"
    old = transmission.find(".//{*}TakeChargeRequest")
    assert old is not None
    old.getparent().replace(old, form_to_element(form_type("take-charge-request"), form))
    body = signer(harness, "BE-DU").sign(transmission)
    async with harness.session_as("BE-DU") as s:
        status, answer = await post(s, harness, body)
    await assert_rejected(harness, status, answer, 422, "conversation-rule")
    assert b"2025/2055 Art. 7(1)" in answer


async def test_2025_2055_arts_7_to_14_the_annexes_rules_at_submission(tmp_path: Path) -> None:
    """BE-DU's case system is told, before anything is sent, that a take charge request rests
    on a provision of Annex II and that a take back notification names its situation; NL-DU's
    that a non-confirmation on an incorrect Eurodac indication answers only a notification
    under Art. 36(1)(b) (Annex III, Part II). Another ground goes through."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        request = example("take-charge-request.json")
        request["criterion"] = "Art. 29(3)"
        with pytest.raises(ApiError) as refused:
            await be.submit(
                "take-charge-request",
                "NL-DU",
                request,
                case_number="ANNEX-2",
                attachments=attachments_for(request),
            )
        assert refused.value.problem["rule"] == "conversation-rule"
        assert "2025/2055 Art. 7(1)" in refused.value.problem["detail"]

        notification = example("take-back-notification.json")
        del notification["provision"]
        with pytest.raises(ApiError) as refused:
            await be.submit("take-back-notification", "NL-DU", notification, case_number="AN-3")
        assert "2025/2055 Art. 12(1)" in refused.value.problem["detail"]

        notification["provision"] = "art-36-1-c"
        sent = await be.submit(
            "take-back-notification", "NL-DU", notification, case_number="ANNEX-3"
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        reply = example("take-back-confirmation-responsibilityCeased.json")
        reply["responsibilityCeased"]["cessation"] = "incorrect-eurodac-indication"
        with pytest.raises(ApiError) as refused:
            await nl.submit(
                "take-back-confirmation", "BE-DU", reply, in_reply_to=sent["message_id"]
            )
        assert refused.value.problem["rule"] == "conversation-rule"
        assert "Annex III, Part II" in refused.value.problem["detail"]
        reply["responsibilityCeased"]["cessation"] = "art-37-2"
        ceased = await nl.submit(
            "take-back-confirmation", "BE-DU", reply, in_reply_to=sent["message_id"]
        )
        await nl.wait_for_state(ceased["message_id"], {"delivered"}, within=20)
        await case_state(h, "BE-DU", sent["reference"], "responsibility-ceased")
    finally:
        await h.close()


async def test_2025_2055_art12_6_a_notification_without_fingerprints_goes_and_is_reconsidered(
    tmp_path: Path,
) -> None:
    """A notification under Art. 12(6) carries no Eurodac hit (no fingerprints could be
    compared); its non-confirmation, on any ground, may be reconsidered (Art. 15(4))."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        notification = example("take-back-notification.json")
        for field in ("eurodacHit", "hitDate", "hitData"):
            notification.pop(field, None)
        notification.update(provision="ir-art-12-6", unaccompaniedMinor=True)
        sent = await be.submit(
            "take-back-notification", "NL-DU", notification, case_number="ANNEX-4"
        )
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        reply = example("take-back-confirmation-responsibilityCeased.json")
        reply["responsibilityCeased"]["cessation"] = "art-37-1"
        ceased = await nl.submit(
            "take-back-confirmation", "BE-DU", reply, in_reply_to=sent["message_id"]
        )
        await nl.wait_for_state(ceased["message_id"], {"delivered"}, within=20)
        case = sent["reference"]
        await case_state(h, "BE-DU", case, "responsibility-ceased")
        asked = await be.submit(
            "reconsideration-request", "NL-DU", example("reconsideration-request.json"), case=case
        )
        await be.wait_for_state(asked["message_id"], {"delivered"}, within=20)
        await case_state(h, "NL-DU", case, "reconsideration-requested")
    finally:
        await h.close()
