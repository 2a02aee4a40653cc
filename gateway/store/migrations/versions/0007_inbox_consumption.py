"""Explicit consumption of received messages by the case system (inbox).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("consumed_at", UtcDateTime, nullable=True))
        batch.add_column(sa.Column("consumed_by", sa.String(32), nullable=True))
    op.create_index("ix_messages_unconsumed", "messages", ["direction", "consumed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_unconsumed", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("consumed_by")
        batch.drop_column("consumed_at")
