"""The hash chain of the transmission register (Art. 40(9)).

Each entry is encoded canonically (sorted-key compact JSON, UTF-8) and its hash is
SHA-256(previous hash || encoding). Entries hold metadata and digests only, never payloads,
so erasing a payload never breaks the chain.

The canonical form has two versions. Version 1 (every entry written before named users, and
every entry no person caused: deliveries, receptions, time limits, checkpoints) has the keys
listed in ENTRY_FIELDS but `principal`. Version 2 is an entry a named user of the internal
API caused (a submission, a consumption, an administrator's action): version 1's keys plus
"principal" (the user's name) and "v": 2. Which version an entry has follows from its
principal being set, so no stored entry changes its bytes, old entries keep verifying, and
adding, removing or changing a principal breaks the entry's hash."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from gateway.core.times import utc_text

GENESIS_HASH = "0" * 64


class Event(StrEnum):
    """What a register entry records: the register's whole vocabulary of events."""

    SUBMITTED = "submitted"  # a case system handed us a form; we signed and queued it
    DELIVERY_FAILED = "delivery-failed"  # one delivery attempt failed (network, TLS, answer)
    DELIVERED = "delivered"  # the peer acknowledged receipt (positively)
    REFUSED_BY_PEER = "refused-by-peer"  # the peer answered with a negative acknowledgement
    ACKNOWLEDGEMENT_REFUSED = "acknowledgement-refused"  # it stated what its signer cannot know
    UNDELIVERABLE = "undeliverable"  # retries exhausted
    RECEIVED = "received"  # a transmission from a peer was accepted
    REJECTED = "rejected"  # a transmission or request from a peer was refused, with a reason
    DEADLINE_OPENED = "deadline-opened"  # a time limit started running
    DEADLINE_CLOSED = "deadline-closed"  # met, or ended by absconding or a responsibility notice
    DEADLINE_EXPIRED = "deadline-expired"  # the limit passed; its consequence applied once
    REMINDER = "reminder"  # a time limit is close for the party that must act
    LATE_REPLY = "late-reply"  # a reply after deemed acceptance/confirmation: stored, flagged
    PAYLOAD_ERASED = "payload-erased"  # a payload erased; the entry and digest remain
    CONFIGURATION_LOADED = "configuration-loaded"  # started with this configuration
    TRUST_RELOADED = "trust-reloaded"  # a new directory, CRL or certificate applied running
    TRUST_RELOAD_REFUSED = "trust-reload-refused"  # a changed one refused, and why
    ADMIN_ACTION = "admin-action"  # an administrator acted through the admin API
    CONSUMED = "consumed"  # the case system took a received message over (inbox)
    REQUEUED = "requeued"  # an administrator had an outbound message delivered again
    CANCELLED = "cancelled"  # an administrator stopped delivering a queued message
    CHECKPOINT = "checkpoint"
    """Names the signed checkpoint just written ({"sequence", "hash", "signer"} in its
    details), so that the chain itself says which checkpoints exist and their deletion is
    detectable."""


EVENTS = frozenset(e.value for e in Event)
DIRECTIONS = frozenset({"in", "out"})


def filed_under(reference: str, case: str | None) -> tuple[str, dict[str, str]]:
    """The reference a message's register entries are filed under, and what they add to
    their details: a form with its own reference that belongs to another case (transfer
    information and health certificates, types 6 and 7 under 1560/2003, 09 and 10 under
    2025/2055) is filed under its case, so that the case's entries show it, with its own
    reference as `form_reference` (issue 16, defect 12)."""
    if case and case != reference:
        return case, {"form_reference": reference}
    return reference, {}


class RegisterChainError(ValueError):
    def __init__(self, sequence: int, reason: str) -> None:
        super().__init__(f"register entry {sequence}: {reason}")
        self.sequence = sequence
        self.reason = reason


