"""`gateway demo`: three gateways as separate processes on loopback; BE-DU sends a take charge
request to NL-DU, NL-DU accepts; every step is shown with the acknowledgements' receipt
times."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gateway.client import GatewayClient
from gateway.network import LocalGateway, LocalNetwork, build_local_network

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
AUTHORITIES = ("BE-DU", "NL-DU", "GR-DU")


class DemoError(RuntimeError):
    pass


def _load_example(name: str) -> dict[str, Any]:
    data = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DemoError(f"example {name} is not a JSON object")
    return data


class Processes:
    """The gateway processes of a demo network; always stopped, even on error."""

    def __init__(self, network: LocalNetwork) -> None:
        self.network = network
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, code: str) -> None:
        gw = self.network.gateways[code]
        log = (gw.config.parent / "gateway.log").open("ab")
        self._logs.append(log)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.procs[code] = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(gw.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def log_tail(self, code: str, lines: int = 20) -> str:
        path = self.network.gateways[code].config.parent / "gateway.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for log in self._logs:
            log.close()


async def _wait_up(procs: Processes, gw: LocalGateway) -> None:
    async with GatewayClient(gw.api_url, gw.tokens["case-officer"]) as client:
        for _ in range(300):
            proc = procs.procs[gw.code]
            if proc.poll() is not None:
                raise DemoError(
                    f"{gw.code} exited with status {proc.returncode}:\n{procs.log_tail(gw.code)}"
                )
            try:
                await client.health()
                return
            except Exception:
                await asyncio.sleep(0.1)
    raise DemoError(f"{gw.code} did not come up within 30 s:\n{procs.log_tail(gw.code)}")


async def exchange(network: LocalNetwork, say: Callable[[str], None]) -> None:
    """The demo conversation: request, acknowledgement, reply, acknowledgement."""
    be, nl = network.gateways["BE-DU"], network.gateways["NL-DU"]
    async with (
        GatewayClient(be.api_url, be.tokens["case-officer"]) as be_api,
        GatewayClient(nl.api_url, nl.tokens["case-officer"]) as nl_api,
    ):
        request = await be_api.submit(
            "take-charge-request",
            "NL-DU",
            _load_example("take-charge-request.json"),
            case_number="2026-DEMO-0001",
        )
        say(
            f"[BE-DU] take charge request (Art. 29) {request['reference']} signed and queued "
            f"for NL-DU, message {request['message_id']}"
        )
        sent = await be_api.wait_for_state(
            request["message_id"], {"delivered", "refused", "undeliverable"}
        )
        if sent["state"] != "delivered":
            raise DemoError(f"request not delivered: {json.dumps(sent, indent=2)}")
        ack = sent["acknowledgement"]
        say(
            f"[NL-DU] acknowledgement of receipt {ack['status']}: receipt time "
            f"{ack['receipt_time']}, digest {ack['digest'][:16]}..., NL-DU register head "
            f"#{ack['register_head']['sequence']}"
        )
        received = await nl_api.wait_for_inbox(lambda m: m["message_id"] == request["message_id"])
        say(
            f"[NL-DU] inbox: {received['type']} {received['reference']} from "
            f"{received['sender']}, criterion {received['form'].get('criterion', '?')}"
        )
        reply = await nl_api.submit(
            "take-charge-reply",
            "BE-DU",
            _load_example("take-charge-reply-acceptance.json"),
            in_reply_to=request["message_id"],
        )
        say(
            f"[NL-DU] take charge reply (Art. 30, acceptance) {reply['reference']} signed and "
            f"queued for BE-DU, message {reply['message_id']}"
        )
        answered = await nl_api.wait_for_state(
            reply["message_id"], {"delivered", "refused", "undeliverable"}
        )
        if answered["state"] != "delivered":
            raise DemoError(f"reply not delivered: {json.dumps(answered, indent=2)}")
        ack = answered["acknowledgement"]
        say(
            f"[BE-DU] acknowledgement of receipt {ack['status']}: receipt time "
            f"{ack['receipt_time']}, BE-DU register head #{ack['register_head']['sequence']}"
        )
        got = await be_api.wait_for_inbox(lambda m: m["message_id"] == reply["message_id"])
        say(f"[BE-DU] inbox: {got['type']} {got['reference']} in reply to {got['in_reply_to']}")
        for code, api in (("BE-DU", be_api), ("NL-DU", nl_api)):
            health = await api.health()
            say(
                f"[{code}] register: {health['register']['sequence']} entries, head "
                f"{health['register']['hash'][:16]}..."
            )


async def run_demo(workdir: Path | None, keep_running: bool, say: Callable[[str], None]) -> int:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-demo-")))
        network = build_local_network(workdir, AUTHORITIES)
        say(
            f"Built a network of {len(AUTHORITIES)} authorities in {workdir}: network CA, a TLS "
            "and a signing certificate each, and the authority directory"
        )
        procs = Processes(network)
        try:
            for code in AUTHORITIES:
                procs.start(code)
            for code in AUTHORITIES:
                gw = network.gateways[code]
                await _wait_up(procs, gw)
                say(f"[{code}] gateway up: peers at {gw.peer_url}, internal API at {gw.api_url}")
            await exchange(network, say)
            if keep_running:
                description = workdir / "network.json"
                description.write_text(json.dumps(network.describe(), indent=2) + "\n")
                description.chmod(0o600)
                say(f"Network described in {description}; press Ctrl-C to stop")
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
        finally:
            procs.stop()
            say("Stopped all gateways")
    return 0
