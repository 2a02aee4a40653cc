"""SQLite through SQLAlchemy's synchronous engine, driven from the event loop.

With SQLite the database is a file in this process's page cache: a lookup or a row written
takes some microseconds. Driving it through an asyncio driver (aiosqlite: a worker thread per
connection) costs far more than that per statement: a thread round trip through the GIL and,
in SQLAlchemy's asyncio layer, several greenlet switches for each cursor call. Measured under
load, that was 0.25-0.35 ms of CPU and up to 1.5 ms of latency per statement, more than half
of all the gateway's work per message.

So statements run where they are called, on SQLAlchemy's ordinary (synchronous) Core engine
with the standard sqlite3 driver, behind the small part of the asyncio API the store uses.
What can wait runs on a worker thread, off the event loop: taking the write lock (`BEGIN
IMMEDIATE` may wait for another process up to the busy timeout), `COMMIT` (a disk flush,
about 2 ms) and bulk reads (`run_in_thread`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, RootTransaction
from sqlalchemy.engine import CursorResult, NestedTransaction, Transaction
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
_Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class InlineTransaction:
    def __init__(self, trans: Transaction) -> None:
        self._trans = trans

    async def commit(self) -> None:
        if isinstance(self._trans, RootTransaction):
            await asyncio.to_thread(self._trans.commit)  # the flush
        else:
            self._trans.commit()  # RELEASE SAVEPOINT

    async def rollback(self) -> None:
        self._trans.rollback()


class InlineConnection:
    """The asyncio connection API of the store over a synchronous Connection."""

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn

    async def execute(self, statement: Executable, parameters: _Params = None) -> CursorResult[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def exec_driver_sql(self, sql: str, parameters: Any = None) -> CursorResult[Any]:
        return self.sync_connection.exec_driver_sql(sql, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync_connection, *args)

    async def execution_options(self, **options: Any) -> InlineConnection:
        return InlineConnection(self.sync_connection.execution_options(**options))

    async def begin(self) -> InlineTransaction:
        # BEGIN IMMEDIATE may wait for another process's write lock: not on the event loop.
        return InlineTransaction(await asyncio.to_thread(self.sync_connection.begin))

    async def begin_nested(self) -> InlineTransaction:
        nested: NestedTransaction = self.sync_connection.begin_nested()
        return InlineTransaction(nested)

    async def invalidate(self) -> None:
        self.sync_connection.invalidate()

    async def close(self) -> None:
        self.sync_connection.close()

    async def __aenter__(self) -> InlineConnection:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.close()


class _Connect:
    """`await engine.connect()` and `async with engine.connect() as conn`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: InlineConnection | None = None

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._open().__await__()

    async def _open(self) -> InlineConnection:
        return InlineConnection(self._engine.connect())

    async def __aenter__(self) -> InlineConnection:
        self._conn = await self._open()
        return self._conn

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._conn is not None:
            await self._conn.close()


class InlineEngine:
    def __init__(self, engine: Engine) -> None:
        self.sync_engine = engine
        self.dialect = engine.dialect
        self.url = engine.url

    def connect(self) -> _Connect:
        return _Connect(self.sync_engine)

    async def run_in_thread(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` with a connection of its own on a worker thread (bulk reads)."""

        def work() -> T:
            with self.sync_engine.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(work)

    async def dispose(self) -> None:
        self.sync_engine.dispose()


# What the store's code is written against: SQLite's inline engine or PostgreSQL's asyncpg.
DbConnection = AsyncConnection | InlineConnection
DbEngine = AsyncEngine | InlineEngine
