"""The webhook adapter against real gateways (BE-DU sends, NL-DU receives) and a case system
played by a small aiohttp server on loopback that verifies every signature: delivery of
messages and events in order per case, retries with backoff, dead letters and their requeue,
and a SIGKILLed adapter process that loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.webhook.__main__ import main as adapter_main
from adapters.webhook.adapter import AdapterConfig, WebhookAdapter, backoff
from adapters.webhook.signing import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signed_headers,
    verify,
)
from adapters.webhook.store import DB_NAME, Queue
from gateway.client import GatewayClient
from gateway.network import free_ports
from tests.integration.conftest import Harness, example, make_harness, send_request

REPO = Path(__file__).resolve().parents[2]
SECRET = b"webhook-test-secret-0123456789"


@dataclass
class Delivery:
    delivery_id: str
    body: bytes
    status: int

    @property
    def data(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class CaseSystem:
    """The receiving end: verifies the HMAC (401 otherwise), fails on demand, records."""

    secret: bytes = SECRET
    fail_first: int = 0
    poisoned: Callable[[dict[str, Any]], bool] = lambda _: False
    delay: float = 0.0
    calls: list[Delivery] = field(default_factory=list)
    unauthorised: int = 0
    runner: web.AppRunner | None = None
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, request.headers, body):
            self.unauthorised += 1
            return web.Response(status=401, text="bad signature")
        delivery_id = request.headers[DELIVERY_ID_HEADER]
        data = json.loads(body)
        assert data["delivery_id"] == delivery_id
        if self.delay:
            await asyncio.sleep(self.delay)
        status = 200
        if self.fail_first > 0:
            self.fail_first -= 1
            status = 500
        elif self.poisoned(data):
            status = 500
        self.calls.append(Delivery(delivery_id, body, status))
        return web.Response(status=status)

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        bound = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}/hook"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- what arrived ------------------------------------------------------------------------

    def accepted(self) -> list[Delivery]:
        return [c for c in self.calls if c.status == 200]

    def first_accepted(self) -> list[Delivery]:
        """Deduplicated by delivery id, in the order they were first accepted."""
        seen: set[str] = set()
        out = []
        for call in self.accepted():
            if call.delivery_id not in seen:
                seen.add(call.delivery_id)
                out.append(call)
        return out

    def accepted_ids(self) -> set[str]:
        return {c.delivery_id for c in self.accepted()}

    def message_ids(self) -> set[str]:
        return {
            c.data["message"]["message_id"] for c in self.accepted() if c.data["kind"] == "message"
        }


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], within: float, what: str
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def feed(client: GatewayClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        page = await client.events(cursor, 500)
        items += page["items"]
        if page["next_cursor"] == cursor or not page["items"]:
            return items
        cursor = page["next_cursor"]


async def unconsumed(client: GatewayClient) -> list[dict[str, Any]]:
    return list((await client.inbox(state="unconsumed", limit=500))["items"])


def dead_letters(state: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """`dead-letters --json`, picked out of stdout (the in-process adapter logs there too)."""
    assert adapter_main(["dead-letters", "--state", str(state), "--json"]) == 0
    out = capsys.readouterr().out
    return list(json.loads(out[out.index('{\n  "dead_letters"') :])["dead_letters"])


def config_for(h: Harness, target: str, state: Path, **overrides: Any) -> AdapterConfig:
    gw = h.net.gateways["NL-DU"]
    settings: dict[str, Any] = {
        "api_url": gw.api_url,
        "token": gw.tokens["case-officer"],
        "target": target,
        "secret": SECRET,
        "state_dir": state,
        "poll_seconds": 0.1,
        "max_attempts": 20,
        "initial_delay": 0.05,
        "max_delay": 0.3,
        "request_timeout": 5.0,
    }
    return AdapterConfig(**(settings | overrides))


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await make_harness(tmp_path)
    await h.start("BE-DU", "NL-DU")
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def case_system() -> AsyncIterator[CaseSystem]:
    receiver = CaseSystem()
    try:
        yield receiver
    finally:
        await receiver.stop()


class RunningAdapter:
    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(WebhookAdapter(config).run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)

    def items(self) -> dict[str, Any]:
        queue = Queue.open(self.config.state_dir, create=False)
        try:
            return {item.delivery_id: item for item in queue.items()}
        finally:
            queue.close()


# -- signing -------------------------------------------------------------------------------


def test_signature_verifies_and_anything_altered_does_not() -> None:
    body = b'{"delivery_id":"message:x","kind":"message"}'
    now = 1_800_000_000
    headers = signed_headers(SECRET, "message:x", body, now=now)
    assert headers[TIMESTAMP_HEADER] == str(now)
    assert headers[SIGNATURE_HEADER] == signature(SECRET, str(now), body)
    assert headers[SIGNATURE_HEADER].startswith("sha256=")
    assert len(headers[SIGNATURE_HEADER]) == len("sha256=") + 64
    assert verify(SECRET, headers, body, now=now + 10)

    assert not verify(b"another secret", headers, body, now=now), "wrong secret"
    assert not verify(SECRET, headers, body + b" ", now=now), "body altered"
    assert not verify(SECRET, headers | {TIMESTAMP_HEADER: str(now + 1)}, body, now=now)
    assert not verify(SECRET, headers, body, now=now + 301), "older than five minutes"
    assert not verify(SECRET, headers, body, now=now - 301), "from the future"
    assert not verify(SECRET, {TIMESTAMP_HEADER: str(now)}, body, now=now), "no signature"
    assert not verify(SECRET, headers | {TIMESTAMP_HEADER: "١٢٣"}, body, now=now)
    assert not verify(SECRET, headers | {SIGNATURE_HEADER: "sha256=" + "0" * 64}, body, now=now)
    sig = headers[SIGNATURE_HEADER]
    assert not verify(SECRET, headers | {SIGNATURE_HEADER: sig.upper()}, body, now=now)


async def test_a_verifying_receiver_rejects_a_wrong_signature(case_system: CaseSystem) -> None:
    url = await case_system.start()
    body = b'{"delivery_id":"event:7","kind":"event","case":null,"event":{}}'
    async with aiohttp.ClientSession() as session:
        forged = signed_headers(b"not the shared secret", "event:7", body)
        async with session.post(url, data=body, headers=forged) as resp:
            assert resp.status == 401
        replayed = signed_headers(SECRET, "event:7", body, now=time.time() - 600)
        async with session.post(url, data=body, headers=replayed) as resp:
            assert resp.status == 401
        good = signed_headers(SECRET, "event:7", body)
        async with session.post(url, data=body + b"\n", headers=good) as resp:
            assert resp.status == 401, "the signature covers the exact body"
        async with session.post(url, data=body, headers=good) as resp:
            assert resp.status == 200
    assert case_system.unauthorised == 3
    assert [c.delivery_id for c in case_system.accepted()] == ["event:7"]


def test_backoff_is_the_delivery_workers_equal_jitter_capped() -> None:
    """The adapter retries with the gateway's RetryPolicy: between half and all of the step,
    never above the cap, and a thousandth attempt does not overflow (issue 15, item 5)."""
    samples = [backoff(n, 1.0, 300.0) for n in range(1, 40) for _ in range(20)]
    assert all(0.5 <= s <= 300.0 for s in samples)
    assert all(0.5 <= backoff(1, 1.0, 300.0) <= 1.0 for _ in range(100))
    assert all(150.0 <= backoff(30, 1.0, 300.0) <= 300.0 for _ in range(200)), "up to the cap"
    assert 150.0 <= backoff(5000, 1.0, 300.0) <= 300.0


# -- delivery ------------------------------------------------------------------------------


async def test_messages_and_events_reach_the_case_system_signed_and_in_order_per_case(
    gateways: Harness, case_system: CaseSystem, tmp_path: Path
) -> None:
    h = gateways
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    target = await case_system.start()
    adapter = RunningAdapter(config_for(h, target, tmp_path / "state"))
    try:
        sent = [await send_request(be, case_number=f"WH-ORDER-{n}") for n in range(4)]
        sent_ids = {s["message_id"] for s in sent}
        await wait_for(lambda: case_system.message_ids() >= sent_ids, 30, "every message")
        # NL-DU answers two of them: its acknowledgements and closed deadlines are events.
        for request in sent[:2]:
            reply = await nl.submit(
                "take-charge-reply",
                "BE-DU",
                example("take-charge-reply-acceptance"),
                in_reply_to=request["message_id"],
            )
            await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
        await wait_for(lambda: unconsumed_is_empty(nl), 20, "the adapter consumed every message")
        events = await feed(nl)
        wanted = {"event:" + e["cursor"] for e in events}
        await wait_for(lambda: case_system.accepted_ids() >= wanted, 30, "every event")
        await wait_for(lambda: all_delivered(adapter.config.state_dir), 20, "the queue drained")
    finally:
        await adapter.close()

    assert case_system.unauthorised == 0
    messages = [c.data for c in case_system.first_accepted() if c.data["kind"] == "message"]
    assert {m["message"]["message_id"] for m in messages} == sent_ids
    for m in messages:
        assert m["delivery_id"] == "message:" + m["message"]["message_id"]
        assert m["case"] == m["message"]["reference"]
        assert m["message"]["type"] == "take-charge-request"
        assert m["message"]["sender"] == "BE-DU"
        assert m["message"]["form"], "the case officer's webhook carries the form"
    delivered_events = [c.data for c in case_system.first_accepted() if c.data["kind"] == "event"]
    kinds = {e["event"]["event"] for e in delivered_events}
    assert {"received", "consumed", "deadline-opened", "submitted", "delivered"} <= kinds
    assert "deadline-closed" in kinds, "a reply closes NL-DU's deadline"
    for e in delivered_events:
        assert e["delivery_id"] == "event:" + e["event"]["cursor"]
        assert e["case"] == e["event"]["reference"]

    # In order per case: each case's events arrived in the feed's (register) order.
    by_case: dict[str, list[int]] = {}
    for e in delivered_events:
        by_case.setdefault(e["case"], []).append(int(e["event"]["cursor"]))
    assert {s["reference"] for s in sent} <= set(by_case)
    for case, cursors in by_case.items():
        in_feed = [int(x["cursor"]) for x in events if x["reference"] == case]
        assert cursors[: len(in_feed)] == in_feed, case
    # ...and the message and everything of its case in the order they were taken in.
    items = RunningAdapter(adapter.config).items()
    for case in {s["reference"] for s in sent}:
        order = [c.delivery_id for c in case_system.first_accepted() if c.data["case"] == case]
        intake = sorted((i for i in items.values() if i.case_reference == case), key=lambda i: i.id)
        assert order == [i.delivery_id for i in intake]
    assert all(i.state == "delivered" and i.attempts == 1 for i in items.values())


async def unconsumed_is_empty(client: GatewayClient) -> bool:
    return not await unconsumed(client)


async def test_a_failing_or_absent_target_is_retried_with_backoff_until_it_answers(
    gateways: Harness, case_system: CaseSystem, tmp_path: Path
) -> None:
    h = gateways
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    (port,) = free_ports(1)
    target = f"http://127.0.0.1:{port}/hook"  # nobody listens yet
    adapter = RunningAdapter(config_for(h, target, tmp_path / "state", max_attempts=10_000))
    try:
        sent = await send_request(be, case_number="WH-RETRY-1")
        delivery_id = "message:" + sent["message_id"]
        await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
        await wait_for(lambda: unconsumed_is_empty(nl), 20, "taken in while the target is down")
        assert delivery_id in adapter.items()

        def head() -> Any:
            """The case's oldest item: the only one tried (the message or its receipt)."""
            return min(adapter.items().values(), key=lambda i: i.id)

        await wait_for(lambda: head().attempts >= 3, 20, "connection errors are retried")
        first = head()
        assert first.state == "pending" and first.last_status is None
        assert first.last_error and "Connect" in first.last_error
        assert all(i.attempts == 0 for i in adapter.items().values() if i.id != first.id)

        case_system.fail_first = 3  # then it is up, but fails three times
        await case_system.start(port)
        await wait_for(lambda: delivery_id in case_system.accepted_ids(), 20, "delivered")
        await wait_for(
            lambda: all(i.state == "delivered" for i in adapter.items().values()), 20, "drained"
        )
    finally:
        await adapter.close()

    assert adapter.items()[first.delivery_id].attempts >= 3 + 3 + 1, "down, 500 x 3, 200"
    same = [c for c in case_system.calls if c.delivery_id == first.delivery_id]
    assert [c.status for c in same] == [500, 500, 500, 200]
    assert len({c.body for c in same}) == 1, "every retry sends the identical body"


