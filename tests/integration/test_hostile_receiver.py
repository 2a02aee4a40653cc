"""A hostile receiver: a process on loopback holding NL-DU's real TLS and signing keys answers a
real sending gateway with validly signed acknowledgements that state what it cannot know.

The receipt time an acknowledgement states is the start of the legal time limits on both
sides (COM(2020) 610 Art. 30(1) and 65; 2025/2055 Art. 1(3): the proof of delivery proves the
date and time of receipt). A receiver that could sign any receipt time would move its own
reply limit years ahead, or make the sender record deemed acceptance (Art. 30(8)) at once.
The sender refuses such an acknowledgement (issue 14, item 1): the message stays undelivered,
no limit opens, an `acknowledgement-refused` register entry and a metric tell the
administrator, and the honest answer that comes later (retry or reconciliation) is recorded
with the honest receipt time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.core.register import verify_chain
from tests.hostile_receiver import LIES, Answer, HostileReceiver
from tests.integration.conftest import Harness, make_harness, send_request

pytestmark = pytest.mark.attack

REASONS: dict[Answer, str] = {
    "five-years-ahead": "receipt-time-in-future",
    "a-year-ago": "receipt-time-before-creation",
    "before-creation": "receipt-time-before-creation",
    "other-receiver": "wrong-receiver",
    "unknown-reason": "unknown-reason-code",
}


async def hostile_network(tmp_path: Path, **delivery: Any) -> tuple[Harness, HostileReceiver]:
    """BE-DU running; NL-DU's address taken by the hostile receiver with NL-DU's keys."""
    h = await make_harness(tmp_path, delivery=delivery)
    hostile = HostileReceiver(h.net.pki, "NL-DU", h.net.gateways["NL-DU"].peer_port)
    await hostile.start()
    await h.start("BE-DU")
    return h, hostile


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[Harness, HostileReceiver]]:
    h, hostile = await hostile_network(tmp_path)
    try:
        yield h, hostile
    finally:
        await h.close()
        await hostile.close()


async def refusals(h: Harness, message_id: str) -> list[Any]:
    return list(
        await h.ctx("BE-DU").store.register.query(
            event="acknowledgement-refused", message_id=message_id
        )
    )


async def wait_for_refusals(
    h: Harness, message_id: str, count: int, within: float = 20
) -> list[Any]:
    end = time.monotonic() + within
    while len(found := await refusals(h, message_id)) < count:
        assert time.monotonic() < end, f"{len(found)} acknowledgement-refused entries, not {count}"
        await asyncio.sleep(0.05)
    return found


async def wait_for_count(h: Harness, reason: str, count: int, within: float = 10) -> None:
    end = time.monotonic() + within
    while refused_count(h, reason) < count:
        assert time.monotonic() < end, f"{refused_count(h, reason)} refusals counted, not {count}"
        await asyncio.sleep(0.05)


def refused_count(h: Harness, reason: str) -> float:
    value = h.ctx("BE-DU").metrics.registry.get_sample_value(
        "gateway_acknowledgements_refused_total", {"peer": "NL-DU", "reason": reason}
    )
    return value or 0.0


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def assert_untouched(h: Harness, message_id: str, reference: str) -> None:
    """Nothing the refused acknowledgement said was recorded: no receipt time, no
    acknowledgement, no reply limit (Art. 30(1)), no expiry or deemed acceptance (30(8))."""
    be = h.api("BE-DU")
    view = await be.message(message_id)
    assert view["state"] == "queued"
    assert view["acknowledgement"] is None
    assert [d["rule"] for d in view["deadlines"]] == ["take_charge_request"]
    case = await be.case(reference)
    assert case["state"] == "requested"
    store = h.ctx("BE-DU").store
    assert not await store.register.query(event="delivered", message_id=message_id)
    assert not await store.register.query(event="deadline-opened", reference=reference)
    assert not await store.register.query(event="deadline-expired", reference=reference)


@pytest.mark.parametrize("lie", LIES)
async def test_art30_an_acknowledgement_stating_what_its_signer_cannot_know_is_refused_until_honest(
    network: tuple[Harness, HostileReceiver], lie: Answer
) -> None:
    """Issue 14, item 1: a receipt time 5 years ahead, a year ago, or before the creation
    minus the tolerated skew (Art. 30(1), 30(8), 65: the limits run from it), another
    receiver, an unknown reason code: refused, retried, and the honest answer recorded."""
    h, hostile = network
    hostile.answer = lie
    be = h.api("BE-DU")
    sent = await send_request(be, case_number=f"LIE-{lie}")
    message_id = sent["message_id"]
    entries = await wait_for_refusals(h, message_id, 2)  # refused, retried, refused again
    assert {e.reason for e in entries} == {REASONS[lie]}
    assert {e.peer for e in entries} == {"NL-DU"} and {e.direction for e in entries} == {"out"}
    assert all(e.details["text"] for e in entries)
    # The counter moves once the refusal's register entry is committed: wait for it.
    await wait_for_count(h, REASONS[lie], 2)
    await assert_untouched(h, message_id, sent["reference"])

    hostile.answer = "honest"
    view = await be.wait_for_state(message_id, {"delivered"}, within=20)
    honest = hostile.received[message_id].receipt
    assert utc(view["acknowledgement"]["receipt_time"]) == honest
    limits = {d["rule"]: d for d in view["deadlines"]}
    assert utc(limits["take_charge_reply"]["started_at"]) == honest
    assert (await be.case(sent["reference"]))["state"] == "requested"
    verify_chain(await h.ctx("BE-DU").store.register.query(limit=10_000))


async def test_art30_reconciliation_refuses_a_lying_proof_of_receipt_and_records_the_honest_one(
    tmp_path: Path,
) -> None:
    """Issue 14, item 1, reconciliation path: a sender that gave up asks for its proof of
    receipt later; a proof with a receipt time the receiver cannot know (Art. 30(1), 65) is
    refused with a register entry and the message stays undeliverable, until the honest
    proof is recorded with its receipt time."""
    h, hostile = await hostile_network(tmp_path, max_attempts=2, reconcile_interval_seconds=3600)
    try:
        hostile.answer = "five-years-ahead"
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="LIE-RECONCILE")
        message_id = sent["message_id"]
        await be.wait_for_state(message_id, {"undeliverable"}, within=20)
        deliverer = h.running["BE-DU"].deliverer
        for lie in ("a-year-ago", "other-receiver"):
            hostile.answer = lie
            assert await deliverer.reconcile() == 0
            entry = (await refusals(h, message_id))[-1]
            assert entry.reason == REASONS[lie] and entry.details["reconciliation"] is True
            view = await be.message(message_id)
            assert view["state"] == "undeliverable" and view["acknowledgement"] is None
            assert [d["rule"] for d in view["deadlines"]] == ["take_charge_request"]
        assert refused_count(h, "receipt-time-before-creation") == 1
        assert not await h.ctx("BE-DU").store.register.query(
            event="deadline-opened", reference=sent["reference"]
        )

        hostile.answer = "honest"
        assert await deliverer.reconcile() == 1
        view = await be.wait_for_state(message_id, {"delivered"}, within=5)
        honest = hostile.received[message_id].receipt
        assert utc(view["acknowledgement"]["receipt_time"]) == honest
        limits = {d["rule"]: d for d in view["deadlines"]}
        assert utc(limits["take_charge_reply"]["started_at"]) == honest
        verify_chain(await h.ctx("BE-DU").store.register.query(limit=10_000))
    finally:
        await h.close()
        await hostile.close()