@dataclass(frozen=True)
class RegisterEntry:
    """What happened to which transmission, when, with whom. No payload content."""

    sequence: int
    time: datetime
    event: str
    direction: str
    peer: str | None
    message_id: str | None
    message_type: str | None
    reference: str | None
    digest: str | None
    status: str | None
    reason: str | None
    details: dict[str, Any]
    principal: str | None
    """The named user (API principal) whose request caused the entry; None: no person."""
    prev_hash: str
    hash: str

    def canonical(self) -> bytes:
        return encode_entry(
            self.sequence,
            self.time,
            self.event,
            self.direction,
            self.peer,
            self.message_id,
            self.message_type,
            self.reference,
            self.digest,
            self.status,
            self.reason,
            self.details,
            principal=self.principal,
        )

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _FIELDS}
        d["time"] = self.time.isoformat()
        d["details"] = copy.deepcopy(self.details)
        return d


_FIELDS = tuple(f.name for f in fields(RegisterEntry))
ENTRY_FIELDS: tuple[tuple[str, str], ...] = (
    ("sequence", "seq"),
    ("time", "time"),
    ("event", "event"),
    ("direction", "direction"),
    ("peer", "peer"),
    ("message_id", "message_id"),
    ("message_type", "type"),
    ("reference", "reference"),
    ("digest", "digest"),
    ("status", "status"),
    ("reason", "reason"),
    ("details", "details"),
    ("principal", "principal"),
)
"""The register's one field list: (field of RegisterEntry and column of the register table,
its key in the canonical encoding), in the order of canonical_row's arguments; the table's
prev_hash and hash follow. The canonical form, the SQL that reads and encodes rows and the
CSV export derive from it; `principal` is encoded only in version 2 (see the module)."""
CANONICAL_KEYS = tuple(key for _, key in ENTRY_FIELDS)
COLUMNS = (*(name for name, _ in ENTRY_FIELDS), "prev_hash", "hash")
"""Every column of a register row, in order."""


def encode_entry(
    sequence: int,
    time: datetime,
    event: str,
    direction: str,
    peer: str | None,
    message_id: str | None,
    message_type: str | None,
    reference: str | None,
    digest: str | None,
    status: str | None,
    reason: str | None,
    details: dict[str, Any],
    principal: str | None = None,
) -> bytes:
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError("register times must be timezone-aware")
    if event not in EVENTS:
        raise ValueError(f"unknown register event {event!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    return canonical_row(
        sequence,
        utc_text(time),
        event,
        direction,
        peer,
        message_id,
        message_type,
        reference,
        digest,
        status,
        reason,
        details,
        principal,
    )


CANONICAL_VERSION = 2
"""The version of the canonical form an entry with a principal is encoded in."""


