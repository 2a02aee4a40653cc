"""Deadlines of each case (Art. 29-35, 40).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deadlines",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_reference", sa.String(96), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("legal_basis", sa.String(64), nullable=False),
        sa.Column("acting", sa.String(16), nullable=False),
        sa.Column("opened_by", sa.String(36), nullable=True),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("due_date", sa.String(10), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("next_event_at", UtcDateTime, nullable=True),
        sa.Column("reminders_sent", sa.Integer, nullable=False),
        sa.Column("closed_by", sa.String(36), nullable=True),
        sa.Column("closed_at", UtcDateTime, nullable=True),
        sa.Column("consequence", sa.String(48), nullable=True),
    )
    op.create_index("ix_deadlines_next_event", "deadlines", ["state", "next_event_at"])
    op.create_index("ix_deadlines_case", "deadlines", ["case_reference", "state"])


def downgrade() -> None:
    op.drop_index("ix_deadlines_case", "deadlines")
    op.drop_index("ix_deadlines_next_event", "deadlines")
    op.drop_table("deadlines")
