"""Gateways as separate processes: crash safety of the durable outbox, the export command and
its interoperability with standard tools, and the demo."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.client import GatewayClient
from gateway.config import load_config
from gateway.network import LocalNetwork, build_local_network
from gateway.xml.schemas import SCHEMA_DIR

from .conftest import CODES, FAST_DELIVERY, Harness, send_request


def check_with_standard_tools(path: Path, ca: Path, what: str = "") -> None:
    """The transmission validates with xmllint against gateway/schemas/ and its signature verifies
    with xmlsec1 against the network CA: anyone can check it without this software."""
    lint = subprocess.run(
        [
            "xmllint",
            "--noout",
            "--nonet",
            "--schema",
            str(SCHEMA_DIR / "envelope.xsd"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, (what, lint.stderr)
    sig = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(ca), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sig.returncode == 0, (what, sig.stderr)


def spawn(net: LocalNetwork, code: str) -> subprocess.Popen[bytes]:
    gw = net.gateways[code]
    log = (gw.config.parent / "gateway.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-json", "serve", "--config", str(gw.config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def test_sender_killed_between_submit_and_delivery_delivers_exactly_once_after_restart(
    tmp_path: Path,
) -> None:
    net = build_local_network(tmp_path / "net", CODES, delivery=FAST_DELIVERY)
    h = Harness(net)
    be_gw = net.gateways["BE-DU"]
    proc = spawn(net, "BE-DU")
    try:
        async with GatewayClient(be_gw.api_url, be_gw.tokens["case-officer"]) as be:
            await be.wait_until_up(within=30)
            sent = await send_request(
                be,
                case_number="KILL-1",
            )
            assert (await be.message(sent["message_id"]))["state"] == "queued"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

            await h.start("NL-DU")
            proc = spawn(net, "BE-DU")
            await be.wait_until_up(within=30)
            # SQLite frees the killed process's claim at start; on PostgreSQL (several nodes
            # may share the outbox) it comes back when its lease ends.
            config = load_config(be_gw.config)
            lease = (
                config.delivery.lease.total_seconds() if "postgresql" in config.database_url else 0
            )
            view = await be.wait_for_state(sent["message_id"], {"delivered"}, within=30 + lease)
            assert view["acknowledgement"]["status"] == "accepted"

        nl_store = h.ctx("NL-DU").store
        assert await nl_store.messages.count() == 1
        received = [
            e
            for e in await nl_store.register.query(limit=1000, message_id=sent["message_id"])
            if e.event == "received"
        ]
        assert len(received) == 1
    finally:
        stop(proc)
        await h.close()


@pytest.mark.skipif(
    shutil.which("xmllint") is None or shutil.which("xmlsec1") is None,
    reason="needs xmllint (libxml2-utils) and xmlsec1 (Debian packages; .ci/run installs them)",
)
async def test_exported_transmission_validates_with_xmllint_and_verifies_with_xmlsec1(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="X-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    out = tmp_path / "exported.xml"
    cfg = harness.net.gateways["NL-DU"].config
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "gateway",
            "export",
            "--config",
            str(cfg),
            "--message-id",
            sent["message_id"],
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    stored = await harness.ctx("BE-DU").store.messages.get(sent["message_id"])
    assert out.read_bytes() == stored.signed_xml, "exported exactly as signed"

    check_with_standard_tools(out, harness.net.pki.ca_cert)


def test_export_of_an_unknown_message_fails_clearly(harness: Harness, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "export",
            "--config",
            str(harness.net.gateways["BE-DU"].config),
            "--message-id",
            "nope",
            "--out",
            str(tmp_path / "x.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no message nope" in done.stderr
    assert not (tmp_path / "x.xml").exists()


def test_demo_runs_the_exchange_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("acknowledgement of receipt accepted, receipt time") == 8
    assert "take charge reply: acceptance (Art. 40)" in done.stdout
    assert "arrival of the person" in done.stdout
    # AMMR Art. 40(8): silence, clocks moved forward, deemed acceptance recorded on both sides
    deemed = "deemed-acceptance (Art. 40(1), 40(8) of 2024-1351); case deemed-accepted"
    assert done.stdout.count(deemed) == 2
    # The operational family (Council Decision 2005/267/EC): a broadcast early warning reaches
    # NL-DU and GR-DU, and one with a passport number is refused naming the field.
    assert "one signed transmission each to GR-DU, NL-DU" in done.stdout
    assert done.stdout.count("early warning BE-EW-") == 3
    assert "refused: 422 personal-data at /form/summary" in done.stdout
    # The network operator's deletion order, applied on all three.
    assert done.stdout.count("deletion order applied: 1 item deleted") == 3
    assert "Stopped all gateways" in done.stdout


def test_demo_keep_running_writes_network_json(tmp_path: Path) -> None:
    import json
    import time

    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--workdir", str(workdir), "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "network.json").exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "network.json not written in time"
            time.sleep(0.2)
        time.sleep(0.2)
        described = json.loads((workdir / "network.json").read_text())
        be = described["authorities"]["BE-DU"]
        for key in (
            "code",
            "peer_url",
            "api_url",
            "api_tokens",
            "config",
            "data_dir",
            "ca_cert",
            "tls_cert",
            "tls_key",
            "signing_cert",
            "signing_key",
        ):
            assert key in be
        assert Path(be["signing_key"]).stat().st_mode & 0o777 == 0o600
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        output = proc.stdout.read().decode() if proc.stdout else ""
        # issue 17 item 11: the demo says what it did to the clocks of the network it leaves
        assert "clocks stay 40 days ahead of real time" in output
        assert "--no-time-travel" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_demo_without_time_travel_keeps_every_clock_on_real_time(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "demo",
            "--workdir",
            str(tmp_path / "d"),
            "--no-time-travel",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no deemed acceptance shown" in done.stdout
    assert "days forward" not in done.stdout and "deemed-acceptance" not in done.stdout


@pytest.mark.skipif(
    shutil.which("xmllint") is None or shutil.which("xmlsec1") is None,
    reason="needs xmllint (libxml2-utils) and xmlsec1 (Debian packages; .ci/run installs them)",
)
async def test_demo_case_runs_to_arrival_and_every_transmission_verifies_with_xmlsec1(
    harness: Harness, tmp_path: Path
) -> None:
    """Art. 29-39: request, acceptance, transfer decision, information before transfer,
    health certificate, arrival; and a take back notification with its confirmation."""
    from gateway.demo import STEPS, exchange

    await harness.start(*CODES)
    lines: list[str] = []
    sent = await exchange(harness.net, lines.append)
    assert len(sent) == len(STEPS)
    assert any("case BE012026-DEMO-0001 (take-charge): transferred" in line for line in lines)
    assert any("case BE022026-DEMO-0002 (take-back): confirmed" in line for line in lines)
    # Art. 39(3)-(4): NL's case officers see that a health certificate came, not its content
    inbox = (await harness.api("NL-DU").inbox("0", 100))["items"]
    health = [m for m in inbox if m["type"] == "health-certificate"]
    assert len(health) == 1 and health[0]["restricted"] and "form" not in health[0]
    practitioner = (await harness.api("NL-DU", "health-practitioner").inbox("0", 100))["items"]
    assert [m["form"] is not None for m in practitioner if m["type"] == "health-certificate"] == [
        True
    ]
    for i, view in enumerate(sent):
        sender = STEPS[i].sender
        stored = await harness.ctx(sender).store.messages.get(view["message_id"])
        path = tmp_path / f"{i}.xml"
        path.write_bytes(stored.signed_xml)
        check_with_standard_tools(path, harness.net.pki.ca_cert, STEPS[i].message_type)


async def test_art41_sighup_applies_a_new_directory_without_restart(tmp_path: Path) -> None:
    """With file watching effectively off, SIGHUP alone makes a running gateway process take
    the newly published directory; the process and its connections stay up."""
    from tests.pki_helpers import publish

    net = build_local_network(tmp_path / "net", ["BE-DU", "NL-DU"], delivery=FAST_DELIVERY)
    gw = net.gateways["BE-DU"]
    gw.config.write_text(
        gw.config.read_text().replace("reload_check_seconds = 0.5", "reload_check_seconds = 3600")
    )
    proc = spawn(net, "BE-DU")
    try:
        async with GatewayClient(gw.api_url, gw.tokens["administrator"]) as admin:
            await admin.wait_until_up(within=30)
            assert (await admin.admin_directory())["version"] == 1
            publish(net.pki, lambda data: None)
            await asyncio.sleep(0.3)
            assert (await admin.admin_directory())["version"] == 1, "no reload before SIGHUP"
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if (await admin.admin_directory())["version"] == 2:
                    break
                await asyncio.sleep(0.1)
            assert (await admin.admin_directory())["version"] == 2
            assert proc.poll() is None
        async with GatewayClient(gw.api_url, gw.tokens["auditor"]) as auditor:
            rows = await auditor._request("GET", "/api/v1/register?event=trust-reloaded")
        assert rows["items"][-1]["details"]["trigger"] == "SIGHUP"
    finally:
        stop(proc)
