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
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from gateway.client import GatewayClient
from gateway.demo_operational import operational_scene
from gateway.examples import attachments_for, load_example
from gateway.network import LocalGateway, LocalNetwork, build_local_network

AUTHORITIES = ("BE-DU", "NL-DU", "GR-DU")


class DemoError(RuntimeError):
    pass


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


@dataclass(frozen=True)
class DemoStep:
    sender: str
    receiver: str
    message_type: str
    example: str
    label: str
    role: str = "case-officer"
    case_number: str | None = None
    answers: int | None = None
    """Index of the step whose message this one answers."""
    case_of: int | None = None
    """Index of the step that opened the case this message belongs to."""


DEMO_BASIS = "2024-1351"
"""Today's law: every case of the demonstration runs under Regulation (EU) 2024/1351."""

# One complete take charge case through to the person's arrival, and one take back.
STEPS: tuple[DemoStep, ...] = (
    DemoStep(
        "BE-DU",
        "NL-DU",
        "take-charge-request",
        "take-charge-request",
        "take charge request (Art. 39)",
        case_number="2026-DEMO-0001",
    ),
    DemoStep(
        "NL-DU",
        "BE-DU",
        "take-charge-reply",
        "take-charge-reply-acceptance",
        "take charge reply: acceptance (Art. 40)",
        answers=0,
    ),
    DemoStep(
        "BE-DU",
        "NL-DU",
        "transfer-notice",
        "transfer-notice-decision-taken",
        "transfer decision taken (Art. 42)",
        case_of=0,
    ),
    DemoStep(
        "BE-DU",
        "NL-DU",
        "transfer-information",
        "transfer-information",
        "information before the transfer (Art. 48)",
        case_of=0,
    ),
    DemoStep(
        "BE-DU",
        "NL-DU",
        "health-certificate",
        "health-certificate",
        "common health certificate (Art. 49, health practitioners only)",
        role="health-practitioner",
        case_of=0,
    ),
    DemoStep(
        "NL-DU",
        "BE-DU",
        "transfer-notice",
        "transfer-notice-arrived",
        "arrival of the person",
        case_of=0,
    ),
    DemoStep(
        "BE-DU",
        "GR-DU",
        "take-back-notification",
        "take-back-notification",
        "take back notification (Art. 41(1))",
        case_number="2026-DEMO-0002",
    ),
    DemoStep(
        "GR-DU",
        "BE-DU",
        "take-back-confirmation",
        "take-back-confirmation-confirmation",
        "confirmation of receipt (Art. 41)",
        answers=6,
    ),
)


async def exchange(
    network: LocalNetwork, say: Callable[[str], None], *, time_travel: bool = True
) -> list[dict[str, Any]]:
    """Run STEPS: each message is submitted, delivered, acknowledged and read by the
    receiver; returns the delivered message views in order. With `time_travel`, BE-DU's and
    NL-DU's clocks then move SILENCE_DAYS forward to show a deemed acceptance."""
    clients: dict[tuple[str, str], GatewayClient] = {}

    def api(code: str, role: str) -> GatewayClient:
        if (code, role) not in clients:
            gw = network.gateways[code]
            clients[code, role] = GatewayClient(gw.api_url, gw.tokens[role])
        return clients[code, role]

    sent: list[dict[str, Any]] = []
    try:
        for step in STEPS:
            form = load_example(step.example, today=date.today())
            submitted = await api(step.sender, step.role).submit(
                step.message_type,
                step.receiver,
                form,
                case_number=step.case_number,
                in_reply_to=None if step.answers is None else sent[step.answers]["message_id"],
                case=None if step.case_of is None else sent[step.case_of]["reference"],
                attachments=attachments_for(form),
                legal_basis=DEMO_BASIS if step.case_number else None,
            )
            view = await api(step.sender, step.role).wait_for_state(
                submitted["message_id"], {"delivered", "refused", "undeliverable"}
            )
            if view["state"] != "delivered":
                raise DemoError(f"{step.label} not delivered: {json.dumps(view, indent=2)}")
            ack = view["acknowledgement"]
            say(
                f"[{step.sender} -> {step.receiver}] {step.label} {view['reference']}: "
                f"acknowledgement of receipt {ack['status']}, receipt time "
                f"{ack['receipt_time']}, {step.receiver} register head "
                f"#{ack['register_head']['sequence']}"
            )
            wanted = submitted["message_id"]

            def arrived(m: dict[str, Any], wanted: str = wanted) -> bool:
                return bool(m["message_id"] == wanted)

            await api(step.receiver, step.role).wait_for_inbox(arrived)
            sent.append(view)
        # Before any clock moves: the family's messages go to GR-DU too, whose clock stays.
        await operational_scene(network, api, say)
        if time_travel:
            await _silence(network, api, say)
        else:
            say(
                "(no deemed acceptance shown: --no-time-travel keeps every gateway's clock on "
                "real time)"
            )
        for index, (code, peer) in ((0, ("BE-DU", "NL-DU")), (6, ("BE-DU", "GR-DU"))):
            reference = sent[index]["reference"]
            for side in (code, peer):
                case = await api(side, "case-officer").case(reference)
                say(
                    f"[{side}] case {reference} ({case['kind']}): {case['state']}, "
                    f"{len(case['messages'])} messages"
                )
        for code in AUTHORITIES:
            health = await api(code, "case-officer").health()
            say(
                f"[{code}] register: {health['register']['sequence']} entries, head "
                f"{health['register']['hash'][:16]}..."
            )
    finally:
        for client in clients.values():
            await client.close()
    return sent


