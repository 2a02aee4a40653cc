"""`gateway doctor` (Art. 41: only the notified authorities, by their pinned certificates):
a healthy configuration, then each classic fault found and explained with its fix: an
expired certificate, a key that is not the certificate's, a certificate of an unknown CA, a
peer that is unreachable, and a peer presenting a certificate the directory does not pin."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.cli import main
from gateway.doctor import Finding, diagnose
from gateway.pki.certs import load_certificate, load_private_key
from gateway.pki.demo import (
    create_demo_network,
    issue_certificate,
    write_certificate,
    write_private_key,
)
from tests.integration.conftest import Harness


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "error"]


def one(findings: list[Finding], check: str, words: str) -> Finding:
    found = [f for f in findings if f.check == check and words in f.message]
    assert len(found) == 1, [f for f in findings if f.status != "ok"]
    assert found[0].fix, "every problem says how to fix it"
    return found[0]


async def test_a_healthy_gateway_and_its_peers_pass(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU", "GR-DU")
    findings = await diagnose(harness.net.gateways["BE-DU"].config, peer_seconds=5)
    assert errors(findings) == []
    assert {f.check for f in findings if f.status == "ok"} >= {
        "configuration",
        "CA bundle",
        "CRL",
        "TLS certificate",
        "signing certificate",
        "directory",
        "peer NL-DU",
        "peer GR-DU",
    }


async def test_expired_certificate_is_found(harness: Harness, tmp_path: Path) -> None:
    pki = harness.net.pki
    files = pki.authorities["BE-DU"]
    old = load_certificate(files.tls_cert)
    now = datetime.now(UTC)
    expired = issue_certificate(
        load_certificate(pki.ca_cert),
        load_private_key(pki.ca_key),  # type: ignore[arg-type]
        load_private_key(files.tls_key).public_key(),  # type: ignore[arg-type]
        old.subject,
        purpose="tls",
        sans=[x509.DNSName("localhost")],
        not_before=now - timedelta(days=40),
        not_after=now - timedelta(days=1),
    )
    files.tls_cert.unlink()
    write_certificate(files.tls_cert, expired)
    findings = await diagnose(harness.net.gateways["BE-DU"].config, peer_seconds=1)
    assert "renew" in one(findings, "TLS certificate", "expired at").fix  # type: ignore[operator]


async def test_wrong_key_for_certificate_is_found(harness: Harness) -> None:
    files = harness.net.pki.authorities["BE-DU"]
    files.signing_key.unlink()
    write_private_key(files.signing_key, ec.generate_private_key(ec.SECP256R1()))
    findings = await diagnose(harness.net.gateways["BE-DU"].config, peer_seconds=1)
    one(findings, "signing certificate", "wrong key for certificate")


async def test_certificate_of_an_unknown_ca_is_found(harness: Harness, tmp_path: Path) -> None:
    other = create_demo_network(tmp_path / "other", ["BE-DU"])
    files = harness.net.pki.authorities["BE-DU"]
    for target, source in (
        (files.tls_cert, other.authorities["BE-DU"].tls_cert),
        (files.tls_key, other.authorities["BE-DU"].tls_key),
    ):
        target.write_bytes(source.read_bytes())
    findings = await diagnose(harness.net.gateways["BE-DU"].config, peer_seconds=1)
    one(findings, "TLS certificate", "unknown CA")
    one(findings, "directory", "is not pinned")


async def test_unreachable_peer_is_found(harness: Harness) -> None:
    await harness.start("BE-DU", "NL-DU")  # GR-DU stays down
    findings = await diagnose(harness.net.gateways["BE-DU"].config, peer_seconds=2)
    problem = one(findings, "peer GR-DU", "peer unreachable")
    assert f"127.0.0.1:{harness.net.gateways['GR-DU'].peer_port}" in problem.message
    assert [f.check for f in errors(findings)] == ["peer GR-DU"]


async def test_peer_presenting_an_unexpected_certificate_is_found(
    harness: Harness, tmp_path: Path
) -> None:
    """Something answers at NL-DU's address with a certificate of the network CA that the
    directory does not pin for NL-DU."""
    pki = harness.net.pki
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = issue_certificate(
        load_certificate(pki.ca_cert),
        load_private_key(pki.ca_key),  # type: ignore[arg-type]
        key.public_key(),
        load_certificate(pki.authorities["NL-DU"].tls_cert).subject,
        purpose="tls",
        sans=[x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))],
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=1),
    )
    write_private_key(tmp_path / "k.pem", key)
    write_certificate(tmp_path / "c.pem", cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))

    async def answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        writer.close()

    impostor = await asyncio.start_server(
        answer, "127.0.0.1", harness.net.gateways["NL-DU"].peer_port, ssl=context
    )
    try:
        findings = await diagnose(harness.net.gateways["BE-DU"].config, peer_seconds=3)
    finally:
        impostor.close()
        await impostor.wait_closed()
    one(findings, "peer NL-DU", "unexpected certificate")


def test_doctor_command_prints_fixes_and_fails_on_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.network import build_local_network

    net = build_local_network(tmp_path / "net", ["BE-DU", "NL-DU"])
    config = net.gateways["BE-DU"].config
    assert main(["doctor", "--config", str(config), "--timeout", "1"]) == 1  # NL-DU is down
    out = capsys.readouterr().out
    assert "FAIL peer NL-DU: peer unreachable" in out and "fix:" in out
    assert main(["doctor", "--config", str(config), "--timeout", "1", "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert {f["status"] for f in findings} >= {"ok", "error"}
    assert main(["doctor", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "FAIL configuration" in capsys.readouterr().out
