"""The register of Art. 40(9) is tamper-evident: `gateway register verify` names the first bad
sequence number for an edited entry, a gap, a deleted tail or a rewritten history."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core.register import chain_hash, encode_entry
from tests.register_forgery import change_peer_of_entry_2, forge

from .conftest import answered_request, make_harness


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A BE-DU register with a few exchanges and a signed checkpoint every 3 entries."""
    import asyncio

    tmp = tmp_path_factory.mktemp("reg")

    async def run() -> tuple[Path, Path]:
        h = await make_harness(tmp)
        for code in ("BE-DU", "NL-DU"):
            cfg = h.net.gateways[code].config
            cfg.write_text(cfg.read_text() + "\n[register]\ncheckpoint_every = 3\n")
        try:
            await h.start("BE-DU", "NL-DU")
            for i in range(3):
                await answered_request(h, f"REG-{i}")
        finally:
            await h.close()
        gw = h.net.gateways["BE-DU"]
        return gw.config, gw.data_dir / "gateway.db"

    return asyncio.run(run())


def copy_of(recorded: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    config, db = recorded
    target = tmp_path / "gateway.db"
    shutil.copy(db, target)
    text = config.read_text()
    new = tmp_path / "gateway.toml"
    new.write_text(f'database_url = "sqlite+aiosqlite:///{target}"\n' + text)
    return new, target


def pki_files(recorded: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    """`--ca` and `--directory` arguments: the network CA and the published directory."""
    pki = recorded[0].parent.parent / "pki"
    return ["--ca", str(pki / "ca" / "ca.pem")], ["--directory", str(pki / "directory.xml")]


def verify(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["register", "verify", "--config", str(config)])
    return code, capsys.readouterr().out


def test_art40_9_intact_register_verifies(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = copy_of(recorded, tmp_path)
    code, out = verify(config, capsys)
    assert code == 0, out
    assert "intact" in out and "signed checkpoints" in out


def _edit(db: sqlite3.Connection) -> int:
    db.execute("UPDATE register SET peer = 'GR-DU' WHERE sequence = 4")
    return 4


def _gap(db: sqlite3.Connection) -> int:
    db.execute("DELETE FROM register WHERE sequence = 5")
    return 5


def _tail(db: sqlite3.Connection) -> int:
    last = db.execute("SELECT max(sequence) FROM register").fetchone()[0]
    keep = 4
    row = db.execute("SELECT hash FROM register WHERE sequence = ?", (keep,)).fetchone()
    db.execute("DELETE FROM register WHERE sequence > ?", (keep,))
    db.execute("UPDATE register_head SET sequence = ?, hash = ?", (keep, row[0]))
    assert last > keep + 3
    return keep + 1


def _rewrite(db: sqlite3.Connection) -> int:
    """Change entry 2 and recompute every later hash and the head, as a forger would."""
    rows = db.execute("SELECT * FROM register ORDER BY sequence").fetchall()
    cols = [d[0] for d in db.execute("SELECT * FROM register LIMIT 1").description]
    from datetime import datetime

    prev = "0" * 64
    for raw in rows:
        r = dict(zip(cols, raw, strict=True))
        if r["sequence"] == 2:
            r["peer"] = "GR-DU"
        canonical = encode_entry(
            r["sequence"],
            datetime.fromisoformat(r["time"] + "+00:00"),
            r["event"],
            r["direction"],
            r["peer"],
            r["message_id"],
            r["message_type"],
            r["reference"],
            r["digest"],
            r["status"],
            r["reason"],
            json.loads(r["details"]),
        )
        h = chain_hash(prev, canonical)
        db.execute(
            "UPDATE register SET peer = ?, prev_hash = ?, hash = ? WHERE sequence = ?",
            (r["peer"], prev, h, r["sequence"]),
        )
        prev = h
    db.execute("UPDATE register_head SET hash = ?", (prev,))
    return 3  # the first checkpoint (entry 3) no longer matches


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_edit, "edited"),
        (_gap, "missing"),
        (_tail, "deleted tail"),
        (_rewrite, "checkpoint"),
    ],
    ids=["edited-entry", "gap", "deleted-tail", "rewritten-history"],
)
def test_art40_9_tampering_is_detected_at_the_first_bad_sequence(
    recorded: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[sqlite3.Connection], int],
    reason: str,
) -> None:
    config, path = copy_of(recorded, tmp_path)
    with sqlite3.connect(path) as db:
        bad = tamper(db)
    code, out = verify(config, capsys)
    assert code == 1, out
    assert f"sequence {bad}:" in out and reason in out, out


