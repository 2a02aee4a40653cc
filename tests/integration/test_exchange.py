"""Two national gateways exchange a signed take charge request (Art. 29) and reply (Art. 30)
over mutual TLS, with signed acknowledgements of receipt (1560/2003 Art. 19, Art. 41(4)) and
a hash-chained register on both sides (Art. 40(9))."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from pathlib import Path

from gateway.core.register import verify_chain
from gateway.store.records import StoredMessage
from gateway.xml.envelope import read_acknowledgement
from gateway.xml.parser import parse_untrusted
from gateway.xml.signature import verify

from .conftest import Harness, example, make_harness, send_request


async def test_art29_art30_request_and_acceptance_are_exchanged_with_signed_receipts(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be, nl = harness.api("BE-DU"), harness.api("NL-DU")
    form = example("take-charge-request.json")

    sent = await send_request(be, case_number="2026-0042")
    assert sent["reference"] == "BE012026-0042"
    view = await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    ack = view["acknowledgement"]
    assert ack["status"] == "accepted"
    receipt = datetime.fromisoformat(ack["receipt_time"].replace("Z", "+00:00"))
    assert ack["receipt_time"].endswith("Z") and len(ack["receipt_time"].split(".")[1]) == 7

    stored_out = await harness.ctx("BE-DU").store.messages.get(sent["message_id"])
    assert ack["digest"] == hashlib.sha256(stored_out.signed_xml).hexdigest()

    received = await nl.wait_for_inbox(lambda m: m["message_id"] == sent["message_id"], within=10)
    assert received["form"] == form
    assert received["sender"] == "BE-DU"
    stored_in = await harness.ctx("NL-DU").store.messages.get(sent["message_id"])
    assert stored_in.signed_xml == stored_out.signed_xml, "the receiver keeps the signed bytes"
    assert stored_in.receipt_time == receipt

    reply = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-acceptance.json"),
        in_reply_to=sent["message_id"],
    )
    assert reply["reference"] == sent["reference"]
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    got = await be.wait_for_inbox(lambda m: m["message_id"] == reply["message_id"], within=10)
    assert got["in_reply_to"] == sent["message_id"]
    assert got["form"] == example("take-charge-reply-acceptance.json")

    # Registers: complete, chained, and each side witnesses the other's head.
    be_reg = await harness.ctx("BE-DU").store.register.query(limit=1000)
    nl_reg = await harness.ctx("NL-DU").store.register.query(limit=1000)
    transmission_events = {"submitted", "delivered", "received"}
    be_tx = [e for e in be_reg if e.event in transmission_events]
    nl_tx = [e for e in nl_reg if e.event in transmission_events]
    assert [e.event for e in be_tx] == ["submitted", "delivered", "received"]
    assert [e.event for e in nl_tx] == ["received", "submitted", "delivered"]
    verify_chain(be_reg)
    verify_chain(nl_reg)
    witnessed = be_tx[1].details["peer_register_head"]
    assert witnessed == {"sequence": nl_tx[0].sequence, "hash": nl_tx[0].hash}
    # Art. 30(1): both sides opened the reply limit from the same receipt time, and the
    # acceptance met it and started the transfer limits (Art. 32(1), 35(1))
    for api in (be, nl):
        rules = {d["rule"]: d for d in (await api.case(sent["reference"]))["deadlines"]}
        assert rules["take_charge_reply"]["state"] == "met"
        assert rules["take_charge_reply"]["started_at"] == ack["receipt_time"]
        assert rules["transfer_decision"]["state"] == "open"
        assert rules["transfer"]["state"] == "open"
    for entry in be_reg + nl_reg:
        assert "Doe" not in str(entry.to_dict()), "no payload content in the register"


async def test_acknowledgement_is_signed_by_the_receiver_and_names_the_digest(
    harness: Harness,
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="A-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    msg = await harness.ctx("BE-DU").store.messages.get(sent["message_id"])
    verified = verify(parse_untrusted(msg.ack_xml), harness.ctx("BE-DU").signer_authority)
    assert verified.signer_authority == "NL-DU"
    ack = read_acknowledgement(verified.root)
    assert ack.message_id == sent["message_id"]
    assert ack.digest == msg.digest
    assert ack.sender == "NL-DU" and ack.receiver == "BE-DU"


async def _delivered(harness: Harness, case_number: str) -> StoredMessage:
    """A take charge request BE-DU has delivered to NL-DU, as BE-DU stored it."""
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number=case_number)
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    stored = await harness.ctx("BE-DU").store.messages.get(sent["message_id"])
    assert stored is not None
    return stored


async def _sent_again(harness: Harness, original: StoredMessage, times: int) -> None:
    """BE-DU posts the same signed bytes `times` times: NL-DU answers each with the original
    acknowledgement, and stores and registers nothing."""
    store = harness.ctx("NL-DU").store
    count, head = await store.messages.count(), await store.register.head()
    async with harness.session_as("BE-DU") as session:
        for _ in range(times):
            async with session.post(
                harness.net.gateways["NL-DU"].peer_url + "/v1/transmissions",
                data=original.signed_xml,
                headers={"Content-Type": "application/xml"},
            ) as resp:
                assert resp.status == 200
                assert await resp.read() == original.ack_xml
    assert await store.messages.count() == count
    assert await store.register.head() == head


async def test_same_message_id_again_returns_the_original_acknowledgement_and_stores_nothing(
    harness: Harness,
) -> None:
    await _sent_again(harness, await _delivered(harness, "D-1"), 3)


async def test_a_repeat_after_the_clock_window_gets_the_original_acknowledgement(
    harness: Harness,
) -> None:
    """1560/2003 Art. 19: the acknowledgement is the proof of receipt, so a sender that lost
    it and sends the same bytes again, even a day later, when a new transmission created
    then would be refused for its clock, gets the first acknowledgement back, and the
    receiver stores and registers nothing more."""
    original = await _delivered(harness, "D-2")
    harness.ctx("NL-DU").clock.offset += timedelta(days=1)  # type: ignore[attr-defined]
    await _sent_again(harness, original, 1)


async def test_receiver_down_for_a_while_then_delivered_once_it_is_back(
    harness: Harness,
) -> None:
    await harness.start("BE-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="R-1")
    store = harness.ctx("BE-DU").store
    for _ in range(200):
        failures = [
            e
            for e in await store.register.query(limit=1000, message_id=sent["message_id"])
            if e.event == "delivery-failed"
        ]
        if len(failures) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(failures) >= 2, "every failed attempt is recorded (1560/2003 Art. 18)"
    view = await be.message(sent["message_id"])
    assert view["state"] == "queued" and view["delivery"]["attempts"] >= 2

    await harness.start("NL-DU")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    nl = harness.api("NL-DU")
    await nl.wait_for_inbox(lambda m: m["message_id"] == sent["message_id"], within=10)
    assert await harness.ctx("NL-DU").store.messages.count() == 1


async def test_undeliverable_after_the_configured_number_of_attempts(tmp_path: Path) -> None:
    h = await make_harness(tmp_path, delivery={"max_attempts": 3})
    try:
        await h.start("BE-DU")
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="U-1")
        view = await be.wait_for_state(sent["message_id"], {"undeliverable"}, within=20)
        assert "127.0.0.1" in view["error"]
        events = [
            e.event
            for e in await h.ctx("BE-DU").store.register.query(
                limit=1000, message_id=sent["message_id"]
            )
        ]
        assert events == ["submitted", "delivery-failed", "delivery-failed", "undeliverable"]
    finally:
        await h.close()
