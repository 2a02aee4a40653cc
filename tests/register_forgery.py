"""A forger's hand on a gateway's SQLite register: rewrite history and make the chain
consistent again, as someone holding the database (and perhaps some key) would."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.checkpoints import checkpoint_payload
from gateway.core.register import GENESIS_HASH, chain_hash, encode_entry


@dataclass(frozen=True)
class Key:
    """A key the forger holds and the certificate that goes with it."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def forge(
    db: sqlite3.Connection,
    authority: str,
    change: Callable[[list[dict[str, Any]]], None],
    *,
    drop_checkpoints: bool = False,
    resign: Key | None = None,
) -> list[dict[str, Any]]:
    """Apply `change` to the rows, drop the checkpoints (entries naming them and their rows)
    if asked, renumber, recompute every hash, the checkpoint entries' details and the head,
    and re-sign the checkpoints with `resign`. Returns the forged rows."""
    cur = db.execute("SELECT * FROM register ORDER BY sequence")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, raw, strict=True)) for raw in cur.fetchall()]
    if drop_checkpoints:
        rows = [r for r in rows if r["event"] != "checkpoint"]
        db.execute("DELETE FROM register_checkpoints")
    change(rows)
    renumbered = {r["sequence"]: i + 1 for i, r in enumerate(rows)}
    prev = GENESIS_HASH
    hashes_by_seq: dict[int, str] = {}
    for i, r in enumerate(rows):
        r["sequence"] = i + 1
        details = json.loads(r["details"])
        if r["event"] == "checkpoint":
            details["sequence"] = renumbered[details["sequence"]]
            details["hash"] = hashes_by_seq[details["sequence"]]
            r["details"] = json.dumps(details, sort_keys=True, separators=(",", ":"))
        canonical = encode_entry(
            r["sequence"],
            _time(r["time"]),
            r["event"],
            r["direction"],
            r["peer"],
            r["message_id"],
            r["message_type"],
            r["reference"],
            r["digest"],
            r["status"],
            r["reason"],
            details,
            principal=r["principal"],
        )
        r["prev_hash"], r["hash"] = prev, chain_hash(prev, canonical)
        prev = hashes_by_seq[r["sequence"]] = r["hash"]
    db.execute("DELETE FROM register")
    db.executemany(
        f"INSERT INTO register ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [tuple(r[c] for c in cols) for r in rows],
    )
    db.execute("UPDATE register_head SET sequence = ?, hash = ?", (len(rows), prev))
    for seq, when in db.execute("SELECT sequence, time FROM register_checkpoints").fetchall():
        new = renumbered[seq]
        values: tuple[Any, ...] = (new, hashes_by_seq[new])
        if resign is not None:
            payload = checkpoint_payload(authority, new, hashes_by_seq[new], _time(when))
            values += (resign.pem, resign.sign(payload))
        else:
            values += tuple(
                db.execute(
                    "SELECT signer, signature FROM register_checkpoints WHERE sequence = ?", (seq,)
                ).fetchone()
            )
        db.execute(
            "UPDATE register_checkpoints SET sequence = ?, hash = ?, signer = ?, signature = ? "
            "WHERE sequence = ?",
            (*values, seq),
        )
    return rows


def change_peer_of_entry_2(rows: list[dict[str, Any]]) -> None:
    """The lie: entry 2 was with GR-DU, not NL-DU."""
    rows[1]["peer"] = "GR-DU"
