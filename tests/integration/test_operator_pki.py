"""The network operator's tooling end to end (Art. 41): a two-tier CA, authorities that
create their own keys and requests, certificates issued from those requests, a published
directory, two gateways that exchange over it, then a revocation that cuts one off and a
renewal. Everything through `gateway pki ...` as an operator would type it."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.app import start_gateway
from gateway.cli import main
from gateway.client import GatewayClient
from gateway.config import load_config
from gateway.examples import attachments_for
from gateway.network import free_ports, write_toml
from gateway.pki.certs import fingerprint, load_certificate
from gateway.pki.operator import CaPaths, issued, load_ca, load_csr, record_of
from tests.integration.conftest import FAST_DELIVERY, example

PASS_ENV = "TEST_CA_PASSPHRASE"


def cli(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASS_ENV, "correct horse battery staple")
    return "correct horse battery staple"


def enrol(ca: Path, home: Path, code: str) -> dict[str, Path]:
    """The authority requests, the operator issues: TLS, signing and health encryption."""
    out: dict[str, Path] = {}
    for purpose in ("tls", "signing", "health-encryption"):
        extra = ["--san", "127.0.0.1", "--san", "localhost"] if purpose == "tls" else []
        cli("pki", "request", "--authority", code, "--purpose", purpose, "--out", str(home), *extra)
        cli(
            "pki", "issue", "--ca", str(ca), "--csr", str(home / f"{purpose}.csr"),
            "--purpose", purpose, "--authority", code,
            "--out", str(home / f"{purpose}.pem"), "--passphrase-env", PASS_ENV,
        )  # fmt: skip
        out[purpose] = home / f"{purpose}.pem"
    return out


def authority_entry(code: str, port: int, certs: dict[str, Path]) -> dict[str, Any]:
    return {
        "code": code,
        "member_state": code[:2],
        "name": f"Dublin unit {code}",
        "time_zone": "Europe/Brussels",
        "endpoint": f"https://127.0.0.1:{port}",
        "roles": ["administrator", "auditor", "case-officer", "health-practitioner"],
        "tls_fingerprints": [fingerprint(load_certificate(certs["tls"]))],
        "signing_fingerprints": [fingerprint(load_certificate(certs["signing"]))],
        "health_encryption_certificates": [certs["health-encryption"].read_text()],
    }


async def test_art41_operator_builds_a_network_from_requests_and_revokes_a_member(
    tmp_path: Path, passphrase: str
) -> None:
    ca = tmp_path / "ca"
    cli("pki", "init", "--out", str(ca), "--passphrase-env", PASS_ENV)
    paths = CaPaths(ca)
    for key in (paths.root_key, paths.issuing_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        with pytest.raises(TypeError):  # encrypted: unusable without the passphrase
            serialization.load_pem_private_key(key.read_bytes(), password=None)
    root, issuing = load_certificate(paths.root_cert), load_certificate(paths.issuing_cert)
    issuing.verify_directly_issued_by(root)
    assert issuing.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0

    ports = free_ports(4)
    peer_ports = {"BE-DU": ports[0], "NL-DU": ports[1]}
    api_ports = {"BE-DU": ports[2], "NL-DU": ports[3]}
    certs = {code: enrol(ca, tmp_path / code, code) for code in peer_ports}
    operator = tmp_path / "operator"
    cli("pki", "request", "--purpose", "directory", "--out", str(operator))
    cli(
        "pki", "issue", "--ca", str(ca), "--csr", str(operator / "directory.csr"),
        "--purpose", "directory", "--out", str(operator / "directory.pem"),
        "--passphrase-env", PASS_ENV,
    )  # fmt: skip
    source = tmp_path / "directory.json"
    source.write_text(
        json.dumps(
            {
                "version": 1,
                "authorities": [
                    authority_entry(code, peer_ports[code], certs[code]) for code in peer_ports
                ],
            }
        )
    )
    published = tmp_path / "directory.xml"
    cli(
        "pki", "directory", "publish", "--source", str(source),
        "--cert", str(operator / "directory.pem"), "--key", str(operator / "directory.key"),
        "--out", str(published), "--ca", str(paths.bundle),
    )  # fmt: skip

    tokens: dict[str, str] = {}
    for code in peer_ports:
        home = tmp_path / code
        tokens[code] = f"token-{code}-case-officer-0123456789"
        write_toml(
            home / "gateway.toml",
            {
                "": {
                    "authority": code,
                    "data_dir": str(home / "data"),
                    "directory": str(published),
                },
                "peer": {"host": "127.0.0.1", "port": peer_ports[code]},
                "api": {"host": "127.0.0.1", "port": api_ports[code]},
                "api.tokens": {
                    "case-officer": tokens[code],
                    "administrator": f"token-{code}-administrator-0123456789",
                },
                "tls": {
                    "ca": str(paths.bundle),
                    "crl": str(paths.crl),
                    "cert": str(home / "tls.pem"),
                    "key": str(home / "tls.key"),
                },
                "signing": {"cert": str(home / "signing.pem"), "key": str(home / "signing.key")},
                "delivery": FAST_DELIVERY | {"max_attempts": 1000},
            },
        )  # fmt: skip
    running = {code: await start_gateway(load_config(tmp_path / code / "gateway.toml"))
               for code in peer_ports}  # fmt: skip
    be = GatewayClient(f"http://127.0.0.1:{api_ports['BE-DU']}", tokens["BE-DU"])
    try:
        form = example("take-charge-request.json")
        first = await be.submit(
            "take-charge-request", "NL-DU", form, case_number="OP-1",
            attachments=attachments_for(form),
        )  # fmt: skip
        await be.wait_for_state(first["message_id"], {"delivered"}, within=20)

        # NL-DU's TLS certificate is revoked: BE-DU can no longer open a connection to it.
        cli(
            "pki", "revoke", "--ca", str(ca), "--cert", str(certs["NL-DU"]["tls"]),
            "--reason", "key_compromise", "--passphrase-env", PASS_ENV,
        )  # fmt: skip
        crl = x509.load_pem_x509_crl(paths.crl.read_bytes())
        revoked = crl.get_revoked_certificate_by_serial_number(
            load_certificate(certs["NL-DU"]["tls"]).serial_number
        )
        assert revoked is not None
        await running["BE-DU"].ctx.trust.reload("test")
        second = await be.submit(
            "take-charge-request", "NL-DU", form, case_number="OP-2",
            attachments=attachments_for(form),
        )  # fmt: skip
        for _ in range(100):
            view = await be.message(second["message_id"])
            if (view.get("delivery") or {}).get("attempts", 0) >= 1:
                break
            await asyncio.sleep(0.1)
        assert view["state"] == "queued"
        assert "TLS" in view["delivery"]["last_error"] or "closed" in view["delivery"]["last_error"]
    finally:
        await be.close()
        for gateway in running.values():
            await gateway.stop()
    states = {r["fingerprint"]: r["state"] for r in issued(ca)}
    assert states[fingerprint(load_certificate(certs["NL-DU"]["tls"]))] == "revoked"
    assert list(states.values()).count("valid") == 6


def test_renewal_needs_a_new_key_and_records_what_it_replaces(
    tmp_path: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    cli("pki", "init", "--out", str(ca), "--passphrase-env", PASS_ENV)
    home = tmp_path / "BE-DU"
    cli("pki", "request", "--authority", "BE-DU", "--purpose", "signing", "--out", str(home))
    cli(
        "pki", "issue", "--ca", str(ca), "--csr", str(home / "signing.csr"), "--purpose",
        "signing", "--authority", "BE-DU", "--out", str(home / "signing.pem"),
        "--passphrase-env", PASS_ENV,
    )  # fmt: skip
    renew = [
        "pki", "renew", "--ca", str(ca), "--replaces", str(home / "signing.pem"),
        "--out", str(home / "signing-new.pem"), "--passphrase-env", PASS_ENV, "--csr",
    ]  # fmt: skip
    assert main([*renew, str(home / "signing.csr")]) == 2
    assert "holds the old key" in capsys.readouterr().err
    cli("pki", "request", "--authority", "BE-DU", "--purpose", "signing", "--out", str(home))
    newer = next(p for p in home.glob("signing-*.csr"))
    cli(*renew, str(newer))
    assert "pinning BOTH" in capsys.readouterr().out
    authority = load_ca(ca, passphrase.encode())
    new = load_certificate(home / "signing-new.pem")
    assert record_of(authority, new)["replaces"] == str(
        load_certificate(home / "signing.pem").serial_number
    )
    assert new.subject == load_certificate(home / "signing.pem").subject


def test_operator_refuses_forged_requests_wrong_passphrases_and_mismatched_keys(
    tmp_path: Path, passphrase: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    ca = tmp_path / "ca"
    cli("pki", "init", "--out", str(ca), "--passphrase-env", PASS_ENV)
    assert main(["pki", "init", "--out", str(ca), "--passphrase-env", PASS_ENV]) == 2
    assert "already holds a CA" in capsys.readouterr().err
    home = tmp_path / "NL-DU"
    cli("pki", "request", "--authority", "NL-DU", "--purpose", "tls", "--out", str(home),
        "--san", "localhost")  # fmt: skip
    csr = home / "tls.csr"
    issue = ["pki", "issue", "--ca", str(ca), "--purpose", "tls", "--authority", "NL-DU",
             "--out", str(home / "tls.pem"), "--passphrase-env", PASS_ENV, "--csr"]  # fmt: skip
    # A tampered request (subject changed after signing) fails its own signature.
    tampered = home / "tampered.csr"
    der = bytearray(load_csr(csr).public_bytes(serialization.Encoding.DER))
    index = der.find(b"NL-DU")
    der[index : index + 5] = b"BE-DU"
    tampered.write_bytes(x509_pem(bytes(der)))
    assert main([*issue, str(tampered)]) == 2
    assert "not signed by its own key" in capsys.readouterr().err
    # A health-encryption key asked for as TLS is refused (one key, one purpose).
    cli("pki", "request", "--authority", "NL-DU", "--purpose", "health-encryption",
        "--out", str(home))  # fmt: skip
    assert main([*issue, str(home / "health-encryption.csr")]) == 2
    assert "ECDSA P-256" in capsys.readouterr().err
    monkeypatch.setenv(PASS_ENV, "not the passphrase at all")
    assert main([*issue, str(csr)]) == 2
    assert "wrong passphrase" in capsys.readouterr().err
    monkeypatch.setenv(PASS_ENV, passphrase)
    cli(*issue, str(csr))
    assert load_certificate(home / "tls.pem").subject.rfc4514_string().startswith("O=Dublin")


def x509_pem(der: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + b"\n".join(lines)
        + (b"\n-----END CERTIFICATE REQUEST-----\n")
    )
