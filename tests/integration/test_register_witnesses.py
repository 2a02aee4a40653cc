"""Peers' witnesses of a register on running gateways (Art. 40(9)): a witness signed with a
key that was pinned then still counts after the key was rotated out, and the auditor page's
integrity badge checks the witnesses the gateway holds."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import load_config
from gateway.pki.certs import fingerprint, load_certificate
from gateway.service.bundles import export_bundle
from gateway.service.trust import load_signer_files
from tests.integration.conftest import Harness, answered_request, make_harness
from tests.pki_helpers import publish, renew
from tests.postgres import suite_database
from tests.register_forgery import change_peer_of_entry_2, forge


async def wait_until(predicate: Any, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def cli(*argv: str) -> int:
    """A `gateway ...` command, as an operator runs it next to the running gateways."""
    return await asyncio.to_thread(main, list(argv))


async def at_version(h: Harness, version: int) -> None:
    async def reached() -> bool:
        return all(h.ctx(c).trust.state.directory.version == version for c in ("BE-DU", "NL-DU"))

    await wait_until(reached)


@pytest.mark.attack
async def test_a_witness_signed_by_a_certificate_pinned_then_but_since_rotated_still_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NL-DU's bundle, signed before its signing key was rotated out of the directory, still
    witnesses BE-DU's register (the store kept every directory version's pins); the old key
    cannot vouch for anything after it was unpinned; NL-DU's own checkpoints signed with it
    still count. An auditor re-checks offline with the directory files of that time."""
    h = await make_harness(tmp_path)
    pki = h.net.pki
    nl_cfg = h.net.gateways["NL-DU"].config
    nl_cfg.write_text(nl_cfg.read_text() + "\n[register]\ncheckpoint_every = 3\n")
    versions = tmp_path / "directories"
    versions.mkdir()
    shutil.copy(pki.directory, versions / "v1.xml")
    files = pki.authorities["NL-DU"]
    old_signer = load_signer_files(files.signing_cert, files.signing_key)
    bundle, late = tmp_path / "nl.bundle", tmp_path / "late.bundle"
    try:
        await h.start("BE-DU", "NL-DU")
        for i in range(2):
            await answered_request(h, f"ROT-{i}")
        assert await cli("register", "export", "--config", str(nl_cfg), "--out", str(bundle)) == 0
        signed_at = datetime.now(UTC)

        _, sig_cert, new_signing = renew(pki, "NL-DU", "signing", tmp_path / "renewed")
        sig_key = sig_cert.with_suffix(".key")

        def pin_new(data: dict[str, Any]) -> None:
            nl = next(a for a in data["authorities"] if a["code"] == "NL-DU")
            nl["signing_fingerprints"].append(fingerprint(new_signing))

        publish(pki, pin_new)
        await at_version(h, 2)
        shutil.copy(pki.directory, versions / "v2.xml")
        sig_key.replace(files.signing_key)
        sig_cert.replace(files.signing_cert)

        async def renewed() -> bool:
            current = h.ctx("NL-DU").trust.state.signer.certificate
            return fingerprint(current) == fingerprint(new_signing)

        await wait_until(renewed)
        # Directory times are whole seconds (the version before one stays in force during
        # the second after it was published): unpin more than a second after the bundle.
        while datetime.now(UTC) < signed_at + timedelta(seconds=1.1):
            await asyncio.sleep(0.05)

        def unpin_old(data: dict[str, Any]) -> None:
            nl = next(a for a in data["authorities"] if a["code"] == "NL-DU")
            nl["signing_fingerprints"].remove(fingerprint(old_signer.certificate))

        publish(pki, unpin_old)
        unpinned_at = datetime.now(UTC)
        await at_version(h, 3)
        shutil.copy(pki.directory, versions / "v3.xml")
        await answered_request(h, "ROT-after")
        while datetime.now(UTC) < unpinned_at + timedelta(seconds=1.1):
            await asyncio.sleep(0.05)
        # Whoever still holds the old key signs a bundle now: it no longer speaks for NL-DU.
        late.write_bytes(await export_bundle(h.ctx("NL-DU").store, "NL-DU", old_signer))
    finally:
        await h.close()

    be_cfg = h.net.gateways["BE-DU"].config
    capsys.readouterr()
    assert await cli("register", "verify", "--config", str(be_cfg), "--witnesses", str(bundle)) == 0
    out = capsys.readouterr().out
    assert f"witness bundle {bundle}: NL-DU's register (signed " in out, out
    assert "witnessed by peers (NL-DU;" in out and "intact" in out, out
    witnesses = ["--witnesses", str(late)]
    assert await cli("register", "verify", "--config", str(be_cfg), *witnesses) == 0
    out = capsys.readouterr().out
    assert f"witness bundle {late}: does not count: not NL-DU's register: the certificate was " in (
        out
    )
    assert (
        "not pinned for NL-DU at" in out
        and "(directory version 3); directory version 2 pinned it" in out
    ), out

    assert await cli("register", "verify", "--config", str(nl_cfg)) == 0
    out = capsys.readouterr().out
    assert "intact" in out and "signed checkpoints" in out and "warning" not in out, out
    assert old_signer.certificate != load_certificate(files.signing_cert)

    ca = ["--ca", str(pki.ca_cert)]
    history = ["--directory", *(str(versions / f"v{v}.xml") for v in (1, 2, 3))]
    assert await cli("register", "verify-bundle", str(bundle), *ca, *history) == 0
    assert "valid: register of NL-DU" in capsys.readouterr().out
    only_now = ["--directory", str(versions / "v3.xml")]
    assert await cli("register", "verify-bundle", str(bundle), *ca, *only_now) == 1
    assert "not a signing certificate pinned for NL-DU" in capsys.readouterr().out
    assert await cli("register", "verify-bundle", str(late), *ca, *history) == 1


