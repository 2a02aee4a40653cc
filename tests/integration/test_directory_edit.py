"""The operator edits the directory from issued certificates (issue 17, item 8): `gateway pki
directory add / update / remove` on the demo network's source, each a new version that
`publish` signs and `show` verifies; a certificate of the wrong purpose is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gateway.pki.certs import fingerprint, load_certificate

from .conftest import run_gateway as gateway


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _issue(out: Path, ca: Path, code: str, purpose: str) -> Path:
    folder = out / code
    args = ["--san", "127.0.0.1"] if purpose == "tls" else []
    _ok(gateway("pki", "request", "--authority", code, "--purpose", purpose,
                "--out", str(folder), *args))  # fmt: skip
    csr = sorted(folder.glob(f"{purpose}*.csr"))[-1]
    cert = folder / f"{csr.stem}.pem"
    _ok(gateway("pki", "issue", "--ca", str(ca), "--csr", str(csr), "--purpose", purpose,
                "--authority", code, "--out", str(cert)))  # fmt: skip
    return cert


def test_add_update_remove_then_publish_and_show(tmp_path: Path) -> None:
    net = tmp_path / "net"
    _ok(gateway("pki", "demo", "--out", str(net), "--authorities", "BE-DU,NL-DU"))
    ca, source = net / "ca", net / "directory.json"
    tls, signing = _issue(tmp_path, ca, "GR-DU", "tls"), _issue(tmp_path, ca, "GR-DU", "signing")

    wrong = gateway("pki", "directory", "add", "--source", str(source), "--code", "GR-DU",
                    "--name", "Dublin unit of Greece", "--time-zone", "Europe/Athens",
                    "--endpoint", "https://127.0.0.1:9443",
                    "--tls-cert", str(signing), "--signing-cert", str(tls))  # fmt: skip
    assert wrong.returncode == 2 and "is not a tls certificate" in wrong.stderr
    added = _ok(gateway("pki", "directory", "add", "--source", str(source), "--code", "GR-DU",
                        "--name", "Dublin unit of Greece", "--time-zone", "Europe/Athens",
                        "--endpoint", "https://127.0.0.1:9443",
                        "--tls-cert", str(tls), "--signing-cert", str(signing)))  # fmt: skip
    assert "version 2" in added
    data = json.loads(source.read_text())
    (gr,) = [a for a in data["authorities"] if a["code"] == "GR-DU"]
    assert gr["tls_fingerprints"] == [fingerprint(load_certificate(tls))]
    again = gateway("pki", "directory", "add", "--source", str(source), "--code", "GR-DU",
                    "--name", "x", "--time-zone", "Europe/Athens", "--endpoint", "https://x",
                    "--tls-cert", str(tls), "--signing-cert", str(signing))  # fmt: skip
    assert again.returncode == 2 and "use update" in again.stderr

    # a renewal: pin the new TLS certificate beside the old, then unpin the old
    renewed = _issue(tmp_path / "renewal", ca, "GR-DU", "tls")
    _ok(gateway("pki", "directory", "update", "--source", str(source), "--code", "GR-DU",
                "--tls-cert", str(renewed)))  # fmt: skip
    (gr,) = [a for a in json.loads(source.read_text())["authorities"] if a["code"] == "GR-DU"]
    assert len(gr["tls_fingerprints"]) == 2
    _ok(gateway("pki", "directory", "update", "--source", str(source), "--code", "GR-DU",
                "--unpin", str(tls)))  # fmt: skip
    data = json.loads(source.read_text())
    (gr,) = [a for a in data["authorities"] if a["code"] == "GR-DU"]
    assert gr["tls_fingerprints"] == [fingerprint(load_certificate(renewed))]
    assert data["version"] == 4
    nothing = gateway("pki", "directory", "update", "--source", str(source), "--code", "GR-DU")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr

    _ok(gateway("pki", "directory", "remove", "--source", str(source), "--code", "NL-DU"))
    data = json.loads(source.read_text())
    assert [a["code"] for a in data["authorities"]] == ["BE-DU", "GR-DU"]
    assert data["version"] == 5

    signed = tmp_path / "directory-v5.xml"
    _ok(gateway("pki", "directory", "publish", "--source", str(source),
                "--cert", str(net / "operator" / "directory-publisher.pem"),
                "--key", str(net / "operator" / "directory-publisher.key"),
                "--out", str(signed)))  # fmt: skip
    shown = json.loads(_ok(gateway("pki", "directory", "show", str(signed),
                                   "--ca", str(ca / "ca.pem"))))  # fmt: skip
    assert shown["verified"] and shown["version"] == 5
