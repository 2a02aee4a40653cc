"""An index of outgoing messages by state: the metric `gateway_outbox_messages{state}` counts
the queued and undeliverable ones at every scrape. Without it the count reads every message
row, and with SQLite the whole signed document before each row's state (issue 17, item 4).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_direction_state", "messages", ["direction", "state"])


def downgrade() -> None:
    op.drop_index("ix_messages_direction_state", "messages")
