"""Cases (conversations) and their state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from gateway.core.conversations import Conversation
from gateway.store.driver import Prepared
from gateway.store.inline import DbConnection, DbEngine
from gateway.store.records import conversation_of
from gateway.store.repositories.base import Repository
from gateway.store.schema import conversations

_GET = select(conversations).where(conversations.c.reference == bindparam("b_reference"))
_UPDATE = update(conversations).where(conversations.c.reference == bindparam("b_reference"))
_INSERT = conversations.insert()
_COLUMNS = ["kind", "requesting", "requested", "state", "legal_basis", "criteria", "updated_at"]
_GET_PG = Prepared(_GET)
_UPDATE_PG = Prepared(_UPDATE, _COLUMNS)
_INSERT_PG = Prepared(_INSERT, ["reference", "opened_at", *_COLUMNS])


class Conversations(Repository):
    """Inside a unit of work a case is read from the database once: every change to it goes
    through `save`, which keeps what the unit sees (a received message read its case twice,
    once to find its legal basis and once to move it; issue 20)."""

    def __init__(
        self,
        engine: DbEngine,
        postgres: bool,
        conn: DbConnection | None = None,
        driver: Any = None,
    ):
        super().__init__(engine, postgres, conn, driver)
        self._seen: dict[str, Conversation | None] = {}

    async def get(self, reference: str) -> Conversation | None:
        if self._conn is not None and reference in self._seen:
            return self._seen[reference]
        if self._driver is not None:  # the unit of work's driver connection
            record = await _GET_PG.fetchrow(
                self._driver, self.engine.dialect, {"b_reference": reference}
            )
            found = None if record is None else conversation_of(record)
        else:
            async with self.connect() as conn:
                row = (await conn.execute(_GET, {"b_reference": reference})).first()
            found = None if row is None else conversation_of(row._mapping)
        if self._conn is not None:
            self._seen[reference] = found
        return found

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
        self._seen.pop(conv.reference, None)  # read again should this statement fail
        if new is False:  # no need to know whether a row changed: deferred (driver.py)
            await self._defer(_UPDATE_PG, {"b_reference": conv.reference} | values)
            self._seen[conv.reference] = conv
            return
        if new is None:
            changed = await self._write(_UPDATE_PG, {"b_reference": conv.reference} | values)
            if changed == 1:
                self._seen[conv.reference] = conv
                return
        await self._defer(_INSERT_PG, {"reference": conv.reference, "opened_at": now} | values)
        self._seen[conv.reference] = conv

    async def times(self, reference: str) -> tuple[datetime, datetime] | None:
        """When the case was opened and last changed."""
        q = select(conversations.c.opened_at, conversations.c.updated_at).where(
            conversations.c.reference == reference
        )
        async with self.connect() as conn:
            row = (await conn.execute(q)).first()
            return None if row is None else (row.opened_at, row.updated_at)
