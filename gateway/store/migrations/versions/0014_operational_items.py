"""The operational family (ICONET early warnings, liaison officers' reports): the item every
copy of one distribution carries (messages.item_id), and one row per item, sent or received,
with what the reading API filters on and its lifecycle (issue 19).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("item_id", sa.String(36), nullable=True))
    op.create_index("ix_messages_item_id", "messages", ["item_id"])
    op.create_table(
        "operational_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(36), nullable=False, unique=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("network", sa.String(32), nullable=False),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("originator", sa.String(16), nullable=False),
        sa.Column("forwarded_by", sa.String(16), nullable=True),
        sa.Column("reference", sa.String(96), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("countries", sa.String(400), nullable=False),
        sa.Column("handling", sa.Text, nullable=False),
        sa.Column("replaces", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("stored_at", UtcDateTime, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_changed_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_operational_items_network", "operational_items", ["network", "id"])


def downgrade() -> None:
    op.drop_index("ix_operational_items_network", "operational_items")
    op.drop_table("operational_items")
    op.drop_index("ix_messages_item_id", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("item_id")