def test_register_query_filters_and_formats(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = copy_of(recorded, tmp_path)
    assert (
        main(
            [
                "register",
                "query",
                "--config",
                str(config),
                "--reference",
                "BE1REG-1",
                "--event",
                "received",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["message_type"] for r in rows] == ["take-charge-reply"]
    assert (
        main(
            [
                "register",
                "query",
                "--config",
                str(config),
                "--format",
                "csv",
                "--direction",
                "out",
                "--event",
                "submitted",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("sequence,time,event") and len(lines) == 4
    assert main(["register", "query", "--config", str(config), "--peer", "NL-DU"]) == 0
    assert "delivered" in capsys.readouterr().out


def test_exported_bundle_verifies_offline_and_fails_after_any_byte_changes(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = copy_of(recorded, tmp_path)
    bundle = tmp_path / "register.bundle"
    assert main(["register", "export", "--config", str(config), "--out", str(bundle)]) == 0
    ca, directory = pki_files(recorded)
    capsys.readouterr()
    assert main(["register", "verify-bundle", str(bundle), *ca, *directory]) == 0
    assert "valid" in capsys.readouterr().out
    data = bundle.read_bytes()
    import random

    rng = random.Random(7)
    for position in [
        0,
        1,
        len(data) // 3,
        len(data) // 2,
        len(data) - 2,
        len(data) - 1,
        *rng.sample(range(len(data)), 30),
    ]:
        changed = bytearray(data)
        changed[position] = (changed[position] + 1) % 256
        bad = tmp_path / "bad.bundle"
        bad.write_bytes(bytes(changed))
        assert main(["register", "verify-bundle", str(bad), *ca, *directory]) == 1, position
        assert "NOT valid" in capsys.readouterr().out
    other_ca = tmp_path / "other"
    from gateway.pki.demo import create_demo_network

    other = create_demo_network(other_ca, ["BE-DU"])
    assert (
        main(["register", "verify-bundle", str(bundle), "--ca", str(other.ca_cert), *directory])
        == 2
    ), "the directory is not the other CA's: refused outright"
    other_ca = ["--ca", str(other.ca_cert)]
    other_directory = ["--directory", str(other.directory)]
    assert main(["register", "verify-bundle", str(bundle), *other_ca, *other_directory]) == 1


def test_a_range_of_the_register_exports_and_verifies(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = copy_of(recorded, tmp_path)
    bundle = tmp_path / "part.bundle"
    assert (
        main(
            [
                "register",
                "export",
                "--config",
                str(config),
                "--out",
                str(bundle),
                "--from",
                "4",
                "--to",
                "8",
            ]
        )
        == 0
    )
    ca, directory = pki_files(recorded)
    assert main(["register", "verify-bundle", str(bundle), *ca, *directory]) == 0
    assert "entries 4-8" in capsys.readouterr().out


def test_art40_9_history_rewritten_without_checkpoints_contradicts_peer_witnesses(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forger who rebuilds the whole chain without its checkpoints (the entries naming them
    too) and deletes the witnesses the gateway holds fools a local check, not the heads of our
    register that NL-DU recorded from our acknowledgements."""
    config, path = copy_of(recorded, tmp_path)
    nl_config = recorded[0].parent.parent / "NL-DU" / "gateway.toml"
    witness = tmp_path / "nl.bundle"
    assert main(["register", "export", "--config", str(nl_config), "--out", str(witness)]) == 0
    capsys.readouterr()
    assert main(["register", "verify", "--config", str(config), "--witnesses", str(witness)]) == 0
    assert "peer witnesses" in capsys.readouterr().out
    with sqlite3.connect(path) as db:
        forge(db, "BE-DU", change_peer_of_entry_2, drop_checkpoints=True)
        db.execute("DELETE FROM register_witnesses")
    code, out = verify(config, capsys)
    assert code == 0, "locally the forged chain is consistent: " + out
    assert "no signed checkpoint; no peer witness" in out
    assert "are only as good as the local chain" in out
    assert main(["register", "verify", "--config", str(config), "--witnesses", str(witness)]) == 1
    assert "contradicts the head witnessed by NL-DU" in capsys.readouterr().out


@pytest.mark.parametrize(
    "tamper",
    [None, _edit, _gap, _tail, _rewrite],
    ids=["intact", "edited-entry", "gap", "deleted-tail", "rewritten-history"],
)
async def test_art40_9_parallel_verification_reaches_the_same_verdict(
    recorded: tuple[Path, Path],
    tmp_path: Path,
    tamper: Callable[[sqlite3.Connection], int] | None,
) -> None:
    from gateway.core.register import RegisterChainError
    from gateway.pki.certs import load_certificate
    from gateway.register import verify_store
    from gateway.store.store import Store

    _, path = copy_of(recorded, tmp_path)
    expected = None
    if tamper is not None:
        with sqlite3.connect(path) as db:
            expected = tamper(db)
    ca = load_certificate(recorded[0].parent.parent / "pki" / "ca" / "ca.pem")
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        verdicts = []
        for parallel_min in (1, 10**9):  # worker processes, then the sequential check
            try:
                report = await verify_store(store, "BE-DU", ca, parallel_min=parallel_min)
                verdicts.append(("ok", report.head_hash))
            except RegisterChainError as exc:
                verdicts.append(("bad", exc.sequence))
        assert verdicts[0] == verdicts[1]
        assert verdicts[0][0] == ("ok" if expected is None else "bad")
        if expected is not None:
            assert verdicts[0][1] == expected
    finally:
        await store.close()
