"""Checking the register (Art. 40(9)): the hash chain entry by entry, the head, the signed
checkpoints and the heads of it that peers witnessed. Reads in pages, so a register of
millions of entries verifies in constant memory.

A checkpoint (and a peer's bundle, gateway.service.bundles) counts only when signed by a
certificate the directory pinned as a signing certificate of the authority it names at the
time it was signed (gateway.core.pins). The chain names every checkpoint written (a
`checkpoint` entry), so deleted checkpoints are reported. Entries after the last witnessed
or checkpointed one are only as good as the local chain: the report says how many.
The formats are documented for auditors' own tools in docs/register-format.md."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.checkpoints import checkpoint_payload
from gateway.core.pins import PinHistory
from gateway.core.register import (
    COLUMNS,
    ENTRY_FIELDS,
    GENESIS_HASH,
    ChainWalk,
    RegisterChainError,
    RegisterEntry,
    canonical_row,
    receipt_time,
)
from gateway.pki.anchors import Revocations, TrustAnchors
from gateway.pki.certs import CertificateError, ecdsa_key, fingerprint
from gateway.pki.purposes import DOCUMENT_SIGNING
from gateway.service.audit_pg import chain_verified
from gateway.store.repositories.register import CANONICAL_SQL
from gateway.store.store import Store

PAGE = 10_000

CaCertificates = x509.Certificate | Sequence[x509.Certificate]
"""The network CA, or the whole CA bundle (issuing CA and root)."""


@dataclass(frozen=True)
class Signers:
    """Who could sign for an authority, and when: a certificate the network CA issued for
    document signing, valid then, not revoked by then (nor ever for key compromise), and
    pinned then by the directory as a signing certificate of that very authority."""

    anchors: TrustAnchors
    pins: PinHistory
    revocations: Revocations | None = None

    @classmethod
    def of(
        cls, ca: CaCertificates, pins: PinHistory, revocations: Revocations | None = None
    ) -> Signers:
        certs = (ca,) if isinstance(ca, x509.Certificate) else tuple(ca)
        return cls(TrustAnchors(certs), pins, revocations)

    def refusal(self, cert: x509.Certificate, authority: str, at: datetime) -> str | None:
        """Why a signature `cert` made at `at` does not count as `authority`'s, or None."""
        try:
            self.anchors.check(cert, at, purpose=DOCUMENT_SIGNING, what="the signer certificate")
        except CertificateError as exc:
            return str(exc)
        if self.revocations is not None:
            revoked = self.revocations.refusal_at(cert, at)
            if revoked is not None:
                return f"the signer certificate {revoked}"
        return self.pins.refusal(authority, fingerprint(cert), at)


@dataclass(frozen=True)
class Witness:
    """A head of our register that a peer recorded from one of our acknowledgements, taken
    from the peer's signed bundle (whose signer and signing time are kept as provenance)."""

    sequence: int
    hash: str
    holder: str
    signer: str = ""
    """Fingerprint of the certificate that signed the holder's bundle."""
    signed_at: datetime | None = None

    def to_row(self, recorded_at: datetime) -> dict[str, Any]:
        """As the store keeps it (register_witnesses)."""
        return {
            "holder": self.holder,
            "sequence": self.sequence,
            "hash": self.hash,
            "signer": self.signer,
            "signed_at": self.signed_at or recorded_at,
            "recorded_at": recorded_at,
        }


async def held_witnesses(store: Store) -> list[Witness]:
    """The peers' witnesses of this register the gateway holds (from the bundles that counted
    when `gateway register verify --witnesses` read them)."""
    return [
        Witness(int(r["sequence"]), r["hash"], r["holder"], r["signer"], r["signed_at"])
        for r in await store.register.witnesses()
    ]


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    head_sequence: int
    head_hash: str
    checkpoints: int
    """Signed checkpoints that count (signature, pin and hash all hold)."""
    checkpointed_through: int = 0
    """The last entry a counting checkpoint covers (0: none)."""
    witnesses: int = 0
    """Peer witnesses checked against the chain (each one, not one per sequence)."""
    witnessed_through: int = 0
    """The last entry a peer's witness covers (0: none)."""
    witness_holders: tuple[str, ...] = ()

    @property
    def covered_through(self) -> int:
        return max(self.checkpointed_through, self.witnessed_through)

    @property
    def local_only(self) -> int:
        """Entries that nothing but the local chain vouches for."""
        return max(0, self.entries - self.covered_through)

    def coverage(self) -> str:
        """What vouches for which entries, in words for the CLI and the auditor page."""
        parts = []
        if self.checkpoints:
            parts.append(
                f"entries 1-{self.checkpointed_through} under {self.checkpoints} signed checkpoints"
            )
        else:
            parts.append("no signed checkpoint")
        if self.witnesses:
            parts.append(
                f"entries 1-{self.witnessed_through} witnessed by peers "
                f"({', '.join(self.witness_holders)}; {self.witnesses} witnesses)"
            )
        else:
            parts.append("no peer witness")
        if self.local_only:
            first = self.covered_through + 1
            parts.append(
                f"entries {first}-{self.entries} ({self.local_only:,}) are only as good as "
                "the local chain"
            )
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "head": self.head_hash,
            "checkpoints": self.checkpoints,
            "checkpointed_through": self.checkpointed_through,
            "witnesses": self.witnesses,
            "witnessed_through": self.witnessed_through,
            "witness_holders": list(self.witness_holders),
            "local_only": self.local_only,
            "coverage": self.coverage(),
        }