SILENCE_DAYS = 40


def _unverified(limit: dict[str, Any]) -> str:
    return "" if limit.get("verified") else ", value not verified"


async def _silence(
    network: LocalNetwork, api: Callable[[str, str], GatewayClient], say: Callable[[str], None]
) -> None:
    """Art. 40(8) of Regulation (EU) 2024/1351: NL-DU stays silent on a request; both clocks
    move forward past the reply limit, and both gateways record the deemed acceptance on the
    day the pack's counting gives (Art. 75: rolled over to the next working day)."""
    form = load_example("take-charge-request", today=date.today())
    sent = await api("BE-DU", "case-officer").submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="2026-DEMO-0003",
        attachments=attachments_for(form),
        legal_basis=DEMO_BASIS,
    )
    view = await api("BE-DU", "case-officer").wait_for_state(sent["message_id"], {"delivered"})
    limits = await api("BE-DU", "case-officer").deadlines(state="open", rule="take_charge_reply")
    due = next(d for d in limits["items"] if d["case"] == sent["reference"])
    say(
        f"[BE-DU -> NL-DU] take charge request {sent['reference']}: received "
        f"{view['acknowledgement']['receipt_time']}; NL-DU must reply by {due['due_date']} "
        f"({due['article']} of {due['legal_basis']}{_unverified(due)}); NL-DU stays silent"
    )
    for code in ("BE-DU", "NL-DU"):
        await api(code, "administrator").advance_clock(SILENCE_DAYS * 86400)
    say(f"(both clocks moved {SILENCE_DAYS} days forward)")
    for code in ("BE-DU", "NL-DU"):
        for _ in range(200):
            case = await api(code, "case-officer").case(sent["reference"])
            if case["state"] == "deemed-accepted":
                break
            await asyncio.sleep(0.05)
        else:
            raise DemoError(f"{code} did not record the deemed acceptance")
        expired = next(d for d in case["deadlines"] if d["rule"] == "take_charge_reply")
        say(
            f"[{code}] {sent['reference']}: limit expired {expired['expires_at']}, "
            f"{expired['consequence']} ({expired['article']} of {expired['legal_basis']}); "
            f"case {case['state']}"
        )


async def run_demo(
    workdir: Path | None,
    keep_running: bool,
    say: Callable[[str], None],
    *,
    time_travel: bool = True,
) -> int:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-demo-")))
        network = build_local_network(workdir, AUTHORITIES, adjustable_clock=True)
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
            await exchange(network, say, time_travel=time_travel)
            if keep_running:
                if time_travel:
                    say(
                        f"Note: BE-DU's and NL-DU's clocks stay {SILENCE_DAYS} days ahead of "
                        "real time (moved to show the deemed acceptance): their time limits, "
                        "receipts and register entries are dated in the future; GR-DU's clock "
                        "is on real time. Run `gateway demo --keep-running --no-time-travel` "
                        "for a network whose clocks all run on real time."
                    )
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
