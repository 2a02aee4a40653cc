"""Messages sent and received, with their signed bytes and acknowledgements."""

from __future__ import annotations

import functools
import sqlite3
from datetime import datetime
from typing import Unpack

from sqlalchemy import Connection, bindparam, func, select, text, update

from gateway.store.driver import Prepared
from gateway.store.records import (
    DuplicateMessage,
    MessageChanges,
    NewMessage,
    OutboxItem,
    StoredMessage,
    message_of,
)
from gateway.store.repositories.base import Repository
from gateway.store.schema import messages

# The statements of the hot paths, built once: executed with a parameter dictionary they skip
# SQLAlchemy's per-call statement construction (coercing each value into a bind parameter and
# computing a cache key over them), which cost more than SQLite's own work for the statement.
_INSERT = messages.insert()
# Without .values() the SET clause is the parameters given at execution.
_UPDATE = update(messages).where(messages.c.message_id == bindparam("b_message_id"))
_GET = select(messages).where(messages.c.message_id == bindparam("b_message_id"))
_INSERT_PG = Prepared(_INSERT, list(NewMessage.__dataclass_fields__))

BLOB_IO_BYTES = 256 * 1024
"""On SQLite, signed bytes from this size on are written into the row in place (incremental
BLOB I/O) instead of being bound to the INSERT: Python's sqlite3 keeps a statement's bound
values until the statement runs again, so each connection's cached INSERT held a copy of the
last large transmission (9 MB each, benchmarks/bodies.py)."""
_MAKE_ROOM = text(
    "UPDATE messages SET signed_xml = zeroblob(:size) WHERE message_id = :message_id RETURNING id"
)


def _sqlite3_connection(conn: Connection) -> sqlite3.Connection:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


@functools.cache
def _update_pg(columns: frozenset[str]) -> Prepared:
    """The UPDATE of these columns, compiled once (the code changes a handful of sets)."""
    return Prepared(_UPDATE, sorted(columns))


class Messages(Repository):
    async def get(self, message_id: str) -> StoredMessage | None:
        async with self.connect() as conn:
            row = (await conn.execute(_GET, {"b_message_id": message_id})).first()
        return None if row is None else message_of(row)

    async def insert(self, message: NewMessage) -> None:
        row = message.row()
        signed = message.signed_xml
        in_place = not self.postgres and signed is not None and len(signed) >= BLOB_IO_BYTES
        if in_place:
            row["signed_xml"] = None
        # Deferred (gateway.store.driver): a message id or idempotency key taken fails the
        # unit of work with DuplicateMessage where the insert is sent, at the latest as the
        # unit ends.
        await self._defer(_INSERT_PG, row, lambda: DuplicateMessage(message.message_id))
        if in_place:
            assert signed is not None
            await self._write_in_place(message.message_id, signed)

    async def _write_in_place(self, message_id: str, signed: bytes) -> None:
        """The signed bytes into the row just inserted, in this unit of work (SQLite): room
        of their size, then written through the connection's BLOB handle, with no bound copy."""
        conn = await self._unit_conn()
        result = await conn.execute(_MAKE_ROOM, {"size": len(signed), "message_id": message_id})
        rowid = result.scalar_one()
        raw = await conn.run_sync(_sqlite3_connection)
        with raw.blobopen("messages", "signed_xml", rowid) as blob:
            blob.write(signed)

    async def update(self, message_id: str, **changes: Unpack[MessageChanges]) -> None:
        await self._defer(_update_pg(frozenset(changes)), {"b_message_id": message_id, **changes})

    async def by_idempotency_key(self, key: str) -> StoredMessage | None:
        q = select(messages).where(messages.c.idempotency_key == key)
        async with self.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else message_of(row)

    async def undeliverable_since(self, since: datetime, limit: int) -> list[OutboxItem]:
        """Outgoing messages given up on, created after `since`: a peer may yet prove it
        received them."""
        q = (
            select(messages)
            .where(
                messages.c.direction == "out",
                messages.c.state == "undeliverable",
                messages.c.created_at >= since,
                messages.c.signed_xml.is_not(None),
            )
            .order_by(messages.c.id)
            .limit(limit)
        )
        async with self.connect() as conn:
            rows = [message_of(r) for r in await conn.execute(q)]
        return [
            OutboxItem(
                m.message_id,
                m.peer,
                m.digest,
                m.signed_xml or b"",
                0,
                m.created_at,
                m.message_type,
                m.reference,
                m.case_reference or "",
            )
            for m in rows
        ]

    async def inbox(
        self,
        after: int,
        limit: int,
        *,
        consumed: bool | None = None,
        types: frozenset[str] | None = None,
    ) -> list[StoredMessage]:
        """Received messages after the cursor `after`, oldest first; optionally only those
        (not) consumed yet, or only of `types`."""
        q = select(messages).where(messages.c.direction == "in", messages.c.id > after)
        if consumed is True:
            q = q.where(messages.c.consumed_at.is_not(None))
        elif consumed is False:
            q = q.where(messages.c.consumed_at.is_(None))
        if types is not None:
            q = q.where(messages.c.message_type.in_(sorted(types)))
        q = q.order_by(messages.c.id).limit(limit)
        async with self.connect() as conn:
            return [message_of(r) for r in await conn.execute(q)]

    async def listing(
        self,
        after: int,
        limit: int,
        *,
        direction: str | None = None,
        state: str | None = None,
        message_type: str | None = None,
        types: frozenset[str] | None = None,
    ) -> list[StoredMessage]:
        """Messages after the cursor `after` (the stored message number), oldest first,
        optionally of one direction, state and type, or only of `types`."""
        q = select(messages).where(messages.c.id > after)
        if types is not None:
            q = q.where(messages.c.message_type.in_(sorted(types)))
        if direction is not None:
            q = q.where(messages.c.direction == direction)
        if state is not None:
            q = q.where(messages.c.state == state)
        if message_type is not None:
            q = q.where(messages.c.message_type == message_type)
        q = q.order_by(messages.c.id).limit(limit)
        async with self.connect() as conn:
            return [message_of(r) for r in await conn.execute(q)]

    async def of_case(self, reference: str) -> list[StoredMessage]:
        """The messages of a case, in the order they were stored."""
        q = (
            select(messages)
            .where(
                (messages.c.case_reference == reference)
                | ((messages.c.case_reference.is_(None)) & (messages.c.reference == reference))
            )
            .order_by(messages.c.id)
        )
        async with self.connect() as conn:
            return [message_of(r) for r in await conn.execute(q)]

    async def payloads_stored_before(self, before: datetime, limit: int) -> list[str]:
        q = (
            select(messages.c.message_id)
            .where(messages.c.signed_xml.is_not(None), messages.c.stored_at < before)
            .order_by(messages.c.id)
            .limit(limit)
        )
        async with self.connect() as conn:
            return [r.message_id for r in await conn.execute(q)]

    async def count(self) -> int:
        async with self.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
        return int(total)

    async def outgoing_in(self, states: tuple[str, ...]) -> dict[str, int]:
        """How many outgoing messages are in each of `states` (0 for none), counted on the
        index of direction and state, off the event loop: a scrape asks this every time."""
        q = (
            select(messages.c.state, func.count())
            .where(messages.c.direction == "out", messages.c.state.in_(states))
            .group_by(messages.c.state)
        )
        counted = {row[0]: int(row[1]) for row in await self.read_aside(q)}
        return {state: counted.get(state, 0) for state in states}
