"""What this gateway last accepted of the network's published trust material (the directory
version), so that an older directory is refused even after a restart.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_marks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("accepted_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trust_marks")
