"""Idempotency keys of submissions: a case system (or an adapter) that repeats a submission
after a crash or a lost answer gets the original message back instead of a second one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("submission_digest", sa.String(64), nullable=True))
    op.create_index("ux_messages_idempotency_key", "messages", ["idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_messages_idempotency_key", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("submission_digest")
        batch.drop_column("idempotency_key")