def canonical_row(
    sequence: int,
    time_text: str,
    event: str,
    direction: str,
    peer: str | None,
    message_id: str | None,
    message_type: str | None,
    reference: str | None,
    digest: str | None,
    status: str | None,
    reason: str | None,
    details: Any,
    principal: str | None = None,
) -> bytes:
    """Sorted-key compact JSON, UTF-8 unescaped: the bytes each entry's hash covers; version
    1 without a principal, version 2 with one (see the module). The verifier calls this on
    raw rows, millions of times, hence orjson."""
    values = (sequence, time_text, event, direction, peer, message_id, message_type, reference)
    named: dict[str, Any] = dict(
        zip(CANONICAL_KEYS, (*values, digest, status, reason, details, principal), strict=True)
    )
    if principal is None:
        del named["principal"]
    else:
        named["v"] = CANONICAL_VERSION
    return orjson.dumps(named, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def receipt_time(entry: RegisterEntry) -> str | None:
    """The legal time of receipt an entry records (the time the signed acknowledgement
    states), as UTC text, or None: for a transmission we received or refused, the time we
    stated in our acknowledgement (the entry's own time, or `event_time` where the chain moved
    it); for one we sent, the time the receiver's acknowledgement stated
    (details.receipt_time)."""
    stated: Any = None
    if entry.direction == "in" and entry.event in (Event.RECEIVED, Event.REJECTED):
        if entry.message_id is None:
            return None
        stated = entry.details.get("event_time") or entry.time
    elif entry.event in (Event.DELIVERED, Event.REFUSED_BY_PEER):
        stated = entry.details.get("receipt_time")
    if isinstance(stated, str):
        try:
            stated = datetime.fromisoformat(stated)
        except ValueError:
            return None
    if not isinstance(stated, datetime) or stated.tzinfo is None:
        return None
    return utc_text(stated)


def occurred_at(entry: RegisterEntry) -> datetime:
    """When the entry's event happened: its `event_time` where the chain moved the entry's
    own time forward (see entry_time), else its time."""
    stated = entry.details.get("event_time")
    if isinstance(stated, str):
        try:
            moment = datetime.fromisoformat(stated)
        except ValueError:
            return entry.time
        if moment.tzinfo is not None:
            return moment
    return entry.time


def entry_time(
    time: datetime, previous: datetime | None, details: dict[str, Any] | None
) -> tuple[datetime, dict[str, Any] | None]:
    """The time an entry is registered at and its details: never before the previous entry's
    time, so that times never go backwards along the chain (a unit of work that read the
    clock before another one may be appended after it). When moved, the event's own time is
    kept in the details as `event_time`."""
    if previous is None or time >= previous:
        return time, details
    return previous, {**(details or {}), "event_time": time.isoformat()}


def next_entry(
    prev_sequence: int,
    prev_hash: str,
    *,
    time: datetime,
    event: str,
    direction: str,
    peer: str | None = None,
    message_id: str | None = None,
    message_type: str | None = None,
    reference: str | None = None,
    digest: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    principal: str | None = None,
) -> RegisterEntry:
    """The entry that follows (prev_sequence, prev_hash); sequence 1 follows (0, GENESIS_HASH)."""
    draft = RegisterEntry(
        prev_sequence + 1,
        time,
        event,
        direction,
        peer,
        message_id,
        message_type,
        reference,
        digest,
        status,
        reason,
        dict(details or {}),
        principal,
        prev_hash,
        "",
    )
    return replace(draft, hash=chain_hash(prev_hash, draft.canonical()))


VerifiedRow = tuple[int, str, str, bool | None, int | None, str | None]
"""A register row a database checked: (sequence, prev_hash, hash, whether the canonical form
after prev_hash hashes to hash (None: could not tell), and the sequence and hash of the row
before it that the database compared it with, None when it compared it with none)."""


class ChainWalk:
    """Follows a register's hash chain entry by entry, as pages of rows arrive: consecutive
    sequences, each entry linked to the one before, each hash over (the previous hash, the
    entry's canonical form). The register's one chain verifier: the sequential check, each
    worker's range of the parallel check and a bundle's entries all walk with it. Raises
    RegisterChainError naming the first bad sequence."""

    def __init__(self, sequence: int = 0, head: str | None = GENESIS_HASH) -> None:
        """Start after (`sequence`, `head`); with `head` None the first entry's stored link
        is taken as given (a worker's range starts mid-chain: the parent joins the ranges)."""
        self.sequence = sequence
        self.head = head
        self.first_prev: str | None = None
        self._head_bytes = bytes.fromhex(head) if head is not None else b""

    def link(self, sequence: int, prev_hash: str) -> None:
        """The next entry is `sequence` and links to the head reached so far."""
        if sequence != self.sequence + 1:
            raise RegisterChainError(self.sequence + 1, f"missing (next entry found is {sequence})")
        if self.head is None:
            self.head, self.first_prev = prev_hash, prev_hash
            self._head_bytes = bytes.fromhex(prev_hash)
        elif prev_hash != self.head:
            raise RegisterChainError(sequence, "previous-hash link does not match")

    def digest(self, entry_hash: str, canonical: bytes) -> bytes | None:
        """The entry's hash (bytes) if `canonical` after the head hashes to `entry_hash`."""
        digest = hashlib.sha256(self._head_bytes + canonical).digest()
        return digest if digest.hex() == entry_hash else None

    def advance(self, sequence: int, entry_hash: str, digest: bytes) -> None:
        self.sequence, self.head, self._head_bytes = sequence, entry_hash, digest

    def run(
        self,
        rows: Sequence[tuple[int, str, str, str | bytes]],
        start: int = 0,
        stop_at: Container[int] = (),
    ) -> int:
        """Walk `rows` (sequence, prev_hash, hash, canonical text or bytes) from index
        `start` as far as every entry checks out, in one tight loop (millions of entries);
        returns the index of the first row it did not move past: one whose content does not
        hash to its hash (the caller may try the reference encoding, then `step` or fail), or
        one whose sequence is in `stop_at` (the caller checks it itself), or len(rows)."""
        seq, head, head_bytes = self.sequence, self.head, self._head_bytes
        sha256, i = hashlib.sha256, start
        try:
            for i in range(start, len(rows)):
                sequence, prev_hash, entry_hash, canonical = rows[i]
                if sequence in stop_at:
                    return i
                if sequence != seq + 1:
                    raise RegisterChainError(seq + 1, f"missing (next entry found is {sequence})")
                if head is None:
                    head, self.first_prev, head_bytes = (
                        prev_hash,
                        prev_hash,
                        bytes.fromhex(prev_hash),
                    )
                elif prev_hash != head:
                    raise RegisterChainError(sequence, "previous-hash link does not match")
                data = canonical.encode() if isinstance(canonical, str) else canonical
                digest = sha256(head_bytes + data)
                if digest.hexdigest() != entry_hash:
                    return i
                seq, head, head_bytes = sequence, entry_hash, digest.digest()
            return len(rows)
        finally:
            self.sequence, self.head, self._head_bytes = seq, head, head_bytes

    def run_verified(
        self,
        rows: Sequence[VerifiedRow],
        start: int = 0,
        stop_at: Container[int] = (),
    ) -> int:
        """As `run`, for the rows a database checked (VerifiedRow): sequences and links are
        checked here, the hash by the flag. A row that names the entry before it (its lag)
        says the rows between the one walked last and it were left out because they follow
        that one without fault: the walk moves to the lag first, then checks the row against
        it. Returns the index of the first row not moved past: a flag not true (the caller
        decides with the reference encoding), a sequence in `stop_at`, or len(rows). The
        head's bytes are set again for the caller's own `digest`."""
        seq, head, i = self.sequence, self.head, start
        try:
            for i in range(start, len(rows)):
                sequence, prev_hash, entry_hash, matches, lag_sequence, lag_hash = rows[i]
                if lag_sequence is not None and lag_hash is not None:
                    seq, head = lag_sequence, lag_hash
                if sequence in stop_at:
                    return i
                if sequence != seq + 1:
                    raise RegisterChainError(seq + 1, f"missing (next entry found is {sequence})")
                if head is None:
                    head = self.first_prev = prev_hash
                elif prev_hash != head:
                    raise RegisterChainError(sequence, "previous-hash link does not match")
                if not matches:
                    return i
                seq, head = sequence, entry_hash
            return len(rows)
        finally:
            moved = (seq, head) != (self.sequence, self.head)
            self.sequence, self.head = seq, head
            if moved and head is not None:
                self._head_bytes = bytes.fromhex(head)

    def step(self, sequence: int, prev_hash: str, entry_hash: str, canonical: bytes) -> None:
        """Check one entry and move past it."""
        self.link(sequence, prev_hash)
        digest = self.digest(entry_hash, canonical)
        if digest is None:
            raise RegisterChainError(sequence, "content does not match its hash (edited)")
        self.advance(sequence, entry_hash, digest)


def verify_chain(
    entries: Iterable[RegisterEntry], start_sequence: int = 0, start_hash: str = GENESIS_HASH
) -> tuple[int, str]:
    """Check that entries continue the chain from (start_sequence, start_hash) without gap or
    edit; returns the head. Raises RegisterChainError naming the first bad sequence."""
    walk = ChainWalk(start_sequence, start_hash)
    for entry in entries:
        walk.step(entry.sequence, entry.prev_hash, entry.hash, entry.canonical())
    return walk.sequence, start_hash if walk.head is None else walk.head
