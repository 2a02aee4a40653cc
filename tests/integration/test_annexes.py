"""The standard forms of Implementing Regulation (EU) 2025/2055 between real gateways, in
cases under Regulation (EU) 2024/1351: Annex II (take charge, Arts 7-8) and Annex III (take
back, Arts 12-14). The same check refuses a submission and, from a sender holding a real
member's keys, a transmission."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.client import ApiError
from gateway.core.forms import form_type
from gateway.examples import attachments_for
from gateway.xml.forms import form_to_element

from .conftest import Harness, example
from .test_deadlines import advance, case_state, rolled_over
from .test_legal_bases import _accepted_case, _limits, _notify_form, _start
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


def _supervised(h: Harness, days_ahead: int = 10) -> dict[str, Any]:
    """A transfer form for a supervised departure in which NL-DU's authorities receive the
    person at the airport (2025/2055 Art. 25(1)(b)), `days_ahead` days from today."""
    today = h.ctx("BE-DU").clock().astimezone(ZoneInfo("Europe/Brussels")).date()
    return example("transfer-notice-arrangements.json") | {
        "transferType": "supervised-departure",
        "arrivalDate": (today + timedelta(days=days_ahead)).isoformat(),
        "transportMode": "plane",
        "itinerary": "Scheduled flight (fictitious)",
        "arrivalLocation": "Airport of arrival (fictitious)",
    }


async def _arranged(h: Harness, case_number: str, form: dict[str, Any]) -> tuple[str, str]:
    """An accepted case whose transfer BE-DU decided and arranged with `form`: the case's
    reference and the transfer form's message id."""
    case = await _accepted_case(h, case_number, "transfer-notice-decision-taken")
    be = h.api("BE-DU")
    sent = await be.submit("transfer-notice", "NL-DU", form, case=case)
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    return case, str(sent["message_id"])