@pytest.mark.attack
async def test_the_auditor_pages_integrity_badge_uses_the_peer_witnesses_the_gateway_holds(
    tmp_path: Path,
) -> None:
    """Once BE-DU's administrator has had NL-DU's bundle checked (`register verify
    --witnesses`), BE-DU holds NL-DU's witnesses: the integrity badge checks them on every
    verification, says what they cover, and catches a history rewritten consistently."""
    h = await make_harness(tmp_path)
    be_cfg, nl_cfg = h.net.gateways["BE-DU"].config, h.net.gateways["NL-DU"].config
    bundle = tmp_path / "nl.bundle"
    try:
        await h.start("BE-DU", "NL-DU")
        for i in range(2):
            await answered_request(h, f"BADGE-{i}")
        auditor = h.api("BE-DU", "auditor")
        before = await auditor.register_integrity()
        assert before["intact"] and before["witnesses"] == 0, before
        assert "no peer witness" in before["coverage"]

        assert await cli("register", "export", "--config", str(nl_cfg), "--out", str(bundle)) == 0
        assert (
            await cli("register", "verify", "--config", str(be_cfg), "--witnesses", str(bundle))
            == 0
        )
        badge = await auditor.register_integrity()
        assert badge["intact"] and badge["witnesses"] >= 2, badge
        assert badge["witness_holders"] == ["NL-DU"]
        assert badge["witnessed_through"] > 0
        assert badge["local_only"] == badge["entries"] - max(
            badge["witnessed_through"], badge["checkpointed_through"]
        )
        assert (
            f"entries 1-{badge['witnessed_through']} witnessed by peers (NL-DU;"
            in (badge["coverage"])
        )
        if suite_database() != "sqlite":
            return  # the forger below edits a SQLite file
        await h.stop("BE-DU")
        path = load_config(be_cfg).database_url.split("///", 1)[1]
        with sqlite3.connect(path) as db:
            forge(db, "BE-DU", change_peer_of_entry_2)
        await h.start("BE-DU")
        after = await h.api("BE-DU", "auditor").register_integrity()
        assert not after["intact"], after
        assert after["reason"] == "contradicts the head witnessed by NL-DU", after
        assert after["witnesses"] == badge["witnesses"]
    finally:
        await h.close()
