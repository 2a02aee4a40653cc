"""Checking the register (Art. 40(9)): the hash chain entry by entry, the head, and the
signed checkpoints. Reads in pages, so a register of millions of entries verifies in
constant memory."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.checkpoints import checkpoint_payload
from gateway.core.register import (
    GENESIS_HASH,
    RegisterChainError,
    RegisterEntry,
    canonical_row,
    verify_chain,
)
from gateway.pki.anchors import TrustAnchors
from gateway.store.store import CANONICAL_SQL, Store
from gateway.xml.signature import Signer

PAGE = 10_000


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    head_sequence: int
    head_hash: str
    checkpoints: int


CaCertificates = x509.Certificate | Sequence[x509.Certificate]
"""The network CA, or the whole CA bundle (issuing CA and root)."""


def _check_checkpoint(row: dict[str, Any], authority: str, ca: CaCertificates) -> None:
    seq = int(row["sequence"])
    try:
        cert = x509.load_pem_x509_certificate(row["signer"].encode())
        _issued_by(cert, ca)
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("checkpoint signer is not an ECDSA key")
        key.verify(
            base64.b64decode(row["signature"]),
            checkpoint_payload(authority, seq, row["hash"], row["time"]),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError) as exc:
        raise RegisterChainError(seq, "checkpoint signature does not verify") from exc


def _encode(values: tuple[Any, ...]) -> bytes:
    details = values[11]
    return canonical_row(
        values[0],
        values[1],
        values[2],
        values[3],
        values[4],
        values[5],
        values[6],
        values[7],
        values[8],
        values[9],
        values[10],
        {} if details == "{}" else orjson.loads(details),
    )


async def _canonical_page(store: Store, after: int) -> Sequence[tuple[int, str, str, str | bytes]]:
    """(sequence, prev_hash, hash, canonical text or bytes) of the next page of the
    register; text comes from the database's fast path and is encoded by the caller."""
    fast = await store.register_canonical_rows(after, PAGE)
    if fast is not None:
        return fast
    return [(r[0], r[12], r[13], _encode(r)) for r in await store.register_rows(after, PAGE)]


async def _python_canonical(store: Store, sequence: int) -> bytes:
    rows = await store.register_rows(sequence - 1, 1)
    if not rows or rows[0][0] != sequence:
        raise RegisterChainError(sequence, "missing")
    return _encode(rows[0])


@dataclass(frozen=True)
class Witness:
    """A head of our register that a peer recorded from one of our acknowledgements."""

    sequence: int
    hash: str
    holder: str


def witnesses_in_bundle(data: bytes, ca: CaCertificates, about: str) -> list[Witness]:
    """The heads of `about`'s register that a peer's verified bundle has witnessed."""
    verify_bundle(data, ca)
    report_body = _bundle_body(data, ca)
    out = []
    for e in report_body["entries"]:
        head = e.get("details", {}).get("peer_register_head")
        if e.get("event") == "delivered" and e.get("peer") == about and head:
            out.append(Witness(int(head["sequence"]), str(head["hash"]), report_body["authority"]))
    return out


PARALLEL_MIN = 200_000


