"""Real gateways on loopback with real mutual TLS, started in the test's event loop."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import gateway.network
from gateway.app import RunningGateway, start_gateway
from gateway.client import ApiError, GatewayClient
from gateway.config import load_config
from gateway.examples import attachments_for, load_example
from gateway.network import LocalNetwork, build_local_network
from gateway.service.trust import load_signer_files
from gateway.xml.envelope import Acknowledgement, read_acknowledgement
from gateway.xml.parser import parse_untrusted
from gateway.xml.signature import Signer, verify
from tests.postgres import SKIP_REASON, PostgresDatabases, server_url, suite_database

CODES = ("BE-DU", "NL-DU", "GR-DU")
FAST_DELIVERY = {
    "initial_delay_seconds": 0.1,
    "max_delay_seconds": 0.5,
    "poll_interval_seconds": 0.1,
    "max_attempts": 200,
    "connect_timeout_seconds": 2.0,
    "request_timeout_seconds": 5.0,
}


@pytest.fixture
def postgres_databases() -> Iterator[PostgresDatabases]:
    """Fresh PostgreSQL databases for this test (skips without a server to create them on);
    all dropped when it ends."""
    server = server_url()
    if server is None:
        pytest.skip(SKIP_REASON)
    databases = PostgresDatabases(server)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(autouse=True)
def suite_databases(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """GATEWAY_TEST_DATABASE=postgres: every local network of the test stores in fresh
    PostgreSQL databases, one per gateway (else SQLite in each gateway's data folder)."""
    if suite_database() == "sqlite":
        yield
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    monkeypatch.setattr(gateway.network, "default_databases", databases.create)
    yield


def example(name: str) -> dict[str, Any]:
    """The example form, its dates moved to the gateways' today (the application registered
    a week before it), so that a test means the same on any day it runs."""
    return load_example(name, today=gateway_now().date())


async def submit_until_accepted(
    submit: Callable[[], Awaitable[dict[str, Any]]], what: str, tries: int = 600
) -> str:
    """Call `submit` (a submission with an Idempotency-Key) until the gateway answers: a
    gateway killed mid-request, or answering 503, is asked again; the key makes a repeat
    return the original, so nothing is lost or sent twice. Returns the message id."""
    for _ in range(tries):
        try:
            return str((await submit())["message_id"])
        except (TimeoutError, aiohttp.ClientError, OSError):
            await asyncio.sleep(0.1)
        except ApiError as exc:
            if exc.status != 503:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError(f"{what} was never accepted")


async def send_request(
    client: GatewayClient, receiver: str = "NL-DU", *, case_number: str, **kw: Any
) -> dict[str, Any]:
    """Submit the example take charge request (Art. 29) with its attachment."""
    form = example("take-charge-request.json")
    return await client.submit(
        "take-charge-request",
        receiver,
        form,
        case_number=case_number,
        attachments=attachments_for(form),
        **kw,
    )


def _start_shift() -> float:
    """GATEWAY_TEST_START_AT (an ISO instant): the gateways' clocks start there instead of
    now (the shift is taken once, when the suite starts), to run the time limit tests on the
    days that are hard to count: a Friday night in UTC that is Saturday in Brussels, the days
    before Christmas or Easter. Tests read the gateways' clock, never the system's, for the
    legal days they check."""
    text = os.environ.get("GATEWAY_TEST_START_AT")
    return (datetime.fromisoformat(text) - datetime.now(UTC)).total_seconds() if text else 0.0


START_SHIFT = _start_shift()


def gateway_now() -> datetime:
    """What a gateway the harness starts reads on its clock before any test moves it."""
    return datetime.now(UTC) + timedelta(seconds=START_SHIFT)


@dataclass
class Harness:
    net: LocalNetwork
    running: dict[str, RunningGateway] = field(default_factory=dict)
    clients: list[GatewayClient] = field(default_factory=list)

    async def start(self, *codes: str) -> None:
        for code in codes:
            config = load_config(self.net.gateways[code].config)
            if START_SHIFT:
                offset = config.clock.offset_seconds + START_SHIFT
                config = replace(config, clock=replace(config.clock, offset_seconds=offset))
            self.running[code] = await start_gateway(config)

    async def stop(self, code: str) -> None:
        await self.running.pop(code).stop()

    def api(self, code: str, role: str = "case-officer") -> GatewayClient:
        gw = self.net.gateways[code]
        client = GatewayClient(gw.api_url, gw.tokens[role])
        self.clients.append(client)
        return client

    def ctx(self, code: str):  # type: ignore[no-untyped-def]
        return self.running[code].ctx

    def peer_session(
        self, cert: Path | None, key: Path | None, ca: Path | None = None
    ) -> aiohttp.ClientSession:
        """A raw mTLS client, for sending what a well-behaved gateway never would."""
        ctx = ssl.create_default_context(cafile=str(ca or self.net.pki.ca_cert))
        if cert is not None and key is not None:
            ctx.load_cert_chain(str(cert), str(key))
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx),
            timeout=aiohttp.ClientTimeout(total=10),
        )

    def session_as(self, code: str) -> aiohttp.ClientSession:
        files = self.net.pki.authorities[code]
        return self.peer_session(files.tls_cert, files.tls_key)

    def signer(self, code: str) -> Signer:
        files = self.net.pki.authorities[code]
        return load_signer_files(files.signing_cert, files.signing_key)

    async def post_signed(
        self, sender: str, receiver: str, body: bytes
    ) -> tuple[int, Acknowledgement]:
        """POST a transmission as `sender` (its TLS identity) to the running `receiver`;
        returns the HTTP status and the acknowledgement, verified as signed by `receiver`."""
        async with (
            self.session_as(sender) as s,
            s.post(
                self.net.gateways[receiver].peer_url + "/v1/transmissions",
                data=body,
                headers={"Content-Type": "application/xml"},
            ) as resp,
        ):
            verified = verify(
                parse_untrusted(await resp.read()), self.ctx(receiver).signer_authority
            )
            assert verified.signer_authority == receiver
            return resp.status, read_acknowledgement(verified.root)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for code in list(self.running):
            await self.stop(code)


