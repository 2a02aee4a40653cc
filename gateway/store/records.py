"""What the repositories take and give: one dataclass per kind of row, typed, so that a column
name or type that does not exist is an error mypy reports, not a runtime surprise."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypedDict

from gateway.core.conversations import Conversation, State
from gateway.core.policy import PriorMessage
from gateway.core.register import Event, RegisterEntry, filed_under


class DuplicateMessage(Exception):
    """A message with this id is already stored."""


@dataclass(frozen=True)
class NewMessage:
    """A message to store (sent or received)."""

    message_id: str
    direction: str
    peer: str
    message_type: str
    reference: str
    in_reply_to: str | None
    urgent: bool
    created_at: datetime
    stored_at: datetime
    digest: str
    signed_xml: bytes
    state: str
    case_reference: str | None = None
    receipt_time: datetime | None = None
    ack_xml: bytes | None = None
    reason_code: str | None = None
    idempotency_key: str | None = None
    submission_digest: str | None = None
    item_id: str | None = None

    def row(self) -> dict[str, Any]:
        # Its fields are flat: a copy of them, not asdict's deep copy (issue 20 profile).
        values = dict(vars(self))
        values["urgent"] = int(self.urgent)
        return values


class MessageChanges(TypedDict, total=False):
    """The columns of a stored message that change after it is stored."""

    state: str
    ack_xml: bytes | None
    receipt_time: datetime | None
    reason_code: str | None
    reason_text: str | None
    answered_by: str | None
    signed_xml: bytes | None
    consumed_at: datetime | None
    consumed_by: str | None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    message_id: str
    direction: str
    peer: str
    message_type: str
    reference: str
    in_reply_to: str | None
    urgent: bool
    created_at: datetime
    stored_at: datetime
    digest: str
    signed_xml: bytes | None
    state: str
    ack_xml: bytes | None
    receipt_time: datetime | None
    answered_by: str | None
    reason_code: str | None
    reason_text: str | None
    case_reference: str | None
    consumed_at: datetime | None = None
    consumed_by: str | None = None
    idempotency_key: str | None = None
    submission_digest: str | None = None
    item_id: str | None = None

    @property
    def case(self) -> str:
        return self.case_reference or self.reference

    def as_prior(self) -> PriorMessage:
        return PriorMessage(
            message_id=self.message_id,
            direction=self.direction,
            message_type=self.message_type,
            peer=self.peer,
            reference=self.case,
            answered=self.answered_by is not None,
        )


@dataclass(frozen=True)
class OutboxItem:
    message_id: str
    peer: str
    digest: str
    signed_xml: bytes
    attempts: int
    created_at: datetime
    """The transmission's signed creation time: no receipt can be earlier."""
    message_type: str = ""
    reference: str = ""
    case: str = ""
    """The case the message belongs to, when a follow-up form has its own reference."""

    @property
    def filed(self) -> tuple[str, dict[str, str]]:
        """The reference its register entries are filed under and what their details add
        (see gateway.core.register.filed_under)."""
        return filed_under(self.reference, self.case)


@dataclass(frozen=True)
class NewDeadline:
    """A time limit to keep: open (the default) until it is met or expires; a limit met or
    expired already when it is recorded (a reply that was late) is stored closed."""

    case_reference: str
    rule: str
    legal_basis: str
    acting: str
    opened_by: str | None
    started_at: datetime
    due_date: str
    expires_at: datetime
    next_event_at: datetime | None
    state: str = "open"
    consequence: str | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    derogation: str | None = None
    """The decision authorising the acting State to derogate, when the limit took its
    derogating period (2024/1359 Art. 12)."""

    def row(self) -> dict[str, Any]:
        return vars(self) | {"reminders_sent": 0}


@dataclass(frozen=True)
class StoredDeadline:
    id: int
    case_reference: str
    rule: str
    legal_basis: str
    acting: str
    opened_by: str | None
    started_at: datetime
    due_date: str
    expires_at: datetime
    state: str
    next_event_at: datetime | None
    reminders_sent: int
    closed_by: str | None
    closed_at: datetime | None
    consequence: str | None
    derogation: str | None = None


@dataclass(frozen=True)
class TrustMark:
    """The newest version of a piece of published trust material this gateway accepted."""

    version: int
    sha256: str
    accepted_at: datetime


