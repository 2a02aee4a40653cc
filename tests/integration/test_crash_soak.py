"""SIGKILL of either gateway under sustained traffic, again and again, then an audit: every
submitted message was delivered exactly once, and the two registers agree on each of them
(same digest, same receipt time, one `received` and one `delivered` entry) and each verifies
(Art. 40(9)). `make soak` runs more rounds and more messages."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from gateway.client import GatewayClient
from gateway.config import load_config
from gateway.core.register import verify_chain
from gateway.examples import attachments_for
from gateway.network import UNTHROTTLED_PEER, build_local_network
from gateway.store.store import Store
from tests.integration.conftest import FAST_DELIVERY, example, submit_until_accepted
from tests.integration.test_processes import spawn, stop
from tests.ledger import LEDGER

pytestmark = [pytest.mark.fault, pytest.mark.slow]
SOAK = os.environ.get("GATEWAY_SOAK") == "1"
MESSAGES = 120 if SOAK else 24
ROUNDS = 12 if SOAK else 4


async def submit_soak(client: GatewayClient, n: int) -> str:
    """Submit message n until the gateway answers (a kill mid-request loses nothing)."""
    form = example("take-charge-request.json")
    return await submit_until_accepted(
        lambda: client.submit(
            "take-charge-request",
            "NL-DU",
            form,
            case_number=f"SOAK-{n}",
            attachments=attachments_for(form),
            idempotency_key=f"soak-{n}",
        ),
        f"message {n}",
    )


async def test_repeated_sigkill_of_either_gateway_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    # The soak measures recovery, not the admission limits: no peer is throttled.
    net = build_local_network(
        tmp_path / "net", ["BE-DU", "NL-DU"], delivery=FAST_DELIVERY, peer=UNTHROTTLED_PEER
    )
    procs: dict[str, subprocess.Popen[bytes]] = {c: spawn(net, c) for c in ("BE-DU", "NL-DU")}
    be_gw = net.gateways["BE-DU"]
    kills = 0
    try:
        async with GatewayClient(be_gw.api_url, be_gw.tokens["case-officer"], timeout=5) as be:
            await be.wait_until_up(within=30)
            sent: list[str] = []

            async def traffic() -> None:
                for n in range(MESSAGES):
                    sent.append(await submit_soak(be, n))
                    await asyncio.sleep(0.05)

            sender = asyncio.create_task(traffic())
            for round_ in range(ROUNDS):
                await asyncio.sleep(0.6)
                victim = ("BE-DU", "NL-DU")[round_ % 2]
                os.kill(procs[victim].pid, signal.SIGKILL)
                procs[victim].wait(timeout=10)
                kills += 1
                await asyncio.sleep(0.3)
                procs[victim] = spawn(net, victim)
            await asyncio.wait_for(sender, timeout=180)
            await be.wait_until_up(within=30)
            for message_id in sent:
                await be.wait_for_state(message_id, {"delivered"}, within=60)
    finally:
        for proc in procs.values():
            stop(proc)

    assert kills == ROUNDS and len(sent) == MESSAGES == len(set(sent))
    stores = {c: await Store.open(load_config(net.gateways[c].config).database_url) for c in procs}
    try:
        be_rows = await stores["BE-DU"].register.query(limit=100_000)
        nl_rows = await stores["NL-DU"].register.query(limit=100_000)
        verify_chain(be_rows)
        verify_chain(nl_rows)
        received = [e for e in nl_rows if e.event == "received"]
        delivered = [e for e in be_rows if e.event == "delivered"]
        submitted = [e for e in be_rows if e.event == "submitted"]
        ids = [e.message_id for e in received]
        LEDGER.traffic(len(sent), len(set(sent) - set(ids)), len(ids) - len(set(ids)))
        assert sorted(ids) == sorted(sent), "each arrived exactly once"
        assert sorted(e.message_id for e in delivered) == sorted(sent), "each acknowledged once"
        assert sorted(e.message_id for e in submitted) == sorted(sent), "each submitted once"
        assert await stores["NL-DU"].messages.count() == MESSAGES
        digest_at_nl = {e.message_id: e.digest for e in received}
        for e in submitted:
            assert digest_at_nl[e.message_id] == e.digest, "both registers hold the same bytes"
        for message_id in sent:
            ours = await stores["BE-DU"].messages.get(message_id)
            theirs = await stores["NL-DU"].messages.get(message_id)
            assert ours is not None and theirs is not None
            assert ours.receipt_time == theirs.receipt_time, "one receipt time on both sides"
    finally:
        for store in stores.values():
            await store.close()
