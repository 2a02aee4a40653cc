"""Two nodes delivering the same outbox row (a claim whose lease ran out while its node was
still sending, so another node took it over): the peer answers the repeated message id with
its original acknowledgement, and the proof is recorded once (Art. 40(9): one `delivered`
entry per transmission, one receipt time)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.core.register import verify_chain
from gateway.store.records import OutboxItem
from tests.integration.conftest import make_harness, send_request


@pytest.mark.fault
async def test_art40_9_an_overlapping_delivery_is_recorded_once(tmp_path: Path) -> None:
    h = await make_harness(tmp_path)
    try:
        await h.start("BE-DU")
        running = h.running["BE-DU"]
        sent = await send_request(h.api("BE-DU"), case_number="OVERLAP-1")
        ctx = running.ctx
        # NL-DU is down: BE-DU's own worker fails and reschedules; then it stops, and the
        # row is claimed twice, as two nodes would when the first claim's lease ran out.
        for _ in range(200):
            state = await ctx.store.outbox.state(sent["message_id"])
            if state is not None and state["attempts"] >= 1:
                break
            await asyncio.sleep(0.05)
        running.delivery_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running.delivery_task
        await h.start("NL-DU")
        later = ctx.clock() + timedelta(hours=1)
        (first,) = await ctx.store.claim_due(later, 10, timedelta(seconds=1))
        (second,) = await ctx.store.claim_due(later + timedelta(seconds=2), 10, timedelta(0))
        assert first.message_id == second.message_id == sent["message_id"]

        await asyncio.gather(running.deliverer.deliver(first), running.deliverer.deliver(second))

        entries = await ctx.store.register.query(limit=1000, message_id=sent["message_id"])
        assert [e.event for e in entries].count("delivered") == 1
        message = await ctx.store.messages.get(sent["message_id"])
        assert message is not None and message.state == "delivered"
        received = await h.ctx("NL-DU").store.register.query(
            limit=1000, message_id=sent["message_id"]
        )
        assert [e.event for e in received].count("received") == 1
        # the copy that lost the race is a repeat, not a conversation-rule refusal
        assert not any(e.event == "rejected" for e in received)
        verify_chain(await ctx.store.register.query(limit=1000))
    finally:
        await h.close()


async def test_a_fresh_submission_goes_to_the_worker_without_a_claim(tmp_path: Path) -> None:
    """The submission's own transaction stores its outbox row leased to the running worker,
    which sends it as soon as that transaction is durable: no claim round trip through the
    database. A claim still finds what is left behind (a retry, a restart)."""
    h = await make_harness(tmp_path)
    try:
        await h.start("BE-DU", "NL-DU")
        store = h.ctx("BE-DU").store
        claimed: list[str] = []
        real = store.claim_due

        async def watched(*args: object, **kwargs: object) -> list[OutboxItem]:
            items = await real(*args, **kwargs)  # type: ignore[arg-type]
            claimed.extend(i.message_id for i in items)
            return items

        store.claim_due = watched  # type: ignore[method-assign]
        client = h.api("BE-DU")
        sent = [await send_request(client, case_number=f"HAND-{n}") for n in range(10)]
        for s in sent:
            await client.wait_for_state(s["message_id"], {"delivered"}, within=30)
        assert claimed == []
        for s in sent:
            entries = await store.register.query(limit=1000, message_id=s["message_id"])
            assert [e.event for e in entries].count("delivered") == 1
    finally:
        await h.close()
