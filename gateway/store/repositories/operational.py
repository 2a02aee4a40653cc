"""Items of the operational family (ICONET early warnings, liaison officers' reports): one row
per item, sent or received, and its lifecycle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from gateway.store.records import OperationalItem, StoredMessage, item_of, message_of
from gateway.store.repositories.base import Repository
from gateway.store.schema import messages, operational_items


class OperationalItems(Repository):
    async def insert(self, item: OperationalItem) -> int:
        """Store an item; its row id (a number unique across nodes, used in references)."""
        done = await self._execute(operational_items.insert().values(**item.row()))
        key = done.inserted_primary_key
        return int(key[0]) if key else 0

    async def set_reference(self, item_id: str, reference: str) -> None:
        await self._execute(
            update(operational_items)
            .where(operational_items.c.item_id == item_id)
            .values(reference=reference)
        )

    async def get(self, item_id: str) -> OperationalItem | None:
        q = select(operational_items).where(operational_items.c.item_id == item_id)
        async with self.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else item_of(row)

    async def set_state(self, item_id: str, state: str, at: datetime) -> bool:
        done = await self._execute(
            update(operational_items)
            .where(operational_items.c.item_id == item_id)
            .values(state=state, state_changed_at=at)
        )
        return bool(done.rowcount)

    async def find(
        self,
        *,
        networks: tuple[str, ...],
        category: str | None = None,
        country: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[OperationalItem]:
        """Items of `networks` after row `after`, oldest first, matching every filter."""
        q = select(operational_items).where(
            operational_items.c.id > after, operational_items.c.network.in_(networks)
        )
        if category is not None:
            q = q.where(operational_items.c.category == category)
        if country is not None:
            q = q.where(operational_items.c.countries.contains(f",{country},", autoescape=True))
        if since is not None:
            q = q.where(operational_items.c.created_at >= since)
        q = q.order_by(operational_items.c.id).limit(limit)
        async with self.connect() as conn:
            return [item_of(r) for r in await conn.execute(q)]

    async def transmissions(self, item_id: str) -> list[StoredMessage]:
        """The transmissions (sent or received) that carry or name the item, oldest first."""
        q = select(messages).where(messages.c.item_id == item_id).order_by(messages.c.id)
        async with self.connect() as conn:
            return [message_of(r) for r in await conn.execute(q)]

    async def erase(self, item_id: str, state: str, at: datetime) -> int:
        """Erase the payloads of every transmission of the item (their register entries and
        digests stay) and set its state; how many payloads were erased."""
        done = await self._execute(
            update(messages)
            .where(messages.c.item_id == item_id, messages.c.signed_xml.is_not(None))
            .values(signed_xml=None)
        )
        await self.set_state(item_id, state, at)
        return int(done.rowcount or 0)

    async def due(self, network: str, state: str, before: datetime, limit: int) -> list[str]:
        """Items of `network` in `state` created before `before` (retention)."""
        q = (
            select(operational_items.c.item_id)
            .where(
                operational_items.c.network == network,
                operational_items.c.state == state,
                operational_items.c.created_at < before,
            )
            .order_by(operational_items.c.id)
            .limit(limit)
        )
        async with self.connect() as conn:
            return [r[0] for r in await conn.execute(q)]
