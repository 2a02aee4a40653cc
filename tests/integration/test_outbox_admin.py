"""Queue administration with real gateways: an administrator lists what waits for a peer that
is down, cancels and retries a message, and is refused while a delivery worker (here, another
node's claim on the shared store) holds it; each action is a register entry naming who acted,
and the case system sees it in its events feed. The CLI does the same on the store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.client import ApiError
from gateway.config import load_config
from gateway.store.store import Store

from .conftest import Harness, make_harness, send_request


async def _register_events(h: Harness, code: str, message_id: str) -> list[tuple[str, str]]:
    entries = await h.ctx(code).store.register.query(message_id=message_id, limit=1000)
    return [(e.event, str(e.principal)) for e in entries]


async def test_an_administrator_cancels_and_retries_a_message_for_a_peer_that_is_down(
    harness: Harness,
) -> None:
    await harness.start("BE-DU")  # NL-DU is down: the request waits in the queue
    be, admin = harness.api("BE-DU"), harness.api("BE-DU", "administrator")
    sent = await send_request(be, case_number="QUEUE-1")
    message_id = sent["message_id"]
    for _ in range(200):
        (item,) = (await admin.outbox("queued"))["items"]
        if item["attempts"]:
            break
        await asyncio.sleep(0.05)
    assert (item["message_id"], item["peer"], item["type"]) == (
        message_id,
        "NL-DU",
        "take-charge-request",
    )
    assert item["attempts"] >= 1 and item["last_error"]

    with pytest.raises(ApiError) as forbidden:
        await be.cancel_delivery(message_id)
    assert forbidden.value.status == 403

    # the delivery worker may hold the message this very moment: then 409, and again
    for _ in range(200):
        try:
            cancelled = await admin.cancel_delivery(message_id)
            break
        except ApiError as exc:
            assert exc.status == 409 and "being delivered" in exc.problem["detail"]
            await asyncio.sleep(0.02)
    assert cancelled == {
        "message_id": message_id,
        "state": "undeliverable",
        "previous_state": "queued",
    }
    assert (await admin.outbox("queued"))["items"] == []
    (given_up,) = (await admin.outbox("undeliverable"))["items"]
    assert given_up["last_error"] == "cancelled by an administrator"
    with pytest.raises(ApiError) as again:
        await admin.cancel_delivery(message_id)
    assert again.value.status == 409

    await harness.start("NL-DU")
    retried = await admin.retry_delivery(message_id)
    assert (retried["state"], retried["previous_state"]) == ("queued", "undeliverable")
    await be.wait_for_state(message_id, {"delivered"}, within=20)
    events = await _register_events(harness, "BE-DU", message_id)
    assert ("cancelled", "administrator") in events and ("requeued", "administrator") in events
    feed = [e["event"] for e in (await be.events("0", 1000))["items"]]
    assert "cancelled" in feed and "requeued" in feed
    with pytest.raises(ApiError) as delivered:
        await admin.retry_delivery(message_id)
    assert delivered.value.status == 409 and "delivered" in delivered.value.problem["detail"]
    with pytest.raises(ApiError) as unknown:
        await admin.retry_delivery("00000000-0000-4000-8000-000000000000")
    assert unknown.value.status == 404


async def test_a_message_another_node_is_delivering_is_not_cancelled(tmp_path: Path) -> None:
    """Another node's claim (its lease in the shared outbox) holds the message: the
    administrator gets 409, on this node as on any. This node retries only after an hour,
    so once its first attempt failed the message is idle here, and the other node's claim
    (made as that node's worker makes it) is the only one."""
    harness = await make_harness(
        tmp_path, delivery={"initial_delay_seconds": 3600, "max_delay_seconds": 3600}
    )
    try:
        await _claimed_elsewhere(harness)
    finally:
        await harness.close()


async def _claimed_elsewhere(harness: Harness) -> None:
    await harness.start("BE-DU")
    be, admin = harness.api("BE-DU"), harness.api("BE-DU", "administrator")
    sent = await send_request(be, case_number="QUEUE-2")
    for _ in range(400):
        items = (await admin.outbox("queued"))["items"]
        if items and items[0]["attempts"] and not items[0]["being_delivered"]:
            break
        await asyncio.sleep(0.05)
    ctx = harness.ctx("BE-DU")
    async with ctx.store.transaction() as tx:  # the other node's clock has reached the retry
        claimed = await tx.outbox.claim(ctx.clock() + timedelta(hours=2), 10, timedelta(minutes=10))
    assert [c.message_id for c in claimed] == [sent["message_id"]]
    with pytest.raises(ApiError) as busy:
        await admin.cancel_delivery(sent["message_id"])
    assert busy.value.status == 409 and "being delivered right now" in busy.value.problem["detail"]
    with pytest.raises(ApiError) as busy_retry:
        await admin.retry_delivery(sent["message_id"])
    assert busy_retry.value.status == 409
    listed = (await admin.outbox("queued"))["items"]
    assert [i["being_delivered"] for i in listed] == [True]
    with pytest.raises(ApiError) as bad:
        await admin.outbox("lost")
    assert bad.value.status == 400 and bad.value.problem["field"] == "state"


async def test_the_cli_lists_retries_and_cancels_on_the_store(tmp_path: Path) -> None:
    """A message given up on (2 attempts, the peer down), handled with the gateway stopped,
    as an operator finds it: listed, queued again, cancelled; a wrong action is a one-line
    error, never a traceback; the register names the operating-system user."""
    h = await make_harness(tmp_path, delivery={"max_attempts": 2})
    try:
        await h.start("BE-DU")
        sent = await send_request(h.api("BE-DU"), case_number="QUEUE-3")
        await h.api("BE-DU").wait_for_state(sent["message_id"], {"undeliverable"}, within=20)
        await h.stop("BE-DU")
    finally:
        await h.close()
    config = h.net.gateways["BE-DU"].config
    message_id = sent["message_id"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "outbox", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = cli("list", "--state", "undeliverable", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["message_id"] for i in json.loads(listed.stdout)] == [message_id]
    retried = cli("retry", message_id)
    assert retried.returncode == 0, retried.stderr
    assert f"{message_id}: undeliverable -> queued" in retried.stdout
    assert message_id in cli("list").stdout
    done = cli("cancel", message_id)
    assert done.returncode == 0, done.stderr
    assert f"{message_id}: queued -> undeliverable" in done.stdout
    twice = cli("cancel", message_id)
    assert twice.returncode == 2 and "only a queued one" in twice.stderr
    assert "Traceback" not in twice.stderr
    store = await Store.open(load_config(config).database_url)
    try:
        entries = await store.register.query(message_id=message_id, limit=100)
    finally:
        await store.close()
    actors = {e.event: e.details.get("actor") for e in entries}
    assert str(actors["requeued"]).startswith("cli:") and str(actors["cancelled"]).startswith(
        "cli:"
    )