def overdue_checkpoint(report: VerifyReport, every: int) -> str | None:
    """A checkpoint missing at the end of an intact chain: the gateway signs one after every
    entry whose sequence is a multiple of `every` (register.checkpoint_every) and names it in
    the next entry, so a chain that runs `every` entries past its last checkpoint was
    probably rebuilt without them (or the setting was raised since). A warning, not a
    verdict: only the peers' witnesses can tell a rebuilt history."""
    due = report.checkpointed_through + every + (1 if every == 1 else 0)
    if every < 1 or report.entries < due:
        return None
    return (
        f"no signed checkpoint after entry {report.checkpointed_through} although "
        f"register.checkpoint_every is {every} and the register has {report.entries:,} "
        "entries: checkpoints may have been removed with a rebuilt chain"
    )


def check_checkpoint(row: dict[str, Any], authority: str, signers: Signers) -> None:
    """Raise RegisterChainError unless `row` is a checkpoint signed, at its time, by a
    signing certificate pinned for `authority` then."""
    seq = int(row["sequence"])
    try:
        cert = x509.load_pem_x509_certificate(row["signer"].encode())
        signature = base64.b64decode(row["signature"], validate=True)
    except (ValueError, TypeError) as exc:
        raise RegisterChainError(seq, "checkpoint cannot be read") from exc
    key = ecdsa_key(cert)
    try:
        if key is None:
            raise InvalidSignature
        key.verify(
            signature,
            checkpoint_payload(authority, seq, row["hash"], row["time"]),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature as exc:
        raise RegisterChainError(seq, "checkpoint signature does not verify") from exc
    refusal = signers.refusal(cert, authority, row["time"])
    if refusal is not None:
        raise RegisterChainError(seq, f"checkpoint does not count: {refusal}")


def _witness_fault(witnesses: Sequence[Witness], entry_hash: str) -> str | None:
    """Why the witnesses of one entry do not all hold what the chain holds, or None. Two that
    disagree with each other are named as such: at most one can be this register's, so either
    a witness is false or our history forked (one head shown to one peer, another to another)."""
    wrong = [w for w in witnesses if w.hash != entry_hash]
    if not wrong:
        return None
    right = sorted({w.holder for w in witnesses if w.hash == entry_hash})
    claims: dict[str, set[str]] = {}
    for w in wrong:
        claims.setdefault(w.hash, set()).add(w.holder)
    if right or len(claims) > 1:
        said = [f"{', '.join(right)} witnessed the chain's hash"] if right else []
        said += [f"{', '.join(sorted(h))} witnessed {d[:16]}..." for d, h in sorted(claims.items())]
        return "witnesses disagree: " + "; ".join(said)
    return f"contradicts the head witnessed by {', '.join(sorted(claims[wrong[0].hash]))}"


_PREV, _HASH = COLUMNS.index("prev_hash"), COLUMNS.index("hash")


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
        values[12],
    )


async def _canonical_page(store: Store, after: int) -> Sequence[tuple[int, str, str, str | bytes]]:
    """(sequence, prev_hash, hash, canonical text or bytes) of the next page of the
    register; text comes from the database's fast path and is encoded by the caller."""
    fast = await store.register.canonical_rows(after, PAGE)
    if fast is not None:
        return fast
    rows = await store.register.rows(after, PAGE)
    return [(r[0], r[_PREV], r[_HASH], _encode(r)) for r in rows]


