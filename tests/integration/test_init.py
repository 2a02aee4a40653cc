"""`gateway init`, `gateway config check` and `gateway --version`, as an operator of a new
national access point meets them: a skeleton that says what to install and where, a check
that lists everything still missing (exit 1) and passes once it is installed (exit 0), and
one-line errors, never a traceback."""

from __future__ import annotations

import asyncio
import shutil
import stat
from pathlib import Path

from gateway.config import load_config
from gateway.network import build_local_network

from .conftest import Harness, send_request
from .conftest import run_gateway as gateway


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_version() -> None:
    done = gateway("--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("gateway ")


def test_init_writes_a_skeleton_whose_check_lists_what_to_install_then_passes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "be"
    made = gateway("init", "--authority", "BE-DU", "--out", str(out))
    assert made.returncode == 0, made.stderr
    config = out / "gateway.toml"
    assert _mode(config) == 0o640 and _mode(out / "keys") == 0o700
    assert _mode(out / "data") == 0o700
    text = config.read_text()
    assert 'authority = "BE-DU"' in text and "gateway pki request" in text
    assert "[api.tokens]" not in text  # no token in clear

    again = gateway("init", "--authority", "BE-DU", "--out", str(out))
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert "Traceback" not in again.stderr
    bad = gateway("init", "--authority", "belgium", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "authority code" in bad.stderr

    fresh = gateway("config", "check", str(config))
    assert fresh.returncode == 1, fresh.stdout
    for missing in ("certs/ca.pem", "certs/tls.pem", "keys/tls.key", "keys/signing.key"):
        assert f"{out / missing} cannot be read" in fresh.stdout
    assert "tokens.json cannot be read" in fresh.stdout and "directory.xml" in fresh.stdout
    assert "Traceback" not in fresh.stdout + fresh.stderr

    # install what the network operator and the directory publisher send (the demo
    # network's files here), and a user
    net = build_local_network(tmp_path / "net", ["BE-DU", "NL-DU"])
    files = net.pki.authorities["BE-DU"]
    for source, target in (
        (net.pki.ca_cert, "certs/ca.pem"),
        (files.tls_cert, "certs/tls.pem"),
        (files.tls_key, "keys/tls.key"),
        (files.signing_cert, "certs/signing.pem"),
        (files.signing_key, "keys/signing.key"),
        (net.pki.directory, "directory.xml"),
    ):
        shutil.copy(source, out / target)
    added = gateway(
        "users", "add", "ops", "--role", "administrator", "--tokens-file", str(out / "tokens.json")
    )
    assert added.returncode == 0, added.stderr
    ready = gateway("config", "check", str(config))
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "usable" in ready.stdout

    (out / "keys" / "signing.key").chmod(0o644)
    warned = gateway("config", "check", str(config))
    assert warned.returncode == 0 and "WARN file: signing key" in warned.stdout


def test_config_check_names_a_typo_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('authority = "BE-DU"\n[tls]\ncrl_file = "crl.pem"\n')
    done = gateway("config", "check", str(config))
    assert done.returncode == 1
    assert "crl_file" in done.stdout and "Traceback" not in done.stdout + done.stderr
    missing = gateway("config", "check", str(tmp_path / "absent.toml"))
    assert missing.returncode == 1 and "Traceback" not in missing.stdout + missing.stderr


async def test_backup_copies_a_running_store_and_the_restored_copy_verifies(
    harness: Harness, tmp_path: Path
) -> None:
    """`gateway backup` while the gateway runs; the copy, restored in place of the store after
    a stop, holds every entry up to the copy and its register verifies."""
    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    sent = await send_request(be, case_number="BACKUP-1")
    await be.wait_for_state(sent["message_id"], {"delivered"}, within=20)
    config = harness.net.gateways["BE-DU"].config
    url = load_config(config).database_url
    copy = tmp_path / "be-du-backup.db"
    before, _ = await harness.ctx("BE-DU").store.register.head()
    done = await asyncio.to_thread(gateway, "backup", "--config", str(config), "--out", str(copy))
    if not url.startswith("sqlite"):
        assert done.returncode == 2 and "pg_dump" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert _mode(copy) == 0o600
    again = await asyncio.to_thread(gateway, "backup", "--config", str(config), "--out", str(copy))
    assert again.returncode == 2 and "exists" in again.stderr
    await harness.stop("BE-DU")
    store_file = Path(url.split(":///", 1)[1])
    for leftover in store_file.parent.glob(store_file.name + "-*"):
        leftover.unlink()  # the WAL of the old store, not of the copy
    shutil.copy(copy, store_file)
    verified = await asyncio.to_thread(gateway, "register", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout
    entries = int(verified.stdout.split("intact: ")[1].split(" entries")[0].replace(",", ""))
    assert entries >= before  # every entry committed before the copy began
