"""The register of Art. 40(9) is tamper-evident: `gateway register verify` names the first bad
sequence number for an edited entry, a gap, a deleted tail or a rewritten history."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from gateway.cli import main
from gateway.core.register import GENESIS_HASH, chain_hash, encode_entry, next_entry
from gateway.core.times import utc_text
from gateway.pki.certs import load_certificate, load_private_key
from gateway.service.bundles import BUNDLE_FORMAT, canonical_json
from gateway.store.store import Store
from tests.register_forgery import Key, change_peer_of_entry_2, forge

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
    assert "warning" not in out, "an honest register has every checkpoint it should"


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
            principal=r["principal"],
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
                "BE01REG-1",
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


def test_a_bundle_whose_signer_names_a_curve_no_one_knows_is_not_valid_and_does_not_crash(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Art. 40(9): a changed byte in the signer certificate's curve name (P-256 becomes an
    unknown OID) is a refusal, not an UnsupportedAlgorithm traceback. The flipped-byte test
    above hits this only when its random positions land in the OID."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    config, _ = copy_of(recorded, tmp_path)
    bundle = tmp_path / "register.bundle"
    assert main(["register", "export", "--config", str(config), "--out", str(bundle)]) == 0
    outer = json.loads(bundle.read_bytes())
    der = x509.load_pem_x509_certificate(outer["signer"].encode()).public_bytes(
        serialization.Encoding.DER
    )
    p256 = bytes.fromhex("06082a8648ce3d030107")
    assert der.count(p256) == 1
    unknown = der.replace(p256, p256[:-1] + b"\x1a")
    outer["signer"] = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(unknown).decode()
        + "-----END CERTIFICATE-----\n"
    )
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(canonical_json(outer))
    ca, directory = pki_files(recorded)
    capsys.readouterr()
    assert main(["register", "verify-bundle", str(bad), *ca, *directory]) == 1
    out = capsys.readouterr().out
    assert "NOT valid" in out and "ECDSA key this gateway can read" in out


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
    assert (
        "warning: no signed checkpoint after entry 0 although register.checkpoint_every is 3"
    ) in out
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
    from gateway.service.audit import verify_store
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


# ---- Witnesses, checkpoints and bundles count only when signed by the authority they name --


def key_of(recorded: tuple[Path, Path], name: str) -> Key:
    """A key of the demo network (e.g. "GR-DU/signing", "operator/directory-publisher") and
    its certificate, as gateway.pki.demo wrote them."""
    base = recorded[0].parent.parent / "pki" / name
    key = load_private_key(base.with_suffix(".key"))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Key(key, load_certificate(base.with_suffix(".pem")))


def signing_key(recorded: tuple[Path, Path], code: str) -> Key:
    return key_of(recorded, f"{code}/signing")


def hostile_bundle(
    authority: str, about: str, heads: list[tuple[int, str]], key: Key, exported: datetime
) -> bytes:
    """A register bundle of `authority` whose `delivered` entries say `about` acknowledged
    with these heads, signed with `key` (whoever's it is), in the documented format."""
    entries, seq, head = [], 0, GENESIS_HASH
    for sequence, digest in heads:
        e = next_entry(
            seq,
            head,
            time=exported - timedelta(minutes=1),
            event="delivered",
            direction="out",
            peer=about,
            status="accepted",
            details={"peer_register_head": {"sequence": sequence, "hash": digest}},
        )
        entries.append(e.to_dict())
        seq, head = e.sequence, e.hash
    body = canonical_json(
        {
            "format": BUNDLE_FORMAT,
            "authority": authority,
            "exported": utc_text(exported),
            "first": 1,
            "last": seq,
            "entries": entries,
            "checkpoints": [],
        }
    )
    return canonical_json(
        {
            "body": base64.b64encode(body).decode(),
            "signature": key.sign(body),
            "signer": key.pem,
        }
    )


def heads_witnessed(bundle: Path, about: str) -> dict[int, str]:
    """What an honest peer's bundle says it recorded of `about`'s register."""
    body = json.loads(base64.b64decode(json.loads(bundle.read_bytes())["body"]))
    return {
        int(e["details"]["peer_register_head"]["sequence"]): e["details"]["peer_register_head"][
            "hash"
        ]
        for e in body["entries"]
        if e["event"] == "delivered" and e["peer"] == about
    }


def nl_bundle(recorded: tuple[Path, Path], tmp_path: Path) -> Path:
    """NL-DU's honest bundle: the heads of BE-DU's register it recorded."""
    nl_config = recorded[0].parent.parent / "NL-DU" / "gateway.toml"
    out = tmp_path / "nl.bundle"
    assert main(["register", "export", "--config", str(nl_config), "--out", str(out)]) == 0
    return out


@pytest.mark.attack
def test_an_extra_bundle_signed_with_the_verified_authoritys_own_key_does_not_cover_a_forgery(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BE-DU rewrites its history, re-signs its checkpoints with its own signing key, and
    forges "NL-DU's" (and its own) bundle vouching for the forged heads: neither counts, and
    NL-DU's real witness still contradicts the forgery."""
    config, path = copy_of(recorded, tmp_path)
    honest = nl_bundle(recorded, tmp_path)
    be = signing_key(recorded, "BE-DU")
    with sqlite3.connect(path) as db:
        forged = forge(db, "BE-DU", change_peer_of_entry_2, resign=be)
    heads = [(r["sequence"], r["hash"]) for r in forged]
    now = datetime.now(UTC)
    cover = tmp_path / "cover.bundle"
    cover.write_bytes(hostile_bundle("NL-DU", "BE-DU", heads, be, now))
    own = tmp_path / "own.bundle"
    own.write_bytes(hostile_bundle("BE-DU", "BE-DU", heads, be, now))
    capsys.readouterr()
    code, out = verify(config, capsys)
    assert code == 0, "locally the forgery holds together: " + out
    witnesses = ["--witnesses", str(honest), str(cover), str(own)]
    assert main(["register", "verify", "--config", str(config), *witnesses]) == 1
    out = capsys.readouterr().out
    assert f"witness bundle {cover}: does not count: not NL-DU's register: signed with BE-DU's" in (
        out
    ), out
    assert f"witness bundle {own}: does not count: this is BE-DU's own register" in out
    assert "NOT intact: sequence" in out and "contradicts the head witnessed by NL-DU" in out


@pytest.mark.attack
def test_a_bundle_signed_by_gr_du_claiming_to_be_nl_dus_is_refused_and_fails_no_honest_register(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GR-DU, a member with its real signing key, passes off a bundle as NL-DU's that says
    BE-DU acknowledged with other heads: verify-bundle refuses it, and BE-DU's honest
    register is still intact, the bundle reported as not counting, with the reason."""
    config, _ = copy_of(recorded, tmp_path)
    honest = nl_bundle(recorded, tmp_path)
    head_seq = len(heads_witnessed(honest, "BE-DU")) + 5
    lies = [(s, hashlib.sha256(b"lie %d" % s).hexdigest()) for s in range(1, head_seq)]
    bogus = tmp_path / "bogus.bundle"
    bogus.write_bytes(
        hostile_bundle("NL-DU", "BE-DU", lies, signing_key(recorded, "GR-DU"), datetime.now(UTC))
    )
    ca, directory = pki_files(recorded)
    capsys.readouterr()
    assert main(["register", "verify-bundle", str(bogus), *ca, *directory]) == 1
    out = capsys.readouterr().out
    assert "NOT valid: not NL-DU's register: signed with GR-DU's signing certificate" in out, out
    assert main(["register", "verify-bundle", str(honest), *ca, *directory]) == 0
    assert "valid: register of NL-DU" in capsys.readouterr().out
    witnesses = ["--witnesses", str(honest), str(bogus)]
    assert main(["register", "verify", "--config", str(config), *witnesses]) == 0
    out = capsys.readouterr().out
    assert f"witness bundle {bogus}: does not count: not NL-DU's register: signed with GR-DU's" in (
        out
    )
    assert "intact" in out and "witnessed by peers (NL-DU;" in out, out


@pytest.mark.attack
def test_two_disagreeing_witnesses_are_reported_as_disagreeing(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NL-DU and GR-DU (each with its own pinned key) hold different hashes for one entry of
    BE-DU's register: a false witness or a forked history, never silently the last one."""
    config, _ = copy_of(recorded, tmp_path)
    honest = nl_bundle(recorded, tmp_path)
    seen = heads_witnessed(honest, "BE-DU")
    target = min(seen)
    other = tmp_path / "gr.bundle"
    other.write_bytes(
        hostile_bundle(
            "GR-DU",
            "BE-DU",
            [(target, "ab" * 32)],
            signing_key(recorded, "GR-DU"),
            datetime.now(UTC),
        )
    )
    for order in ([honest, other], [other, honest]):
        capsys.readouterr()
        witnesses = ["--witnesses", *map(str, order)]
        assert main(["register", "verify", "--config", str(config), *witnesses]) == 1
        out = capsys.readouterr().out
        assert f"NOT intact: sequence {target}: witnesses disagree: " in out, out
        assert "NL-DU witnessed the chain's hash; GR-DU witnessed abababababababab..." in out


@pytest.mark.attack
@pytest.mark.parametrize(
    "whose",
    ["be-du-tls", "gr-du-signing", "directory-publisher"],
)
def test_a_checkpoint_signed_with_a_tls_another_authoritys_or_the_publishers_key_does_not_count(
    recorded: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    whose: str,
) -> None:
    """A forger rewrites BE-DU's history and re-signs its checkpoints with a key the network
    CA issued but that cannot sign for BE-DU: the checkpoints do not count."""
    keys = {
        "be-du-tls": "BE-DU/tls",
        "gr-du-signing": "GR-DU/signing",
        "directory-publisher": "operator/directory-publisher",
    }
    config, path = copy_of(recorded, tmp_path)
    with sqlite3.connect(path) as db:
        forge(db, "BE-DU", change_peer_of_entry_2, resign=key_of(recorded, keys[whose]))
    code, out = verify(config, capsys)
    assert code == 1, out
    assert "checkpoint does not count: " in out, out
    if whose == "gr-du-signing":
        assert "signed with GR-DU's signing certificate, not BE-DU's" in out
    else:
        assert "is not issued for this purpose" in out


@pytest.mark.attack
def test_deleting_every_checkpoint_row_is_reported(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, path = copy_of(recorded, tmp_path)
    with sqlite3.connect(path) as db:
        first = db.execute("SELECT min(sequence) FROM register_checkpoints").fetchone()[0]
        named = db.execute("SELECT count(*) FROM register WHERE event = 'checkpoint'").fetchone()
        db.execute("DELETE FROM register_checkpoints")
    code, out = verify(config, capsys)
    assert code == 1, out
    assert f"NOT intact: sequence {first}: signed checkpoint missing (deleted)" in out, out
    assert f"{named[0]} of the {named[0]} checkpoints the chain names are gone" in out


def test_verify_states_what_witnesses_and_checkpoints_cover_and_that_the_rest_is_only_local(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries after the last witnessed head and the last checkpoint are only as good as the
    local chain: verify says which entries are covered by what, and how many are not."""
    config, path = copy_of(recorded, tmp_path)
    honest = nl_bundle(recorded, tmp_path)
    witnessed = max(heads_witnessed(honest, "BE-DU"))
    n = len(heads_witnessed(honest, "BE-DU"))

    async def two_more_entries() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        try:
            for _ in range(2):
                async with store.transaction() as tx:
                    await tx.register.append(
                        time=datetime.now(UTC), event="admin-action", direction="in"
                    )
        finally:
            await store.close()

    asyncio.run(two_more_entries())
    with sqlite3.connect(path) as db:
        checkpointed, count = db.execute(
            "SELECT max(sequence), count(*) FROM register_checkpoints"
        ).fetchone()
        head = db.execute("SELECT sequence FROM register_head").fetchone()[0]
    covered = max(witnessed, checkpointed)
    assert head > covered
    capsys.readouterr()
    assert main(["register", "verify", "--config", str(config), "--witnesses", str(honest)]) == 0
    out = capsys.readouterr().out
    assert (
        f"covered: entries 1-{checkpointed} under {count} signed checkpoints; entries "
        f"1-{witnessed} witnessed by peers (NL-DU; {n} witnesses); entries {covered + 1}-{head} "
        f"({head - covered}) are only as good as the local chain"
    ) in out, out
    # The gateway now holds NL-DU's witnesses: a plain verify checks them too.
    code, out = verify(config, capsys)
    assert code == 0 and f"1-{witnessed} witnessed by peers (NL-DU; {n} witnesses)" in out, out


# ---- An auditor's own tool: docs/register-format.md and nothing else -----------------------


def _tool(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=60, check=False)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _doc_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _doc_entry(e: dict[str, Any]) -> bytes:
    """docs/register-format.md, section 1 (version 2 with a principal, else version 1)."""
    named = e.get("principal")
    return _doc_canonical(
        ({"principal": named, "v": 2} if named is not None else {})
        | {
            "seq": e["sequence"],
            "time": _utc(e["time"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event": e["event"],
            "direction": e["direction"],
            "peer": e["peer"],
            "message_id": e["message_id"],
            "type": e["message_type"],
            "reference": e["reference"],
            "digest": e["digest"],
            "status": e["status"],
            "reason": e["reason"],
            "details": e["details"],
        }
    )


def auditor_check(bundle: Path, ca: Path, directories: list[Path], work: Path) -> str | None:
    """Re-verify a bundle with openssl, xmlsec1, lxml, json and hashlib only, following
    docs/register-format.md; None when it is the register of the authority it names."""
    versions = []
    for d in directories:  # (a)
        if _tool("xmlsec1", "--verify", "--trusted-pem", str(ca), str(d)).returncode != 0:
            return f"directory {d} does not verify"
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        root = etree.parse(str(d), parser).getroot()
        content = json.loads(root.findtext("{urn:eu:dublin:directory:1}Content") or "")
        published = datetime.strptime(root.get("published") or "", "%Y-%m-%dT%H:%M:%SZ")
        pins = {a["code"]: set(a["signing_fingerprints"]) for a in content["authorities"]}
        versions.append((content["version"], published.replace(tzinfo=UTC), pins))
    versions.sort(key=lambda v: v[0])

    def counts(pem: str, signature: str, signed: bytes, authority: str, at: datetime) -> str | None:
        """Sections 5 and 7 (c), (d)."""
        (work / "signer.pem").write_text(pem)
        (work / "sig.der").write_bytes(base64.b64decode(signature))
        (work / "signed").write_bytes(signed)
        signer = str(work / "signer.pem")
        if _tool("openssl", "verify", "-CAfile", str(ca), signer).returncode != 0:
            return "not issued by the network CA"
        ext = _tool(
            "openssl", "x509", "-in", signer, "-noout", "-ext", "extendedKeyUsage", "-dates"
        )
        text = ext.stdout.decode()
        if "1.3.6.1.5.5.7.3.36" not in text and "Document Signing" not in text:
            return "not a document signing certificate"
        dates = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        valid = [
            datetime.strptime(" ".join(dates[k].split()), "%b %d %H:%M:%S %Y GMT").replace(
                tzinfo=UTC
            )
            for k in ("notBefore", "notAfter")
        ]
        if not valid[0] <= at <= valid[1]:
            return "the certificate was not valid then"
        der = _tool("openssl", "x509", "-in", signer, "-outform", "DER").stdout
        newest = max([i for i, v in enumerate(versions) if v[1] <= at], default=0)
        oldest = newest
        while oldest > 0 and at < versions[oldest][1] + timedelta(seconds=1):
            oldest -= 1
        pinned = set().union(*(v[2].get(authority, set()) for v in versions[oldest : newest + 1]))
        if hashlib.sha256(der).hexdigest() not in pinned:
            return f"not pinned for {authority} then"
        pub = _tool("openssl", "x509", "-in", signer, "-pubkey", "-noout").stdout
        (work / "signer.pub").write_bytes(pub)
        dgst = _tool(
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(work / "signer.pub"),
            "-signature",
            str(work / "sig.der"),
            str(work / "signed"),
        )
        return None if dgst.returncode == 0 else "the signature does not verify"

    data = bundle.read_bytes()  # (b)
    outer = json.loads(data)
    if _doc_canonical(outer) != data:
        return "not in canonical form"
    body_bytes = base64.b64decode(outer["body"])
    body = json.loads(body_bytes)
    authority = body["authority"]
    why = counts(outer["signer"], outer["signature"], body_bytes, authority, _utc(body["exported"]))
    if why is not None:
        return "bundle: " + why
    seq, prev, hashes_seen = body["first"] - 1, body["entries"][0]["prev_hash"], {}  # (e)
    for e in body["entries"]:
        digest = hashlib.sha256(bytes.fromhex(prev) + _doc_entry(e)).hexdigest()
        if e["sequence"] != seq + 1 or e["prev_hash"] != prev or digest != e["hash"]:
            return f"entry {e['sequence']} does not chain"
        seq, prev, hashes_seen[seq] = e["sequence"], e["hash"], e["hash"]
    carried = {}
    for cp in body["checkpoints"]:  # (f)
        when = _utc(cp["time"])
        payload = {
            "authority": authority,
            "hash": cp["hash"],
            "sequence": cp["sequence"],
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        signed = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        why = counts(cp["signer"], cp["signature"], signed, authority, when)
        if why is not None:
            return f"checkpoint {cp['sequence']}: {why}"
        if hashes_seen.get(cp["sequence"], cp["hash"]) != cp["hash"]:
            return f"checkpoint {cp['sequence']} differs from its entry"
        carried[cp["sequence"]] = cp["hash"]
    for e in body["entries"]:
        if (
            e["event"] == "checkpoint"
            and carried.get(e["details"]["sequence"]) != e["details"]["hash"]
        ):
            return f"entry {e['sequence']} names a checkpoint the bundle lacks"
    return None


@pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("xmlsec1") is None,
    reason="needs openssl and xmlsec1 (Debian packages; .ci/run installs xmlsec1)",
)
def test_an_auditor_reverifies_a_bundle_with_openssl_xmlsec1_and_hashlib_only(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/register-format.md is precise enough for an auditor's own tool: it accepts the
    bundles the gateway accepts and refuses the forgeries the gateway refuses."""
    config, _ = copy_of(recorded, tmp_path)
    pki = recorded[0].parent.parent / "pki"
    ca, directories = pki / "ca" / "ca.pem", [pki / "directory.xml"]
    honest = tmp_path / "be.bundle"
    assert main(["register", "export", "--config", str(config), "--out", str(honest)]) == 0
    body = json.loads(base64.b64decode(json.loads(honest.read_bytes())["body"]))
    assert body["checkpoints"] and any(e["event"] == "checkpoint" for e in body["entries"])
    assert auditor_check(honest, ca, directories, tmp_path) is None

    forged = tmp_path / "forged.bundle"
    lies = [(1, "ab" * 32)]
    forged.write_bytes(
        hostile_bundle("NL-DU", "BE-DU", lies, signing_key(recorded, "GR-DU"), datetime.now(UTC))
    )
    assert auditor_check(forged, ca, directories, tmp_path) == "bundle: not pinned for NL-DU then"
    edited = json.loads(honest.read_bytes())
    body["entries"][1]["peer"] = "GR-DU"
    body_bytes = canonical_json(body)
    edited["body"] = base64.b64encode(body_bytes).decode()
    edited["signature"] = signing_key(recorded, "BE-DU").sign(body_bytes)
    resigned = tmp_path / "resigned.bundle"
    resigned.write_bytes(canonical_json(edited))
    assert auditor_check(resigned, ca, directories, tmp_path) == "entry 2 does not chain"
    capsys.readouterr()
    for path, verdict in ((honest, 0), (forged, 1), (resigned, 1)):
        argv = ["register", "verify-bundle", str(path), "--ca", str(ca), "--directory"]
        assert main([*argv, *map(str, directories)]) == verdict, capsys.readouterr().out
