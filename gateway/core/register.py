"""The hash chain of the transmission register (Art. 40(9)).

Each entry is encoded canonically (sorted-key compact JSON, UTF-8) and its hash is
SHA-256(previous hash || encoding). Entries hold metadata and digests only, never payloads,
so erasing a payload never breaks the chain."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

import orjson

from gateway.core.times import utc_text

GENESIS_HASH = "0" * 64

EVENTS = frozenset(
    {
        "submitted",  # a case system handed us a form; we signed and queued it
        "delivery-failed",  # one delivery attempt failed (network, TLS, bad acknowledgement)
        "delivered",  # the peer acknowledged receipt (positively)
        "refused-by-peer",  # the peer answered with a negative acknowledgement
        "acknowledgement-refused",  # a signed acknowledgement stated what its signer cannot know
        "undeliverable",  # retries exhausted
        "received",  # a transmission from a peer was accepted
        "rejected",  # a transmission from a peer was refused, with a reason code
        "deadline-opened",  # a time limit started running (Art. 29-35, 40)
        "deadline-closed",  # met, or ended by absconding or a responsibility notice
        "deadline-expired",  # the limit passed; its consequence, if any, was applied once
        "reminder",  # a time limit is close for the party that must act
        "late-reply",  # a reply after deemed acceptance/confirmation: stored, flagged
        "payload-erased",  # a payload erased (Art. 40(8)); the entry and digest remain
        "configuration-loaded",  # the gateway started with this configuration and directory
        "trust-reloaded",  # a new directory, CRL or own certificate was applied while running
        "trust-reload-refused",  # a changed directory, CRL or certificate was refused, and why
        "admin-action",  # an administrator acted through the admin API
        "consumed",  # the case system took a received message over (inbox consumption)
        "checkpoint",  # a signed checkpoint of the entry before was written (see CHECKPOINT_EVENT)
    }
)
CHECKPOINT_EVENT = "checkpoint"
"""Names the signed checkpoint just written ({"sequence", "hash", "signer"} in its details), so
that the chain itself says which checkpoints exist and their deletion is detectable."""
DIRECTIONS = frozenset({"in", "out"})


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
        )

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _FIELDS}
        d["time"] = self.time.isoformat()
        d["details"] = copy.deepcopy(self.details)
        return d


_FIELDS = tuple(f.name for f in fields(RegisterEntry))


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
    )


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
) -> bytes:
    """Sorted-key compact JSON, UTF-8 unescaped: the bytes each entry's hash covers. The
    verifier calls this on raw rows, millions of times, hence orjson."""
    return orjson.dumps(
        {
            "seq": sequence,
            "time": time_text,
            "event": event,
            "direction": direction,
            "peer": peer,
            "message_id": message_id,
            "type": message_type,
            "reference": reference,
            "digest": digest,
            "status": status,
            "reason": reason,
            "details": details,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


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
        prev_hash,
        "",
    )
    return replace(draft, hash=chain_hash(prev_hash, draft.canonical()))


def verify_chain(
    entries: Iterable[RegisterEntry], start_sequence: int = 0, start_hash: str = GENESIS_HASH
) -> tuple[int, str]:
    """Check that entries continue the chain from (start_sequence, start_hash) without gap or
    edit; returns the head. Raises RegisterChainError naming the first bad sequence."""
    seq, head = start_sequence, start_hash
    for entry in entries:
        if entry.sequence != seq + 1:
            raise RegisterChainError(seq + 1, f"missing (next entry found is {entry.sequence})")
        if entry.prev_hash != head:
            raise RegisterChainError(entry.sequence, "previous-hash link does not match")
        if chain_hash(head, entry.canonical()) != entry.hash:
            raise RegisterChainError(entry.sequence, "content does not match its hash (edited)")
        seq, head = entry.sequence, entry.hash
    return seq, head