def _hash_range(path: str, first: int, last: int, wanted: frozenset[int]) -> Any:
    """Worker process: check entries first..last of a SQLite register on its own read-only
    connection: consecutive sequences, each hash over (its stored previous hash, canonical
    form), each link. Returns ("ok", first prev_hash, last hash, {wanted seq: hash}) or
    ("bad", sequence): the parent then lets the sequential check name the fault."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        expected, first_prev, last_hash = first, None, None
        found: dict[int, str] = {}
        sha256, fromhex = hashlib.sha256, bytes.fromhex
        for sequence, prev_hash, entry_hash, canonical in db.execute(
            CANONICAL_SQL, (first - 1, last - first + 1)
        ):
            if sequence != expected or (last_hash is not None and prev_hash != last_hash):
                return ("bad", expected)
            if sha256(fromhex(prev_hash) + canonical.encode()).hexdigest() != entry_hash:
                return ("bad", sequence)
            if first_prev is None:
                first_prev = prev_hash
            if sequence in wanted:
                found[sequence] = entry_hash
            last_hash, expected = entry_hash, expected + 1
        if expected != last + 1:
            return ("bad", expected)
        return ("ok", first_prev, last_hash, found)
    finally:
        db.close()


async def _verify_parallel(
    path: str, head_seq: int, wanted: frozenset[int], workers: int
) -> tuple[str, dict[int, str]] | None:
    """All entries checked in `workers` processes; the head hash and the hashes at `wanted`
    sequences, or None when anything looks wrong (the sequential check then decides)."""
    size = -(-head_seq // (workers * 4))
    ranges = [(a, min(head_seq, a + size - 1)) for a in range(1, head_seq + 1, size)]
    loop = asyncio.get_running_loop()
    # spawn, not fork: the gateway process runs threads (the database driver's)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, _hash_range, path, a, b, wanted) for a, b in ranges)
        )
    head, found = GENESIS_HASH, {}
    for result in results:
        if result[0] != "ok" or result[1] != head:
            return None
        head = result[2]
        found.update(result[3])
    return head, found


async def verify_store(
    store: Store,
    authority: str,
    ca: CaCertificates,
    progress: Callable[[int, int], None] | None = None,
    witnesses: Sequence[Witness] = (),
    parallel_min: int = PARALLEL_MIN,
) -> VerifyReport:
    """Raise RegisterChainError naming the first bad sequence number, else report. Heads that
    peers witnessed must be in the chain: a history rewritten with a valid-looking chain
    (even with re-signed checkpoints) still contradicts what the peers hold. A large SQLite
    register is checked in parallel processes first; any doubt falls back to the sequential
    check, which alone names faults."""
    witnessed: dict[int, Witness] = {w.sequence: w for w in witnesses}
    checkpoints = {int(c["sequence"]): c for c in await store.checkpoints()}
    for row in checkpoints.values():
        _check_checkpoint(row, authority, ca)
    head_seq, head_hash = await store.register_head()
    path = store.sqlite_path()
    beyond_head = [s for s in (*checkpoints, *witnessed) if s > head_seq]
    if path is not None and head_seq >= parallel_min and not beyond_head:
        wanted = frozenset(checkpoints) | frozenset(witnessed)
        fast = await _verify_parallel(path, head_seq, wanted, max(2, os.cpu_count() or 2))
        if fast is not None:
            head, found = fast
            consistent = (
                head == head_hash
                and all(found.get(s) == cp["hash"] for s, cp in checkpoints.items())
                and all(found.get(s) == w.hash for s, w in witnessed.items())
            )
            if consistent:
                if progress is not None:
                    progress(head_seq, head_seq)
                return VerifyReport(head_seq, head_seq, head, len(checkpoints))
    seq, head = 0, GENESIS_HASH
    head_bytes = bytes(32)
    sha256 = hashlib.sha256
    # The next page is read (in the driver's thread) while this one is being checked.
    pending = asyncio.ensure_future(_canonical_page(store, seq))
    try:
        while True:
            page = await pending
            if not page:
                break
            pending = asyncio.ensure_future(_canonical_page(store, page[-1][0]))
            for sequence, prev_hash, entry_hash, canonical in page:
                if sequence != seq + 1:
                    raise RegisterChainError(seq + 1, f"missing (next entry found is {sequence})")
                if prev_hash != head:
                    raise RegisterChainError(sequence, "previous-hash link does not match")
                digest = sha256(
                    head_bytes + canonical.encode()
                    if isinstance(canonical, str)
                    else head_bytes + canonical
                )
                if digest.hexdigest() != entry_hash:
                    # The fast SQL encoding may differ from the reference one on old rows:
                    # only the Python encoding decides.
                    digest = sha256(head_bytes + await _python_canonical(store, sequence))
                    if digest.hexdigest() != entry_hash:
                        raise RegisterChainError(
                            sequence, "content does not match its hash (edited)"
                        )
                if sequence in checkpoints and checkpoints[sequence]["hash"] != entry_hash:
                    raise RegisterChainError(sequence, "differs from its signed checkpoint")
                if sequence in witnessed and witnessed[sequence].hash != entry_hash:
                    raise RegisterChainError(
                        sequence, f"contradicts the head witnessed by {witnessed[sequence].holder}"
                    )
                seq, head, head_bytes = sequence, entry_hash, digest.digest()
            if progress is not None:
                progress(seq, head_seq)
    finally:
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pending
    beyond = [w for w in witnesses if w.sequence > seq]
    if beyond:
        raise RegisterChainError(
            seq + 1, f"missing: {beyond[0].holder} witnessed entries up to {beyond[0].sequence}"
        )
    if checkpoints and max(checkpoints) > seq:
        raise RegisterChainError(
            seq + 1,
            "missing: a signed checkpoint covers entries beyond the last one (deleted tail)",
        )
    if (head_seq, head_hash) != (seq, head):
        raise RegisterChainError(
            min(seq, head_seq) + 1,
            "the recorded head does not match the chain (deleted or rewritten tail)",
        )
    return VerifyReport(seq, seq, head, len(checkpoints))


# ---- Offline bundles -------------------------------------------------------------------------

BUNDLE_FORMAT = "dublin-gateway-register-bundle/1"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def export_bundle(
    store: Store,
    authority: str,
    signer: Signer,
    first: int = 1,
    last: int | None = None,
) -> bytes:
    """A self-contained file of entries first..last, the checkpoints among them and the one
    after them, and the signer certificates, signed as a whole with the gateway's signing
    key. The file is canonical JSON: any changed byte breaks it."""
    head_seq, _ = await store.register_head()
    last = head_seq if last is None else min(last, head_seq)
    if first < 1 or last < first:
        raise ValueError(f"nothing to export between {first} and {last}")
    entries: list[dict[str, Any]] = []
    seq = first - 1
    while seq < last:
        page = await store.register_entries(after=seq, limit=min(PAGE, last - seq))
        if not page:
            break
        entries.extend(e.to_dict() for e in page)
        seq = page[-1].sequence
    checkpoints = await store.checkpoints()
    chosen = [c for c in checkpoints if first <= int(c["sequence"]) <= last]
    later = [c for c in checkpoints if int(c["sequence"]) > last][:1]
    body = {
        "format": BUNDLE_FORMAT,
        "authority": authority,
        "first": first,
        "last": last,
        "entries": entries,
        "checkpoints": [
            {
                "sequence": int(c["sequence"]),
                "hash": c["hash"],
                "time": c["time"].isoformat(),
                "signer": c["signer"],
                "signature": c["signature"],
            }
            for c in chosen + later
        ],
    }
    body_bytes = _canonical(body)
    signature = signer.key.sign(body_bytes, ec.ECDSA(hashes.SHA256()))
    return _canonical(
        {
            "body": base64.b64encode(body_bytes).decode(),
            "signature": base64.b64encode(signature).decode(),
            "signer": signer.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        }
    )


@dataclass(frozen=True)
class BundleReport:
    authority: str
    first: int
    last: int
    checkpoints: int


class BundleError(ValueError):
    """The bundle does not verify; the message says where."""


def _issued_by(cert: x509.Certificate, ca: CaCertificates) -> None:
    """`cert` was issued by the network CA (by one CA of the bundle: issuing CA or root)."""
    anchors = TrustAnchors((ca,) if isinstance(ca, x509.Certificate) else tuple(ca))
    if anchors.issuer_of(cert) is None:
        raise BundleError("a signer certificate was not issued by this CA")


def _bundle_body(data: bytes, ca: CaCertificates) -> dict[str, Any]:
    """The bundle's body once its canonical form and signature are checked."""
    try:
        outer = json.loads(data)
        if not isinstance(outer, dict) or _canonical(outer) != data:
            raise BundleError("the bundle is not in its canonical form (bytes were changed)")
        body_bytes = base64.b64decode(outer["body"], validate=True)
        signer = x509.load_pem_x509_certificate(outer["signer"].encode())
        signature = base64.b64decode(outer["signature"], validate=True)
        body = json.loads(body_bytes)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"the bundle cannot be read: {exc}") from exc
    _issued_by(signer, ca)
    key = signer.public_key()
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise BundleError("the bundle signer is not an ECDSA key")
        key.verify(signature, body_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise BundleError("the bundle signature does not verify") from exc
    if not isinstance(body, dict):
        raise BundleError("the bundle body is not an object")
    return body


def verify_bundle(data: bytes, ca: CaCertificates) -> BundleReport:
    """Check a bundle offline against the network CA only."""
    body = _bundle_body(data, ca)
    if body.get("format") != BUNDLE_FORMAT:
        raise BundleError("unknown bundle format")
    authority = body["authority"]
    entries = [
        RegisterEntry(**{**e, "time": datetime.fromisoformat(e["time"])}) for e in body["entries"]
    ]
    if not entries or entries[0].sequence != body["first"] or entries[-1].sequence != body["last"]:
        raise BundleError("the bundle's entries do not span its stated range")
    try:
        verify_chain(entries, entries[0].sequence - 1, entries[0].prev_hash)
    except RegisterChainError as exc:
        raise BundleError(f"sequence {exc.sequence}: {exc.reason}") from exc
    by_seq = {e.sequence: e for e in entries}
    for cp in body["checkpoints"]:
        row = {**cp, "time": datetime.fromisoformat(cp["time"])}
        try:
            _check_checkpoint(row, authority, ca)
        except RegisterChainError as exc:
            raise BundleError(f"checkpoint {exc.sequence}: {exc.reason}") from exc
        entry = by_seq.get(cp["sequence"])
        if entry is not None and entry.hash != cp["hash"]:
            raise BundleError(f"sequence {entry.sequence}: differs from its signed checkpoint")
    return BundleReport(authority, body["first"], body["last"], len(body["checkpoints"]))


CSV_COLUMNS = [
    "sequence",
    "time",
    "event",
    "direction",
    "peer",
    "message_type",
    "reference",
    "message_id",
    "status",
    "reason",
    "digest",
    "details",
    "hash",
]


def entries_csv(entries: list[RegisterEntry]) -> str:
    """Register entries as CSV (details as canonical JSON), for auditors' spreadsheets."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for entry in entries:
        row = entry.to_dict()
        writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
    return out.getvalue()