async def test_2025_2055_art25_5_the_receiving_state_answers_a_transfer_form_within_5_days(
    tmp_path: Path,
) -> None:
    """A supervised departure received at a location opens NL-DU's 5 days to confirm or
    propose alternatives (Art. 25(5)), on both sides; NL-DU's alternative closes them, is
    given once, and BE-DU's new form to the designated location asks no answer. A voluntary
    transfer's form asks none: answering it is refused."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        case, form_id = await _arranged(h, "AMMR-ANSWER", _supervised(h))
        today_nl = h.ctx("NL-DU").clock().astimezone(ZoneInfo("Europe/Amsterdam")).date()
        for code in ("BE-DU", "NL-DU"):
            (answer,) = (await _limits(h, code, case, "transfer-arranged"))["transfer_form_answer"]
            assert (answer["state"], answer["acting"]) == ("open", "NL-DU")
            assert answer["article"] == "2025/2055 Art. 25(5), 26(2)-(3)"
            assert answer["due_date"] == rolled_over(today_nl + timedelta(days=5), "NL").isoformat()
        reply = await nl.submit(
            "transfer-reply",
            "BE-DU",
            example("transfer-reply-alternative.json"),
            in_reply_to=form_id,
        )
        await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
        for code in ("BE-DU", "NL-DU"):
            for _ in range(200):
                limits = await _limits(h, code, case, "transfer-arranged")
                if limits["transfer_form_answer"][0]["state"] != "open":
                    break
                await asyncio.sleep(0.05)
            assert limits["transfer_form_answer"][0]["state"] != "open"
        with pytest.raises(ApiError) as twice:
            await nl.submit(
                "transfer-reply",
                "BE-DU",
                example("transfer-reply-confirmation.json"),
                in_reply_to=form_id,
            )
        assert twice.value.problem["rule"] == "already-answered"
        designated = _supervised(h) | {"designatedLocation": True}
        again = await be.submit("transfer-notice", "NL-DU", designated, case=case)
        await be.wait_for_state(again["message_id"], {"delivered"}, within=20)
        limits = await _limits(h, "NL-DU", case, "transfer-arranged")
        assert len(limits["transfer_form_answer"]) == 1, "no further consultation (Art. 25(5))"

        voluntary = _supervised(h) | {
            "transferType": "voluntary",
            "appearBefore": "Dublin unit, Exampletown (fictitious)",
        }
        other, voluntary_id = await _arranged(h, "AMMR-NO-ANSWER", voluntary)
        assert "transfer_form_answer" not in await _limits(h, "NL-DU", other, "transfer-arranged")
        with pytest.raises(ApiError) as refused:
            await nl.submit(
                "transfer-reply",
                "BE-DU",
                example("transfer-reply-confirmation.json"),
                in_reply_to=voluntary_id,
            )
        assert refused.value.problem["rule"] == "conversation-rule"
        assert "Art. 25(5), 26(3)" in refused.value.problem["detail"]
    finally:
        await h.close()


async def test_2025_2055_art26_3_silence_on_an_escort_form_sends_the_transfer_to_the_location(
    tmp_path: Path,
) -> None:
    """An escort transfer outside a group opens the same 5 days (Art. 26(3)); when NL-DU
    stays silent they expire on both sides with the consequence the text gives: the
    transfer goes to the location NL-DU designated (Art. 23(1), second subparagraph)."""
    h = await _start(tmp_path)
    try:
        form = _supervised(h, 20) | {"transferType": "escort", "escort": True}
        case, _ = await _arranged(h, "AMMR-ESCORT-SILENT", form)
        await advance(h, 10)
        for code in ("BE-DU", "NL-DU"):
            for _ in range(200):
                (answer,) = (await _limits(h, code, case, "transfer-arranged"))[
                    "transfer_form_answer"
                ]
                if answer["state"] == "expired":
                    break
                await asyncio.sleep(0.05)
            assert answer["state"] == "expired"
            entries = await h.ctx(code).store.register.query(event="deadline-expired")
            assert "transfer-to-designated-location" in {e.reason for e in entries}
        # Art. 26(1)(a), 26(2): a person of a group transfer announced with Annex VI; the
        # form names that announcement, whose own 5 days ran, and asks no answer of its own
        be = h.api("BE-DU")
        group = await be.submit(
            "group-transfer-notice", "NL-DU", example("group-transfer-notice.json")
        )
        await be.wait_for_state(group["message_id"], {"delivered"}, within=20)
        grouped = await _accepted_case(h, "AMMR-ESCORT-GROUP", "transfer-notice-decision-taken")
        # A group transfer form nobody sent: the announced one's reference with one person
        # more (a fixed text was the announced reference itself on the day the example's
        # moved intended date fell on it, 1 January 2027).
        unsent = group["reference"].replace("G12", "G13", 1)
        assert unsent != group["reference"]
        with pytest.raises(ApiError) as refused:
            await be.submit(
                "transfer-notice",
                "NL-DU",
                form | {"groupTransferReference": unsent},
                case=grouped,
            )
        assert "2025/2055 Art. 26(2)" in refused.value.problem["detail"]
        await _notify_form(h, grouped, form | {"groupTransferReference": group["reference"]})
        assert "transfer_form_answer" not in await _limits(h, "NL-DU", grouped, "transfer-arranged")
    finally:
        await h.close()


async def test_2025_2055_annex_vi_a_group_confirmed_for_fewer_persons_keeps_ten(
    tmp_path: Path,
) -> None:
    """NL-DU may confirm BE-DU's group transfer of 12 for a reduced number of persons, but
    not below the 10 of Art. 26(1)(a) (Annex VI, Part II)."""
    h = await _start(tmp_path)
    try:
        be, nl = h.api("BE-DU"), h.api("NL-DU")
        notice = example("group-transfer-notice.json") | {"persons": 12}
        sent = await be.submit("group-transfer-notice", "NL-DU", notice)
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        reply = {"confirmation": {"persons": 9, "preferredLocation": "Airport (fictitious)"}}
        with pytest.raises(ApiError) as refused:
            await nl.submit("group-transfer-reply", "BE-DU", reply, in_reply_to=sent["message_id"])
        assert refused.value.problem["rule"] == "conversation-rule"
        assert "Annex VI, Part II" in refused.value.problem["detail"]
        reply["confirmation"]["persons"] = 10
        answer = await nl.submit(
            "group-transfer-reply", "BE-DU", reply, in_reply_to=sent["message_id"]
        )
        await nl.wait_for_state(answer["message_id"], {"delivered"}, within=20)
        await case_state(h, "BE-DU", sent["reference"], "accepted")
    finally:
        await h.close()