async def test_a_dead_letter_blocks_its_case_only_until_an_administrator_requeues_it(
    gateways: Harness,
    case_system: CaseSystem,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = gateways
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    case_system.poisoned = lambda data: "WH-POISON" in (data["case"] or "")
    target = await case_system.start()
    state = tmp_path / "state"
    adapter = RunningAdapter(config_for(h, target, state, max_attempts=3, max_delay=0.1))
    try:
        bad = await send_request(be, case_number="WH-POISON-1")
        good = await send_request(be, case_number="WH-FINE-1")
        await wait_for(
            lambda: "message:" + good["message_id"] in case_system.accepted_ids(), 20, "good"
        )

        def dead() -> list[Any]:
            return dead_letters(state, capsys)

        await wait_for(lambda: len(dead()) == 1, 20, "one dead letter")
        await wait_for(lambda: unconsumed_is_empty(nl), 20, "both messages taken in")
        # The case's later items (its message, receipt, deadline, consumption) wait behind it.
        await wait_for(
            lambda: dead()[0]["blocked_behind"] >= 2, 10, "the rest of the case queued behind"
        )
        (letter,) = dead()
        assert letter["case"] == bad["reference"]
        assert letter["attempts"] == 3 and letter["last_status"] == 500
        assert letter["last_error"] == "HTTP 500"
        assert "payload" not in letter, "the administrator's view shows no personal data"
        attempts_before = len(case_system.calls)
        await asyncio.sleep(0.6)  # six polls: nothing more is tried for the dead case
        assert not [
            c for c in case_system.calls[attempts_before:] if "POISON" in (c.data["case"] or "")
        ]
        assert not [c for c in case_system.accepted() if c.data["case"] == bad["reference"]]
        # ...while other cases carry on: NL-DU's answer to the good one is delivered.
        reply = await nl.submit(
            "take-charge-reply",
            "BE-DU",
            example("take-charge-reply-acceptance"),
            in_reply_to=good["message_id"],
        )
        await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
        await wait_for(
            lambda: any(
                c.data["kind"] == "event"
                and c.data["event"]["event"] == "deadline-closed"
                and c.data["case"] == good["reference"]
                for c in case_system.accepted()
            ),
            20,
            "the other case's later events",
        )
        text_rc = adapter_main(["dead-letters", "--state", str(state)])
        listing = capsys.readouterr().out
        assert text_rc == 0 and letter["delivery_id"] in listing and "1 dead letter" in listing

        # The administrator fixes the receiver and requeues: the case resumes, in order.
        case_system.poisoned = lambda _: False
        assert adapter_main(["requeue", "--state", str(state), "no-such-id"]) == 1
        capsys.readouterr()
        assert adapter_main(["requeue", "--state", str(state), str(letter["id"])]) == 0
        assert f"requeued {letter['delivery_id']}" in capsys.readouterr().out
        await wait_for(
            lambda: "message:" + bad["message_id"] in case_system.accepted_ids(), 20, "requeued"
        )
        await wait_for(
            lambda: all(i.state == "delivered" for i in adapter.items().values()), 20, "drained"
        )
        assert dead() == []
    finally:
        await adapter.close()

    delivered = [
        c.delivery_id for c in case_system.first_accepted() if c.data["case"] == bad["reference"]
    ]
    assert delivered[0] == letter["delivery_id"], "the dead letter first, then its case"
    intake = sorted(
        (i for i in adapter.items().values() if i.case_reference == bad["reference"]),
        key=lambda i: i.id,
    )
    assert delivered == [i.delivery_id for i in intake]


async def test_requeue_all_and_a_wrong_secret_ends_as_dead_letters(
    gateways: Harness,
    case_system: CaseSystem,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A receiver that cannot verify (the adapter has the wrong secret) answers 401: every
    case's head becomes a dead letter; once the secret is fixed, `requeue --all` delivers."""
    h = gateways
    be = h.api("BE-DU")
    target = await case_system.start()
    state = tmp_path / "state"
    wrong = RunningAdapter(
        config_for(h, target, state, secret=b"stale secret", max_attempts=2, max_delay=0.1)
    )
    try:
        sent = [await send_request(be, case_number=f"WH-SECRET-{n}") for n in range(2)]
        cases = {s["reference"] for s in sent}

        def dead_cases() -> set[str]:
            return {d["case"] for d in dead_letters(state, capsys)}

        await wait_for(lambda: dead_cases() >= cases, 20, "a dead letter per case")
    finally:
        await wrong.close()
    assert case_system.accepted() == [] and case_system.unauthorised >= 4

    right = RunningAdapter(config_for(h, target, state))
    try:
        assert adapter_main(["requeue", "--state", str(state)]) == 2, "IDs or --all"
        assert adapter_main(["requeue", "--state", str(state), "--all"]) == 0
        capsys.readouterr()
        ids = {"message:" + s["message_id"] for s in sent}
        await wait_for(lambda: case_system.accepted_ids() >= ids, 20, "delivered after requeue")
        await wait_for(
            lambda: all(i.state == "delivered" for i in right.items().values()), 20, "drained"
        )
    finally:
        await right.close()


# -- crash safety --------------------------------------------------------------------------


def all_delivered(state: Path) -> bool:
    queue = Queue.open(state, create=False)
    try:
        return all(i.state == "delivered" for i in queue.items())
    finally:
        queue.close()


def spawn_adapter(h: Harness, target: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    gw = h.net.gateways["NL-DU"]
    token, secret = state.parent / "token", state.parent / "secret"
    token.write_text(gw.tokens["case-officer"] + "\n")
    secret.write_bytes(SECRET + b"\n")
    os.chmod(token, 0o600)
    os.chmod(secret, 0o600)
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adapters.webhook",
                "--log-json",
                "run",
                "--api-url",
                gw.api_url,
                "--token-file",
                str(token),
                "--target",
                target,
                "--secret-file",
                str(secret),
                "--state",
                str(state),
                "--poll-seconds",
                "0.1",
                "--initial-delay",
                "0.05",
                "--max-delay",
                "0.3",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_a_killed_adapter_loses_nothing_and_duplicates_nothing_after_restart(
    gateways: Harness, case_system: CaseSystem, tmp_path: Path
) -> None:
    h = gateways
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    case_system.delay = 0.03  # deliveries take a while: the kills land among them
    target = await case_system.start()
    state, log = tmp_path / "adapter-state", tmp_path / "adapter.log"
    proc = spawn_adapter(h, target, state, log)
    try:
        sent = []
        for n in range(12):
            sent.append(await send_request(be, case_number=f"WH-KILL-{n % 4}-{n}"))
        sent_ids = {s["message_id"] for s in sent}
        for round_ in range(3):
            seen = len(case_system.calls)
            await wait_for(
                lambda seen=seen: len(case_system.calls) >= seen + 4, 30, "deliveries under way"
            )
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            await asyncio.sleep(0.1 * round_)
            proc = spawn_adapter(h, target, state, log)
        await wait_for(lambda: case_system.message_ids() >= sent_ids, 60, "every message")
        await wait_for(lambda: unconsumed_is_empty(nl), 20, "NL-DU's inbox consumed")
        events = await feed(nl)
        wanted = {"event:" + e["cursor"] for e in events}
        await wait_for(lambda: case_system.accepted_ids() >= wanted, 60, "every event")
        # A delivery accepted just before a kill is sent again by the next run: wait for
        # the queue to record everything as delivered.
        await wait_for(lambda: all_delivered(state), 30, "the queue drained")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, "SIGTERM stops it cleanly"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    assert await unconsumed(nl) == []
    assert case_system.unauthorised == 0
    # At least once: every message and every event. After deduplication by delivery id,
    # nothing twice: each redelivery carries the identical body.
    assert case_system.message_ids() == sent_ids
    bodies: dict[str, set[bytes]] = {}
    for call in case_system.calls:
        bodies.setdefault(call.delivery_id, set()).add(call.body)
    assert all(len(b) == 1 for b in bodies.values()), "redeliveries are byte-identical"
    messages = [c for c in case_system.first_accepted() if c.data["kind"] == "message"]
    assert len(messages) == len(sent_ids), "one message delivery id per message"
    queue = Queue.open(state, create=False)
    try:
        items = queue.items()
    finally:
        queue.close()
    assert len([i for i in items if i.kind == "message"]) == len(sent_ids)
    assert all(i.state == "delivered" for i in items)
    assert (state / DB_NAME).exists()
    # In order per case, even across the crashes.
    for case in {s["reference"] for s in sent}:
        order = [c.delivery_id for c in case_system.first_accepted() if c.data["case"] == case]
        intake = [
            i.delivery_id for i in sorted(items, key=lambda i: i.id) if i.case_reference == case
        ]
        assert order == intake, case
    print(f"{len(case_system.calls)} calls for {len(bodies)} deliveries")


async def test_a_liaison_officers_subscription_delivers_the_items_of_its_network_and_categories(
    gateways: Harness, case_system: CaseSystem, tmp_path: Path
) -> None:
    """Council Decision 2005/267/EC: NL-DU's liaison officers subscribe to iconet early
    warnings of one category; a route change arrives, a smugglers' activity warning does not,
    and nothing is delivered twice across a restart."""
    h = gateways
    be = h.api("BE-DU", "liaison-officer")
    target = await case_system.start()
    config = config_for(
        h,
        target,
        tmp_path / "state",
        token=h.net.gateways["NL-DU"].tokens["liaison-officer"],
        role="liaison-officer",
        networks=("iconet",),
        categories=("route-change",),
    )
    wanted = await be.distribute("early-warning", example("early-warning.json"))
    other = await be.distribute(
        "early-warning", dict(example("early-warning.json"), category="smugglers-activity")
    )
    nl = h.api("NL-DU", "liaison-officer")
    await wait_for(
        lambda: _holds(nl, wanted["item_id"], other["item_id"]), 20, "both items at NL-DU"
    )
    adapter = RunningAdapter(config)
    try:
        await wait_for(
            lambda: "item:" + wanted["item_id"] in case_system.accepted_ids(), 20, "the item"
        )
    finally:
        await adapter.close()
    adapter = RunningAdapter(config)  # a restart delivers nothing again
    try:
        await asyncio.sleep(0.5)
    finally:
        await adapter.close()
    delivered = [c.data for c in case_system.accepted()]
    assert [d["delivery_id"] for d in delivered] == ["item:" + wanted["item_id"]]
    assert delivered[0]["kind"] == "item" and delivered[0]["case"] == wanted["reference"]
    assert delivered[0]["item"]["category"] == "route-change"
    assert delivered[0]["item"]["handling"]["no_forwarding_without_permission"] is True


async def _holds(client: GatewayClient, *item_ids: str) -> bool:
    page = await client.operational()
    return {i["item_id"] for i in page["items"]} >= set(item_ids)
