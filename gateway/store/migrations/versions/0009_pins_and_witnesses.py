"""The history of signing pins (which certificate could sign for which authority when) and
the peers' witnesses of this register that the gateway holds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "directory_pins",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("authority", sa.String(16), primary_key=True),
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("published", UtcDateTime, nullable=False),
    )
    op.create_table(
        "register_witnesses",
        sa.Column("holder", sa.String(16), primary_key=True),
        sa.Column("sequence", _BIGINT, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("signer", sa.String(64), nullable=False),
        sa.Column("signed_at", UtcDateTime, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("register_witnesses")
    op.drop_table("directory_pins")
