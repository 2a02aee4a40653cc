"""Indexes for auditors' register queries by case reference and by time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_register_reference", "register", ["reference"])
    op.create_index("ix_register_time", "register", ["time"])


def downgrade() -> None:
    op.drop_index("ix_register_time", "register")
    op.drop_index("ix_register_reference", "register")