async def answered_request(
    h: Harness, case_number: str, reply: str = "take-charge-reply-acceptance"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """BE-DU's take charge request to NL-DU and NL-DU's reply, both delivered."""
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    sent = await send_request(be, case_number=case_number)
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    answer = await nl.submit(
        "take-charge-reply", "BE-DU", example(reply), in_reply_to=sent["message_id"]
    )
    await nl.wait_for_state(answer["message_id"], {"delivered"}, within=20)
    return sent, answer


async def erased_information(
    h: Harness, case_number: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An accepted take charge case in which BE-DU sends NL-DU transfer information and then
    an erasure notice for it (Art. 40(8)): (request, information, notice), all delivered."""
    be = h.api("BE-DU")
    sent, _ = await answered_request(h, case_number)
    info = await be.submit(
        "transfer-information", "NL-DU", example("transfer-information"), case=sent["reference"]
    )
    await be.wait_for_state(info["message_id"], {"delivered"}, within=20)
    erase = await be.submit(
        "erasure-notice", "NL-DU", example("erasure-notice"), in_reply_to=info["message_id"]
    )
    await be.wait_for_state(erase["message_id"], {"delivered"}, within=20)
    return sent, info, erase


async def make_harness(tmp_path: Path, **overrides: Any) -> Harness:
    net = build_local_network(
        tmp_path / "net",
        CODES,
        delivery=FAST_DELIVERY | overrides.get("delivery", {}),
        peer=overrides.get("peer"),
        deadlines=overrides.get("deadlines"),
        adjustable_clock=True,
        valid_days=overrides.get("valid_days", 365),
    )
    return Harness(net)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await make_harness(tmp_path)
    try:
        yield h
    finally:
        await h.close()


def run_gateway(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`gateway ARGS...` in a process of its own, as an operator runs it; never raises on
    a non-zero exit (the tests read the exit code, stdout and stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