async def _python_canonical(store: Store, sequence: int) -> bytes:
    rows = await store.register.rows(sequence - 1, 1)
    if not rows or rows[0][0] != sequence:
        raise RegisterChainError(sequence, "missing")
    return _encode(rows[0])


PARALLEL_MIN = 200_000


def _hash_range(path: str, first: int, last: int, wanted: frozenset[int]) -> Any:
    """Worker process: check entries first..last of a SQLite register on its own read-only
    connection: consecutive sequences, each hash over (its stored previous hash, canonical
    form), each link. Returns ("ok", first prev_hash, last hash, {wanted seq: hash}) or
    ("bad", sequence): the parent then lets the sequential check name the fault."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        walk = ChainWalk(first - 1, None)
        found: dict[int, str] = {}
        rows = db.execute(CANONICAL_SQL, (first - 1, last - first + 1)).fetchall()
        i = walk.run(rows, 0, wanted)
        while i < len(rows):
            sequence, prev_hash, entry_hash, canonical = rows[i]
            walk.step(sequence, prev_hash, entry_hash, canonical.encode())
            if sequence in wanted:
                found[sequence] = entry_hash
            i = walk.run(rows, i + 1, wanted)
        if walk.sequence != last:
            return ("bad", walk.sequence + 1)
        return ("ok", walk.first_prev, walk.head, found)
    except RegisterChainError as exc:
        return ("bad", exc.sequence)
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
    *,
    pins: PinHistory | None = None,
    revocations: Revocations | None = None,
) -> VerifyReport:
    """Raise RegisterChainError naming the first bad sequence number, else report. Heads that
    peers witnessed must be in the chain: a history rewritten with a valid-looking chain
    (even with re-signed checkpoints) still contradicts what the peers hold. Every witness is
    checked, and witnesses that disagree with each other are reported as such. `pins`: the
    directory history (default: the one the store recorded). A large SQLite register is
    checked in parallel processes first; any doubt falls back to the sequential check, which
    alone names faults."""
    history = pins if pins is not None else PinHistory(await store.trust.pin_history())
    signers = Signers.of(ca, history, revocations)
    witnessed: dict[int, list[Witness]] = {}
    for w in witnesses:
        witnessed.setdefault(w.sequence, []).append(w)
    # Read in this order, as the gateway may be writing: a checkpoint entry commits with its
    # row, so each entry read has its row; each row read is at or below the head read next.
    named = await store.register.checkpoint_entries()
    checkpoints = {int(c["sequence"]): c for c in await store.register.checkpoints()}
    for row in checkpoints.values():
        check_checkpoint(row, authority, signers)
    head_seq, head_hash = await store.register.head()
    seq, head = await _chain(
        store, head_seq, head_hash, checkpoints, witnessed, progress, parallel_min
    )
    _named_checkpoints_present(named, checkpoints, seq)
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
    return VerifyReport(
        seq,
        seq,
        head,
        len(checkpoints),
        checkpointed_through=max(checkpoints, default=0),
        witnesses=len(witnesses),
        witnessed_through=max(witnessed, default=0),
        witness_holders=tuple(sorted({w.holder for w in witnesses})),
    )


def _named_checkpoints_present(
    named: Sequence[tuple[int, dict[str, Any]]], checkpoints: dict[int, Any], upto: int
) -> None:
    """Every checkpoint the (verified) chain says was written is still there, unchanged."""
    missing: list[tuple[int, int]] = []
    for at, details in named:
        if at > upto:
            break
        sequence = details.get("sequence")
        if not isinstance(sequence, int):
            raise RegisterChainError(at, "a checkpoint entry names no checkpoint")
        row = checkpoints.get(sequence)
        if row is None:
            missing.append((sequence, at))
        elif row["hash"] != details.get("hash"):
            raise RegisterChainError(sequence, f"differs from the checkpoint entry {at} names")
    if missing:
        sequence, at = missing[0]
        raise RegisterChainError(
            sequence,
            f"signed checkpoint missing (deleted): entry {at} names it; {len(missing)} of the "
            f"{len(named)} checkpoints the chain names are gone",
        )


async def _parallel_agrees(
    store: Store,
    head_seq: int,
    head_hash: str,
    checkpoints: dict[int, Any],
    witnessed: dict[int, list[Witness]],
    parallel_min: int,
) -> bool:
    """Whether the parallel check of a large SQLite register (raw entries hashed in worker
    processes) found the whole chain sound, ending at `head_hash` and holding what every
    checkpoint and witness fixes. False means: decide sequentially (it names the entry)."""
    path = store.sqlite_path()
    beyond_head = [s for s in (*checkpoints, *witnessed) if s > head_seq]
    if path is None or head_seq < parallel_min or beyond_head:
        return False
    wanted = frozenset(checkpoints) | frozenset(witnessed)
    fast = await _verify_parallel(path, head_seq, wanted, max(2, os.cpu_count() or 2))
    if fast is None:
        return False
    head, found = fast
    return (
        head == head_hash
        and all(found.get(s) == cp["hash"] for s, cp in checkpoints.items())
        and all(found.get(s) == w.hash for s, ws in witnessed.items() for w in ws)
    )


def _check_fixed(
    sequence: int,
    entry_hash: str,
    checkpoints: dict[int, Any],
    witnessed: dict[int, list[Witness]],
) -> None:
    """The entry holds what its signed checkpoint and its witnesses fix, if it has any."""
    if sequence in checkpoints and checkpoints[sequence]["hash"] != entry_hash:
        raise RegisterChainError(sequence, "differs from its signed checkpoint")
    if sequence in witnessed:
        fault = _witness_fault(witnessed[sequence], entry_hash)
        if fault is not None:
            raise RegisterChainError(sequence, fault)


async def _chain(
    store: Store,
    head_seq: int,
    head_hash: str,
    checkpoints: dict[int, Any],
    witnessed: dict[int, list[Witness]],
    progress: Callable[[int, int], None] | None,
    parallel_min: int,
) -> tuple[int, str]:
    """Check every entry, its link, and the hashes that checkpoints and witnesses fix; the
    last (sequence, hash) reached."""
    if await _parallel_agrees(store, head_seq, head_hash, checkpoints, witnessed, parallel_min):
        if progress is not None:
            progress(head_seq, head_seq)
        return head_seq, head_hash
    fixed = checkpoints.keys() | witnessed.keys()
    if store.postgres:  # the server walks the entries (gateway.service.audit_pg)

        async def decide(walk: ChainWalk, entry: tuple[int, str, str]) -> None:
            await _step(store, walk, entry, None, checkpoints, witnessed)

        return await chain_verified(store, head_seq, fixed, decide, progress, PAGE)
    walk = ChainWalk()
    # The next page is read (in the driver's thread) while this one is being checked.
    pending = asyncio.ensure_future(_canonical_page(store, 0))
    try:
        while True:
            page = await pending
            if not page:
                break
            pending = asyncio.ensure_future(_canonical_page(store, page[-1][0]))
            i = walk.run(page, 0, fixed)
            while i < len(page):
                canonical = page[i][3]
                text = canonical.encode() if isinstance(canonical, str) else canonical
                await _step(store, walk, page[i][:3], text, checkpoints, witnessed)
                i = walk.run(page, i + 1, fixed)
            if progress is not None:
                progress(walk.sequence, head_seq)
    finally:
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pending
    return walk.sequence, walk.head or GENESIS_HASH


async def _step(
    store: Store,
    walk: ChainWalk,
    entry: tuple[int, str, str],
    fast: bytes | None,
    checkpoints: dict[int, Any],
    witnessed: dict[int, list[Witness]],
) -> None:
    """Move `walk` past an entry (sequence, prev_hash, hash) a fast path stopped at: its link,
    its hash over `fast` (the database's encoding) or else the Python one, which decides."""
    sequence, prev_hash, entry_hash = entry
    walk.link(sequence, prev_hash)
    digest = None if fast is None else walk.digest(entry_hash, fast)
    if digest is None:
        digest = walk.digest(entry_hash, await _python_canonical(store, sequence))
        if digest is None:
            raise RegisterChainError(sequence, "content does not match its hash (edited)")
    _check_fixed(sequence, entry_hash, checkpoints, witnessed)
    walk.advance(sequence, entry_hash, digest)


CSV_COLUMNS = [*(name for name, _ in ENTRY_FIELDS), "hash", "receipt_time"]
"""The entry's fields and hash, then the legal receipt time it records (derived, not chained:
gateway.core.register.receipt_time)."""


def entries_csv(entries: list[RegisterEntry]) -> str:
    """Register entries as CSV (details as canonical JSON), for auditors' spreadsheets."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for entry in entries:
        row = entry.to_dict()
        writer.writerow(
            {
                **row,
                "details": json.dumps(row["details"], sort_keys=True),
                "receipt_time": receipt_time(entry) or "",
            }
        )
    return out.getvalue()
