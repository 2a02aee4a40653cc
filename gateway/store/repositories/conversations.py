"""Cases (conversations) and their state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from gateway.core.conversations import Conversation
from gateway.store.records import conversation_of
from gateway.store.repositories.base import Repository
from gateway.store.schema import conversations

_GET = select(conversations).where(conversations.c.reference == bindparam("b_reference"))
_UPDATE = update(conversations).where(conversations.c.reference == bindparam("b_reference"))
_INSERT = conversations.insert()


class Conversations(Repository):
    async def get(self, reference: str) -> Conversation | None:
        async with self.connect() as conn:
            row = (await conn.execute(_GET, {"b_reference": reference})).first()
        return None if row is None else conversation_of(row)

    async def save(self, conv: Conversation, now: datetime, *, new: bool | None = None) -> None:
        """Store the case's state; `new` says whether it exists (None: find out)."""
        values = {
            "kind": conv.kind,
            "requesting": conv.requesting,
            "requested": conv.requested,
            "state": conv.state.value,
            "legal_basis": conv.legal_basis,
            "criteria": conv.criteria,
            "updated_at": now,
        }
        if new is not True:
            done = await self.conn.execute(_UPDATE, {"b_reference": conv.reference} | values)
            if done.rowcount == 1 or new is False:
                return
        await self.conn.execute(_INSERT, {"reference": conv.reference, "opened_at": now} | values)

    async def times(self, reference: str) -> tuple[datetime, datetime] | None:
        """When the case was opened and last changed."""
        q = select(conversations.c.opened_at, conversations.c.updated_at).where(
            conversations.c.reference == reference
        )
        async with self.connect() as conn:
            row = (await conn.execute(q)).first()
            return None if row is None else (row.opened_at, row.updated_at)
