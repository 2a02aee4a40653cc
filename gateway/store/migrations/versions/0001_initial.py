"""Messages, outbox and the hash-chained register.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(36), nullable=False, unique=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("peer", sa.String(16), nullable=False),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(96), nullable=False),
        sa.Column("in_reply_to", sa.String(36), nullable=True),
        sa.Column("urgent", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("stored_at", UtcDateTime, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("signed_xml", sa.LargeBinary, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ack_xml", sa.LargeBinary, nullable=True),
        sa.Column("receipt_time", UtcDateTime, nullable=True),
        sa.Column("answered_by", sa.String(36), nullable=True),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("reason_text", sa.Text, nullable=True),
    )
    op.create_index("ix_messages_direction_id", "messages", ["direction", "id"])
    op.create_index("ix_messages_reference", "messages", ["reference"])
    op.create_table(
        "outbox",
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.message_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("leased_until", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])
    op.create_table(
        "register",
        sa.Column("sequence", _BIGINT, primary_key=True, autoincrement=False),
        sa.Column("time", UtcDateTime, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("peer", sa.String(16), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("message_type", sa.String(64), nullable=True),
        sa.Column("reference", sa.String(96), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_register_message_id", "register", ["message_id"])
    op.create_table(
        "register_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sequence", _BIGINT, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute("INSERT INTO register_head (id, sequence, hash) VALUES (1, 0, '" + "0" * 64 + "')")


def downgrade() -> None:
    op.drop_table("register_head")
    op.drop_index("ix_register_message_id", "register")
    op.drop_table("register")
    op.drop_index("ix_outbox_next_attempt_at", "outbox")
    op.drop_table("outbox")
    op.drop_index("ix_messages_reference", "messages")
    op.drop_index("ix_messages_direction_id", "messages")
    op.drop_table("messages")
