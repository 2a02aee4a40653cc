"""What a case system needs to never lose nor double-process a message: an inbox it consumes
explicitly, and an ordered events feed (acknowledgements, receipts, deadlines and deemed
acceptance, Art. 30(8)) it resumes by cursor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.client import ApiError, GatewayClient
from tests.integration.conftest import Harness, example, send_request
from tests.integration.test_deadlines import advance, case_state

pytestmark = pytest.mark.asyncio


async def all_events(client: GatewayClient, cursor: str = "0") -> tuple[list[Any], str]:
    items: list[Any] = []
    while True:
        page = await client.events(cursor, 50)
        items += page["items"]
        if page["next_cursor"] == cursor:
            return items, cursor
        cursor = page["next_cursor"]


async def test_inbox_consumption_is_explicit_idempotent_and_by_the_owning_role(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = [await send_request(be, case_number=f"INBOX-{n}") for n in range(3)]
    for item in sent:
        await be.wait_for_state(item["message_id"], {"delivered"}, within=20)

    unconsumed = (await nl.inbox(state="unconsumed"))["items"]
    assert [m["message_id"] for m in unconsumed] == [s["message_id"] for s in sent]
    assert all(m["consumed_at"] is None and m["form"] for m in unconsumed)
    first = sent[0]["message_id"]
    done = await nl.consume(first)
    assert done["already_consumed"] is False
    again = await nl.consume(first)
    assert again == done | {"already_consumed": True}, "a repeated consume changes nothing"
    left = (await nl.inbox(state="unconsumed"))["items"]
    assert [m["message_id"] for m in left] == [s["message_id"] for s in sent[1:]]
    assert [m["message_id"] for m in (await nl.inbox(state="consumed"))["items"]] == [first]
    assert (await nl.message(first))["consumed_at"] == done["consumed_at"]
    consumed = await h.ctx("NL-DU").store.register.query(event="consumed")
    assert [e.message_id for e in consumed] == [first]

    practitioner = h.api("NL-DU", "health-practitioner")
    assert (await practitioner.inbox(state="unconsumed"))["items"] == []
    with pytest.raises(ApiError) as caught:
        await practitioner.consume(sent[1]["message_id"])
    assert caught.value.status == 403
    with pytest.raises(ApiError) as caught:
        await nl.consume("00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        await nl.consume(sent[1]["message_id"].replace("-", "/"))
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        await be.consume(sent[1]["message_id"])  # BE's own outgoing message
    assert caught.value.status == 404


async def test_events_feed_orders_acknowledgements_receipts_and_deadlines_and_resumes(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = await send_request(be, case_number="EVENTS-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    events, cursor = await all_events(be)
    mine = [
        (e["event"], e["message_id"])
        for e in events
        if e["reference"] == sent["reference"] and e["event"] in ("submitted", "delivered")
    ]
    assert mine == [("submitted", sent["message_id"]), ("delivered", sent["message_id"])]
    assert {e["details"].get("rule") for e in events if e["event"] == "deadline-opened"} >= {
        "take_charge_reply"
    }
    assert [int(e["cursor"]) for e in events] == sorted(int(e["cursor"]) for e in events)

    reply = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        example("take-charge-reply-acceptance"),
        in_reply_to=sent["message_id"],
    )
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    newer, _ = await all_events(be, cursor)
    assert ("received", reply["message_id"]) in [(e["event"], e["message_id"]) for e in newer]
    assert not {e["cursor"] for e in newer} & {e["cursor"] for e in events}, "no repeats"
    closed = [e for e in newer if e["event"] == "deadline-closed"]
    assert closed and closed[0]["details"]["rule"] == "take_charge_reply"

    only_case = (await be.events("0", 100, case=sent["reference"]))["items"]
    assert {e["reference"] for e in only_case} == {sent["reference"]}
    # The case and message views carry their events too.
    case_view = await be.case(sent["reference"])
    assert [e["cursor"] for e in case_view["events"]] == [e["cursor"] for e in only_case]
    message_events = (await be.message(sent["message_id"]))["events"]
    assert [e["event"] for e in message_events][:1] == ["submitted"]
    assert "delivered" in [e["event"] for e in message_events]


async def test_deemed_acceptance_is_an_event_for_the_case_system(harness: Harness) -> None:
    """Art. 30(8): silence of the requested State is announced on the feed."""
    h = harness
    await h.start("BE-DU", "NL-DU")
    be = h.api("BE-DU")
    sent = await send_request(be, case_number="DEEMED-EVENT")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    _, cursor = await all_events(be)
    await advance(h, 40)
    await case_state(h, "BE-DU", sent["reference"], "deemed-accepted")
    for _ in range(50):
        newer, _ = await all_events(be, cursor)
        expired = [e for e in newer if e["event"] == "deadline-expired"]
        if expired:
            break
        await asyncio.sleep(0.1)
    assert expired[0]["reason"] == "deemed-acceptance"
    assert expired[0]["reference"] == sent["reference"]


async def test_a_repeated_submission_with_its_idempotency_key_sends_nothing_new(
    harness: Harness,
) -> None:
    """A case system that lost the answer to a submission (or crashed before recording it)
    repeats it with the same Idempotency-Key and gets the original message back."""
    h = harness
    await h.start("BE-DU")
    be = h.api("BE-DU")
    form = example("take-charge-request.json")
    from gateway.examples import attachments_for

    def again(key: str, case: str = "IDEM-1") -> Any:
        return be.submit(
            "take-charge-request",
            "NL-DU",
            form,
            case_number=case,
            attachments=attachments_for(form),
            idempotency_key=key,
        )

    first = await again("file:visa-0001")
    assert first["replayed"] is False
    repeats = await asyncio.gather(*(again("file:visa-0001") for _ in range(5)))
    assert {r["message_id"] for r in repeats} == {first["message_id"]}
    assert all(r["replayed"] for r in repeats)
    with pytest.raises(ApiError) as caught:
        await again("file:visa-0001", case="IDEM-2")
    assert caught.value.status == 422
    assert caught.value.problem["rule"] == "idempotency-key-reused"
    concurrent = await asyncio.gather(*(again("file:visa-0002", "IDEM-3") for _ in range(4)))
    assert len({r["message_id"] for r in concurrent}) == 1
    submitted = await h.ctx("BE-DU").store.register.query(event="submitted")
    assert len(submitted) == 2, "one message per key, however often it was sent"


async def test_received_attachments_and_the_signed_transmission_can_be_fetched(
    harness: Harness,
) -> None:
    """A case system gets the scanned evidence exactly as it travelled (Art. 29: the request
    with its evidence), and the signed bytes themselves for its archive."""
    import base64

    from gateway.examples import attachments_for

    h = harness
    await h.start("BE-DU", "NL-DU")
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = await send_request(be, case_number="FILES-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    expected = attachments_for(example("take-charge-request.json"))[0]
    data = await nl.attachment(sent["message_id"], expected["fileName"])
    assert data == base64.b64decode(expected["content"])
    signed = await nl.transmission(sent["message_id"])
    assert signed == (await h.ctx("NL-DU").store.messages.get(sent["message_id"])).signed_xml
    with pytest.raises(ApiError) as caught:
        await nl.attachment(sent["message_id"], "other.pdf")
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        await h.api("NL-DU", "health-practitioner").transmission(sent["message_id"])
    assert caught.value.status == 403
