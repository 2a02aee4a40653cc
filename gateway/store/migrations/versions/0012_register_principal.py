"""The named user (API principal) a register entry records as having acted (issue 17, item
5). Entries written before keep NULL, and with it their version 1 canonical form
(gateway.core.register).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("register") as batch:
        batch.add_column(sa.Column("principal", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("register") as batch:
        batch.drop_column("principal")