@dataclass(frozen=True)
class Checkpointer:
    """Signs (sequence, head) every `every` entries with the gateway's signing key."""

    authority: str
    every: int
    signer_pem: str
    signer_fingerprint: str
    sign: Callable[[bytes], bytes]


def message_of(row: Any) -> StoredMessage:
    m = row._mapping
    return StoredMessage(**{k: m[k] for k in StoredMessage.__dataclass_fields__})


@dataclass(frozen=True)
class OperationalItem:
    """An item of the operational family as stored (gateway.store.schema.operational_items)."""

    item_id: str
    direction: str
    network: str
    message_type: str
    originator: str
    reference: str
    category: str
    countries: tuple[str, ...]
    handling: dict[str, Any]
    created_at: datetime
    stored_at: datetime
    state: str
    replaces: str | None = None
    forwarded_by: str | None = None
    state_changed_at: datetime | None = None
    id: int = 0

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        del values["id"]
        values["countries"] = "," + ",".join(self.countries) + ","
        values["handling"] = json.dumps(self.handling, sort_keys=True)
        return values


def item_of(row: Any) -> OperationalItem:
    m = dict(row._mapping)
    m["countries"] = tuple(c for c in m["countries"].split(",") if c)
    m["handling"] = json.loads(m["handling"])
    return OperationalItem(**{k: m[k] for k in OperationalItem.__dataclass_fields__})


def deadline_of(row: Any) -> StoredDeadline:
    m = row._mapping
    return StoredDeadline(**{k: m[k] for k in StoredDeadline.__dataclass_fields__})


def conversation_of(m: Any) -> Conversation:
    """The case of a row's mapping (column name -> value)."""
    return Conversation(
        reference=m["reference"],
        kind=m["kind"],
        requesting=m["requesting"],
        requested=m["requested"],
        state=State(m["state"]),
        legal_basis=m["legal_basis"],
        criteria=m["criteria"],
    )


def entry_of(row: Any) -> RegisterEntry:
    m = row._mapping
    return RegisterEntry(
        sequence=m["sequence"],
        time=m["time"],
        event=m["event"],
        direction=m["direction"],
        peer=m["peer"],
        message_id=m["message_id"],
        message_type=m["message_type"],
        reference=m["reference"],
        digest=m["digest"],
        status=m["status"],
        reason=m["reason"],
        details=json.loads(m["details"]),
        principal=m["principal"],
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


class PendingEntry:
    """An entry appended in a unit of work. Its place in the chain (sequence, previous hash,
    hash, and its time, which never goes backwards) is fixed as its batch commits, with the
    other entries of the batch, so that the register head, which every node of an authority
    shares, is locked by a batch only for its last statements (write_head), not from its
    first append to its commit: two nodes locking the head at each batch's first append
    spent their time waiting for each other (2.4 s of lock waits for 1,500 messages; issue 20).
    A read of the register in the unit fixes the places at once (Register.connect).

    Once the unit of work has returned (or a read fixed it), `entry` is the entry as stored,
    and `sequence` and `hash` read it; before, they raise."""

    __slots__ = ("ack", "acknowledge", "checkpointer", "entry", "event", "fields")

    def __init__(
        self,
        time: datetime,
        event: Event,
        fields: dict[str, Any],
        checkpointer: Checkpointer | None,
        acknowledge: Callable[[RegisterEntry], bytes] | None,
    ) -> None:
        self.fields = {"time": time, **fields}
        self.event = event
        self.checkpointer = checkpointer
        self.acknowledge = acknowledge
        self.entry: RegisterEntry | None = None
        self.ack: bytes | None = None

    def sealed(self) -> RegisterEntry:
        if self.entry is None:
            raise RuntimeError(
                "a register entry's place in the chain is fixed when its unit of work commits"
            )
        return self.entry

    @property
    def sequence(self) -> int:
        return self.sealed().sequence

    @property
    def hash(self) -> str:
        return self.sealed().hash

    def acknowledgement(self) -> bytes:
        """The acknowledgement `acknowledge` made once the entry's place was fixed."""
        self.sealed()
        if self.ack is None:
            raise RuntimeError("this entry was appended without an acknowledgement")
        return self.ack
