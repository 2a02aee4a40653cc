"""Files holding personal data are the gateway user's alone, whatever the umask: the data
folder 0700; the SQLite database and its -wal and -shm files, `gateway export`, `gateway
register export`, `gateway health open --out` and every file the folder adapter writes 0600.
They used to follow the umask (0755 folder, 0644 database and export)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from adapters.folder.adapter import FOLDERS, FolderAdapter, FolderConfig
from gateway.cli import main
from gateway.config import load_config
from gateway.core.forms import FORM_TYPES
from gateway.pki.demo import create_demo_network
from gateway.xml.envelope import build_transmission
from gateway.xml.forms import form_to_element
from gateway.xml.sealed import seal
from tests.integration.conftest import Harness, answered_request, example
from tests.integration.test_rejections import header

MASKS = [0o000, 0o022]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: f"umask-{m:03o}")
async def test_the_database_folder_and_files_are_private_whatever_the_umask(
    harness: Harness, mask: int
) -> None:
    gw = harness.net.gateways["BE-DU"]
    if not load_config(gw.config).database_url.startswith("sqlite"):
        pytest.skip("the database is not a file here (PostgreSQL)")
    with umask(mask):
        await harness.start("BE-DU", "NL-DU")
        await answered_request(harness, f"MODE-{mask:o}")
        assert mode(gw.data_dir) == 0o700
        for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm"):
            assert mode(gw.data_dir / name) == 0o600, name


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: f"umask-{m:03o}")
async def test_exports_are_private_whatever_the_umask(
    harness: Harness, tmp_path: Path, mask: int
) -> None:
    """`gateway export` (a transmission: the form, attachments) and `gateway register
    export` (references and parties of every exchange), each run as its own process."""
    await harness.start("BE-DU", "NL-DU")
    sent, _ = await answered_request(harness, f"EXPORT-{mask:o}")
    config = str(harness.net.gateways["BE-DU"].config)
    message, register = tmp_path / "message.xml", tmp_path / "register.json"
    commands = {
        message: ["export", "--config", config, "--message-id", sent["message_id"]],
        register: ["register", "export", "--config", config],
    }
    for out, argv in commands.items():
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway", *argv, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            umask=mask,
        )
        assert done.returncode == 0, done.stderr
        assert mode(out) == 0o600, out.name


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: f"umask-{m:03o}")
def test_an_opened_health_certificate_written_to_a_file_is_private_whatever_the_umask(
    tmp_path: Path, mask: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Art. 39: the decrypted health certificate is the most sensitive file there is."""
    pki = create_demo_network(tmp_path / "pki", ["BE-DU", "NL-DU"])
    files = pki.authorities["NL-DU"]
    cert = x509.load_pem_x509_certificate(files.health_cert.read_bytes())
    form = form_to_element(FORM_TYPES["health-certificate"], example("health-certificate.json"))
    sealed = seal(form, "explicit-consent", [cert])
    transmission = tmp_path / "health.xml"
    head = header(message_type="health-certificate", sender_role="health-practitioner")
    transmission.write_bytes(etree.tostring(build_transmission(head, sealed)))
    out = tmp_path / "opened.json"
    argv = ["health", "open", str(transmission), "--cert", str(files.health_cert)]
    with umask(mask):
        assert main([*argv, "--key", str(files.health_key), "--out", str(out)]) == 0
    assert mode(out) == 0o600
    assert b"EXAMPLE-DOE" in out.read_bytes()
    assert "EXAMPLE-DOE" not in capsys.readouterr().out, "written to the file only"


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: f"umask-{m:03o}")
async def test_the_folder_adapter_writes_private_folders_and_files_whatever_the_umask(
    harness: Harness, tmp_path: Path, mask: int
) -> None:
    await harness.start("BE-DU", "NL-DU")
    await answered_request(harness, f"FOLDER-{mask:o}")
    root = tmp_path / "case-system" / "folders"
    gw = harness.net.gateways["NL-DU"]
    with umask(mask):
        adapter = FolderAdapter(
            FolderConfig(gw.api_url, gw.tokens["case-officer"], root, signed_xml=True)
        )
        try:
            (adapter.folder("outgoing") / "bad.json").write_text("{not json")
            os.utime(adapter.folder("outgoing") / "bad.json", (0, 0))
            await adapter.run_once()
        finally:
            await adapter.close()
    assert mode(root) == 0o700
    for name in FOLDERS:
        assert mode(root / name) == 0o700, name
    written = [
        p
        for name in ("incoming", "events", "error", ".state")
        for p in (root / name).iterdir()
        if p.name != "bad.json"  # the case system's own file, moved as it was
    ]
    assert {p.parent.name for p in written} == {"incoming", "events", "error", ".state"}
    for path in written:
        assert mode(path) == 0o600, path
