"""Table definitions used by queries. Alembic migrations (store/migrations) create them; a
test checks that the migrated database matches this metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no zones), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("direction", String(3), nullable=False),
    Column("peer", String(16), nullable=False),
    Column("message_type", String(64), nullable=False),
    Column("reference", String(96), nullable=False),
    Column("in_reply_to", String(36), nullable=True),
    Column("urgent", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("signed_xml", LargeBinary, nullable=True),
    Column("state", String(16), nullable=False),
    Column("ack_xml", LargeBinary, nullable=True),
    Column("receipt_time", UtcDateTime, nullable=True),
    Column("answered_by", String(36), nullable=True),
    Column("reason_code", String(64), nullable=True),
    Column("reason_text", Text, nullable=True),
    Column("case_reference", String(96), nullable=True),
    Column("consumed_at", UtcDateTime, nullable=True),
    Column("consumed_by", String(32), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("submission_digest", String(64), nullable=True),
    Column("item_id", String(36), nullable=True),
    Index("ix_messages_direction_id", "direction", "id"),
    Index("ix_messages_direction_state", "direction", "state"),
    Index("ux_messages_idempotency_key", "idempotency_key", unique=True),
    Index("ix_messages_unconsumed", "direction", "consumed_at", "id"),
    Index("ix_messages_reference", "reference"),
    Index("ix_messages_case_reference", "case_reference"),
    Index("ix_messages_item_id", "item_id"),
)

operational_items = Table(
    "operational_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", String(36), nullable=False, unique=True),
    Column("direction", String(3), nullable=False),
    Column("network", String(32), nullable=False),
    Column("message_type", String(64), nullable=False),
    Column("originator", String(16), nullable=False),
    Column("forwarded_by", String(16), nullable=True),
    Column("reference", String(96), nullable=False),
    Column("category", String(64), nullable=False),
    Column("countries", String(400), nullable=False),
    Column("handling", Text, nullable=False),
    Column("replaces", String(36), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_changed_at", UtcDateTime, nullable=True),
    Index("ix_operational_items_network", "network", "id"),
)
"""One row per item of the operational family, sent (`out`) or received (`in`): what the
reading API filters on (network, category or topic, countries as ",GR,TR,"), its handling
codes (JSON) and its lifecycle state (active, withdrawn, archived, erased, deleted)."""

conversations = Table(
    "conversations",
    metadata,
    Column("reference", String(96), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("requesting", String(16), nullable=False),
    Column("requested", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("legal_basis", String(64), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("criteria", String(64), nullable=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "message_id",
        String(36),
        ForeignKey("messages.message_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("leased_until", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_next_attempt_at", "next_attempt_at"),
)

register = Table(
    "register",
    metadata,
    Column(
        "sequence",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("time", UtcDateTime, nullable=False),
    Column("event", String(32), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("peer", String(16), nullable=True),
    Column("message_id", String(36), nullable=True),
    Column("message_type", String(64), nullable=True),
    Column("reference", String(96), nullable=True),
    Column("digest", String(64), nullable=True),
    Column("status", String(32), nullable=True),
    Column("reason", String(64), nullable=True),
    Column("details", Text, nullable=False),
    Column("principal", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_register_message_id", "message_id"),
    Index("ix_register_reference", "reference"),
    Index("ix_register_time", "time"),
)

register_head = Table(
    "register_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("hash", String(64), nullable=False),
)

deadlines = Table(
    "deadlines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_reference", String(96), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("legal_basis", String(64), nullable=False),
    Column("acting", String(16), nullable=False),
    Column("opened_by", String(36), nullable=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("due_date", String(10), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("state", String(24), nullable=False),
    Column("next_event_at", UtcDateTime, nullable=True),
    Column("reminders_sent", Integer, nullable=False),
    Column("closed_by", String(36), nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("consequence", String(48), nullable=True),
    Column("derogation", String(200), nullable=True),
    Index("ix_deadlines_next_event", "state", "next_event_at"),
    Index("ix_deadlines_case", "case_reference", "state"),
)

register_checkpoints = Table(
    "register_checkpoints",
    metadata,
    Column(
        "sequence",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("hash", String(64), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("signer", Text, nullable=False),
    Column("signature", Text, nullable=False),
)

trust_marks = Table(
    "trust_marks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
)

directory_pins = Table(
    "directory_pins",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("authority", String(16), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("published", UtcDateTime, nullable=False),
)
"""The signing pins of every directory version this gateway accepted: which certificate
could sign for which authority when (gateway.core.pins)."""

register_witnesses = Table(
    "register_witnesses",
    metadata,
    Column("holder", String(16), primary_key=True),
    Column(
        "sequence",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("hash", String(64), primary_key=True),
    Column("signer", String(64), nullable=False),
    Column("signed_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
"""Heads of this gateway's register that peers recorded from its acknowledgements, taken
from their signed register bundles (`gateway register verify --witnesses`)."""
