"""Scale-out: one authority run as two `gateway serve` processes (nodes) sharing one PostgreSQL
database and one address (SO_REUSEPORT on the peer and API ports). Under traffic one node is
SIGKILLed; the other carries on. Then an audit: every message was submitted, delivered and
received exactly once (the outbox claims of the two nodes never overlap, the killed node's
leased rows come back after the lease), each register is one chain that verifies (Art.
40(9)), and the deadline scheduler moved to the survivor, which applies each silence as a
deemed acceptance exactly once (Art. 30(8), 34(3))."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.client import GatewayClient
from gateway.config import load_config
from gateway.core.register import verify_chain
from gateway.examples import attachments_for
from gateway.network import UNTHROTTLED_PEER, LocalNetwork, build_local_network
from gateway.store.store import Store
from tests.integration.conftest import example, submit_until_accepted
from tests.integration.test_processes import stop
from tests.ledger import LEDGER
from tests.postgres import PostgresDatabases

pytestmark = [pytest.mark.fault, pytest.mark.slow]

MESSAGES = 80
SUBMITTERS = 4
KILL_AFTER = 25  # submissions accepted before one node is killed
DAY = 86_400
# Short timeouts: a killed node's claims come back after `lease_seconds`.
DELIVERY = {
    "initial_delay_seconds": 0.1,
    "max_delay_seconds": 0.5,
    "poll_interval_seconds": 0.1,
    "max_attempts": 400,
    "connect_timeout_seconds": 1.0,
    "request_timeout_seconds": 2.0,
    "lease_seconds": 5.0,
}
SHARED_ADDRESS = {"reuse_port": True}


@dataclass
class Node:
    """One `gateway serve` process of an authority, with its own log file."""

    code: str
    name: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "--log-json",
                    "serve",
                    "--config",
                    str(self.config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out

    def logged(self, event: str, **fields: str) -> bool:
        return any(
            e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    async def wait_logged(self, event: str, within: float = 30.0, **fields: str) -> None:
        deadline = time.monotonic() + within
        while not self.logged(event, **fields):
            assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{self.name} never logged {event!r} {fields}"
            await asyncio.sleep(0.1)


def nodes(net: LocalNetwork, code: str, count: int) -> list[Node]:
    """`count` nodes of `code`: the same configuration (database, ports), own logs."""
    gw = net.gateways[code]
    return [
        Node(code, f"{code}#{i}", gw.config, gw.config.parent / f"node{i}.log")
        for i in range(count)
    ]


def shared_network(tmp_path: Path, databases: PostgresDatabases) -> LocalNetwork:
    return build_local_network(
        tmp_path / "net",
        ["BE-DU", "NL-DU"],
        delivery=DELIVERY,
        peer=SHARED_ADDRESS | UNTHROTTLED_PEER,
        api=SHARED_ADDRESS,
        adjustable_clock=True,
        databases=databases.create,
    )


async def start_leader_then_follower(pair: list[Node]) -> None:
    """The first node takes every leadership, the second stands by: the test then knows
    which node to kill for leadership to move."""
    first, second = pair
    first.start()
    for task in ("deadlines", "retention", "reconcile"):
        await first.wait_logged("leadership acquired", task=task)
    second.start()
    await second.wait_logged("gateway started")
    await second.wait_logged("another node leads; standing by", task="deadlines")


async def submit_once(api_url: str, token: str, n: int) -> str:
    """Submit take charge request n (Art. 29), repeated with its Idempotency-Key until a node
    answers. A fresh connection each try, so that the kernel spreads the submissions over
    the nodes sharing the port; a kill mid-request neither loses nor duplicates it."""
    form = example("take-charge-request.json")

    async def on_a_new_connection() -> dict[str, Any]:
        async with GatewayClient(api_url, token, timeout=5) as client:
            return await client.submit(
                "take-charge-request",
                "NL-DU",
                form,
                case_number=f"MN-{n}",
                attachments=attachments_for(form),
                idempotency_key=f"multinode-{n}",
            )

    return await submit_until_accepted(on_a_new_connection, f"message {n}", tries=300)


async def traffic(
    api_url: str, token: str, numbers: range, victim: Node | None = None
) -> list[str]:
    """Submissions `numbers` from SUBMITTERS concurrent case systems; `victim` is SIGKILLed
    once KILL_AFTER of them were accepted, while the others keep submitting."""
    sent: list[str] = []
    enough = asyncio.Event()
    queue = list(numbers)

    async def submitter() -> None:
        while queue:
            sent.append(await submit_once(api_url, token, queue.pop(0)))
            if len(sent) >= KILL_AFTER:
                enough.set()

    workers = [asyncio.create_task(submitter()) for _ in range(SUBMITTERS)]
    try:
        if victim is not None:
            await asyncio.wait_for(enough.wait(), timeout=60)
            victim.kill()
        await asyncio.wait_for(asyncio.gather(*workers), timeout=90)
    finally:
        for worker in workers:
            worker.cancel()
    return sent


async def wait_delivered(client: GatewayClient, sent: list[str], within: float = 45.0) -> None:
    deadline = time.monotonic() + within
    for message_id in sent:
        await client.wait_for_state(
            message_id, {"delivered"}, within=max(0.1, deadline - time.monotonic())
        )


async def deemed_acceptances(
    client: GatewayClient, store_url: str, expected: int, within: float = 30.0
) -> list[str]:
    """Move the (surviving node's) clock past every reply limit; wait until its scheduler has
    applied each as a deemed acceptance; returns the cases so deemed."""
    await client.advance_clock(40 * DAY)
    store = await Store.open(store_url)
    try:
        deadline = time.monotonic() + within
        while True:
            rows = await store.register.query(
                event="deadline-expired", reason="deemed-acceptance", limit=10_000
            )
            if len(rows) >= expected or time.monotonic() > deadline:
                # Let a second application, if there were one, show up too.
                await asyncio.sleep(0.5)
                rows = await store.register.query(
                    event="deadline-expired", reason="deemed-acceptance", limit=10_000
                )
                return [str(e.reference) for e in rows]
            await asyncio.sleep(0.2)
    finally:
        await store.close()


def register_verify(config: Path) -> None:
    """`gateway register verify`: the chain, its head and signed checkpoints (Art. 40(9))."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "register", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def audit(net: LocalNetwork, sent: list[str]) -> None:
    """Each message submitted, delivered and received exactly once; same bytes and receipt
    time on both sides; NL-DU's inbox holds each once; both registers verify."""
    assert len(sent) == MESSAGES == len(set(sent)), "one message per idempotency key"
    urls = {c: load_config(net.gateways[c].config).database_url for c in ("BE-DU", "NL-DU")}
    assert all(url.startswith("postgresql+asyncpg://") for url in urls.values())
    stores = {c: await Store.open(url) for c, url in urls.items()}
    try:
        be_rows = await stores["BE-DU"].register.query(limit=100_000)
        nl_rows = await stores["NL-DU"].register.query(limit=100_000)
        verify_chain(be_rows)
        verify_chain(nl_rows)
        received = [e.message_id for e in nl_rows if e.event == "received"]
        delivered = [e.message_id for e in be_rows if e.event == "delivered"]
        submitted = [e.message_id for e in be_rows if e.event == "submitted"]
        LEDGER.traffic(
            len(sent), len(set(sent) - set(received)), len(received) - len(set(received))
        )
        assert sorted(submitted) == sorted(sent), "each submitted once"
        assert sorted(delivered) == sorted(sent), "each delivered once (one `delivered` each)"
        assert sorted(received) == sorted(sent), "each received once"
        inbox = await stores["NL-DU"].messages.inbox(0, 10_000)
        assert sorted(m.message_id for m in inbox) == sorted(sent), "inbox holds each once"
        for message_id in sent:
            ours = await stores["BE-DU"].messages.get(message_id)
            theirs = await stores["NL-DU"].messages.get(message_id)
            assert ours is not None and theirs is not None
            assert ours.state == "delivered"
            assert ours.digest == theirs.digest, "both sides hold the same bytes"
            assert ours.receipt_time == theirs.receipt_time, "one receipt time on both sides"
    finally:
        for store in stores.values():
            await store.close()
    for code in ("BE-DU", "NL-DU"):
        register_verify(net.gateways[code].config)


async def test_sending_authority_on_two_nodes_survives_sigkill_of_one(
    tmp_path: Path, postgres_databases: PostgresDatabases
) -> None:
    """BE-DU runs as two nodes on one database and one address; the node leading the
    deadline scheduler, retention and reconciliation is killed under traffic. The survivor
    delivers the rest, the killed node's claimed rows after their lease, each exactly once
    (Art. 40(9): one `submitted` and one `delivered` per message, one chain), takes over
    leadership, and its scheduler deems each unanswered request accepted once (Art. 30(8))."""
    net = shared_network(tmp_path, postgres_databases)
    be = nodes(net, "BE-DU", 2)
    nl = nodes(net, "NL-DU", 1)
    running = be + nl
    be_gw = net.gateways["BE-DU"]
    try:
        await start_leader_then_follower(be)
        nl[0].start()
        nl_gw = net.gateways["NL-DU"]
        async with GatewayClient(nl_gw.api_url, nl_gw.tokens["auditor"]) as probe:
            await probe.wait_until_up(within=30)

        token = be_gw.tokens["case-officer"]
        sent = await traffic(be_gw.api_url, token, range(MESSAGES), victim=be[0])
        survivor = be[1]
        for task in ("deadlines", "retention", "reconcile"):
            await survivor.wait_logged("leadership acquired", within=20, task=task)
        assert all(n.logged("form submitted") for n in be), "the port is shared by both nodes"

        async with GatewayClient(be_gw.api_url, be_gw.tokens["case-officer"]) as client:
            await wait_delivered(client, sent)
        async with GatewayClient(be_gw.api_url, be_gw.tokens["administrator"]) as admin:
            cases = await deemed_acceptances(
                admin, load_config(be_gw.config).database_url, MESSAGES
            )
        assert len(cases) == len(set(cases)) == MESSAGES, "each silence deemed once"
        assert survivor.logged("deadline expired", consequence="deemed-acceptance")
        assert survivor.proc.poll() is None
    finally:
        for node in running:
            if hasattr(node, "proc"):
                stop(node.proc)
    await audit(net, sent)


async def test_receiving_authority_on_two_nodes_survives_sigkill_of_one(
    tmp_path: Path, postgres_databases: PostgresDatabases
) -> None:
    """NL-DU runs as two nodes on one database and one peer address; the leading node is
    killed while BE-DU delivers to it. BE-DU's deliveries to the dead node fail and are
    retried against the survivor, which answers a transmission the dead node had already
    stored with the original acknowledgement: each message received once (Art. 40(9)), and
    NL-DU's survivor applies each reply limit's silence once (Art. 30(8))."""
    net = shared_network(tmp_path, postgres_databases)
    be = nodes(net, "BE-DU", 1)
    nl = nodes(net, "NL-DU", 2)
    running = be + nl
    be_gw, nl_gw = net.gateways["BE-DU"], net.gateways["NL-DU"]
    try:
        first, survivor = nl
        first.start()
        await first.wait_logged("leadership acquired", task="deadlines")
        be[0].start()
        token = be_gw.tokens["case-officer"]
        async with GatewayClient(be_gw.api_url, token) as client:
            await client.wait_until_up(within=30)
            # BE-DU's kept-alive connections go to the only node listening yet...
            sent = await traffic(be_gw.api_url, token, range(8))
            await wait_delivered(client, sent)
        # ...the second node joins on the same port, and the first dies under traffic.
        survivor.start()
        await survivor.wait_logged("another node leads; standing by", task="deadlines")
        sent += await traffic(be_gw.api_url, token, range(8, MESSAGES), victim=first)
        for task in ("deadlines", "retention", "reconcile"):
            await survivor.wait_logged("leadership acquired", within=20, task=task)

        async with GatewayClient(be_gw.api_url, be_gw.tokens["case-officer"]) as client:
            await wait_delivered(client, sent)
        assert all(n.logged("transmission received") for n in nl), "both nodes received"
        async with GatewayClient(nl_gw.api_url, nl_gw.tokens["administrator"]) as admin:
            cases = await deemed_acceptances(
                admin, load_config(nl_gw.config).database_url, MESSAGES
            )
        assert len(cases) == len(set(cases)) == MESSAGES, "each silence deemed once"
        assert survivor.proc.poll() is None
    finally:
        for node in running:
            if hasattr(node, "proc"):
                stop(node.proc)
    await audit(net, sent)
