"""A third authority learns nothing of a case between two others: holding GR-DU's real keys,
it names a BE-DU <-> NL-DU case or message in transmissions to NL-DU. Its refusals read the
same whether that case or message exists or not, and the attempt stays out of the pair's case
view and event feed; the register keeps it (Art. 40(9))."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.core.forms import form_type
from gateway.xml.envelope import build_transmission
from gateway.xml.forms import form_to_element

from .conftest import Harness, example, send_request
from .test_rejections import header

pytestmark = pytest.mark.attack


def _from_gr(h: Harness, message_type: str, form: str, **kw: Any) -> tuple[str, bytes]:
    """A transmission GR-DU signs with its real signing key, to NL-DU."""
    head = header(message_type=message_type, sender="GR-DU", **kw)
    element = form_to_element(form_type(message_type), example(form))
    return head.message_id, h.signer("GR-DU").sign(build_transmission(head, element))


async def _refusal(h: Harness, body: bytes) -> tuple[int, str | None, str | None]:
    status, ack = await h.post_signed("GR-DU", "NL-DU", body)
    assert ack.status == "rejected"
    return status, ack.reason_code, ack.reason_text


async def test_a_non_party_is_refused_alike_whether_the_case_or_message_it_names_exists(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be = h.api("BE-DU")
    sent = await send_request(be, case_number="PAIR-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    case, request_id = sent["reference"], sent["message_id"]
    nowhere, no_message = "BE01PAIR-404", str(uuid.uuid4())

    # A reply naming the pair's request (and its case), or a request and case that do not
    # exist, in every combination: one answer.
    replies = {
        (case_ref, target): await _refusal(
            h,
            _from_gr(
                h,
                "take-charge-reply",
                "take-charge-reply-acceptance",
                reference=case_ref,
                in_reply_to=target,
            )[1],
        )
        for case_ref in (case, nowhere)
        for target in (request_id, no_message)
    }
    assert len(set(replies.values())) == 1, replies
    # A follow-up on the pair's case, or on a case that does not exist: one answer.
    notices = {
        case_ref: await _refusal(
            h,
            _from_gr(h, "transfer-notice", "transfer-notice-arrangements", reference=case_ref)[1],
        )
        for case_ref in (case, nowhere)
    }
    assert len(set(notices.values())) == 1, notices
    for status, _, text in (*replies.values(), *notices.values()):
        assert status == 422
        assert text is not None and "BE-DU" not in text and case not in text


async def test_a_non_partys_refused_attempt_stays_out_of_the_pairs_case_view_and_event_feed(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = await send_request(be, case_number="PAIR-2")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    case, request_id = sent["reference"], sent["message_id"]
    before = await nl.case(case)

    attempts = [
        _from_gr(
            h,
            "take-charge-reply",
            "take-charge-reply-refusal",
            reference=case,
            in_reply_to=request_id,
        ),
        _from_gr(h, "transfer-notice", "transfer-notice-arrangements", reference=case),
        # Its own case, but the message id of the pair's request.
        _from_gr(
            h,
            "take-charge-request",
            "take-charge-request",
            reference="GR01OWN-1",
            message_id=request_id,
        ),
    ]
    for _, body in attempts:
        status, ack = await h.post_signed("GR-DU", "NL-DU", body)
        assert (status, ack.status) == (422, "rejected"), ack.reason_text

    after = await nl.case(case)
    assert after["state"] == before["state"] == "requested"
    assert after["messages"] == before["messages"]
    assert after["events"] == before["events"]
    assert all(e["peer"] != "GR-DU" for e in after["events"])
    feed = (await nl.events("0", 1000))["items"]
    assert all(e["peer"] != "GR-DU" for e in feed), [e for e in feed if e["peer"] == "GR-DU"]
    assert (await nl.events("0", 1000, case=case))["items"] == before["events"]
    message = await nl.message(request_id)
    assert all(e["peer"] != "GR-DU" for e in message["events"]), message["events"]

    # The register, for auditors, holds every attempt.
    registered = await h.ctx("NL-DU").store.register.query(peer="GR-DU", event="rejected")
    assert [e.message_id for e in registered] == [
        attempts[0][0],
        attempts[1][0],
        request_id,
    ]
    assert [e.reference for e in registered] == [case, case, "GR01OWN-1"]
