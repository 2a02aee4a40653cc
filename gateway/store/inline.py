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
about 2 ms) and bulk reads (`run_in_thread`).

A connection a worker thread is using belongs to that thread until it returns. Cancelling the
task that awaits it (a request handler at shutdown, a stopping worker) does not stop the
thread, and closing, rolling back or disposing of the connection from the event loop while
SQLite works on it in the thread crashes the process (use after free in libsqlite3). So a
cancelled caller first waits for its thread to finish (`_Threads.run`), and `dispose` waits for
every thread still running before it closes the pool's connections."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Engine, Executable, RootTransaction
from sqlalchemy.engine import CursorResult, NestedTransaction, Transaction
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
_Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class _Threads:
    """Work running on worker threads, each holding a connection until it returns."""

    def __init__(self) -> None:
        self.running: set[asyncio.Future[Any]] = set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a worker thread. If the caller is cancelled meanwhile, the
        cancellation reaches it only once the thread has returned: until then the connection
        is the thread's, and whatever the caller does next with it (close, roll back) must
        not run beside it."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, functools.partial(fn, *args))
        self.running.add(future)
        future.add_done_callback(self.running.discard)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await self.settle({future})
            raise

    async def settle(self, futures: set[asyncio.Future[Any]] | None = None) -> None:
        """Wait until the given threads (all running ones by default) have returned, through
        any further cancellation. Their outcome is their callers' to read (for a cancelled
        caller, `asyncio.shield` marks it read)."""
        pending = set(self.running if futures is None else futures)
        cancelled = False
        while pending:
            try:
                _, pending = await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError


class InlineTransaction:
    def __init__(self, trans: Transaction, threads: _Threads) -> None:
        self._trans = trans
        self._threads = threads

    async def commit(self) -> None:
        if isinstance(self._trans, RootTransaction):
            await self._threads.run(self._trans.commit)  # the flush
        else:
            self._trans.commit()  # RELEASE SAVEPOINT

    async def rollback(self) -> None:
        self._trans.rollback()


class InlineConnection:
    """The asyncio connection API of the store over a synchronous Connection."""

    def __init__(self, conn: Connection, threads: _Threads) -> None:
        self.sync_connection = conn
        self._threads = threads

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Executable, parameters: _Params = None) -> CursorResult[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def exec_driver_sql(self, sql: str, parameters: Any = None) -> CursorResult[Any]:
        return self.sync_connection.exec_driver_sql(sql, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync_connection, *args)

    async def execution_options(self, **options: Any) -> InlineConnection:
        return InlineConnection(self.sync_connection.execution_options(**options), self._threads)

    async def begin(self) -> InlineTransaction:
        # BEGIN IMMEDIATE may wait for another process's write lock: not on the event loop.
        trans = await self._threads.run(self.sync_connection.begin)
        return InlineTransaction(trans, self._threads)

    async def begin_nested(self) -> InlineTransaction:
        nested: NestedTransaction = self.sync_connection.begin_nested()
        return InlineTransaction(nested, self._threads)

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

    def __init__(self, engine: Engine, threads: _Threads) -> None:
        self._engine = engine
        self._threads = threads
        self._conn: InlineConnection | None = None

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._open().__await__()

    async def _open(self) -> InlineConnection:
        return InlineConnection(self._engine.connect(), self._threads)

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
        self._threads = _Threads()

    def connect(self) -> _Connect:
        return _Connect(self.sync_engine, self._threads)

    async def run_in_thread(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` with a connection of its own on a worker thread (bulk reads)."""

        def work() -> T:
            with self.sync_engine.connect() as conn:
                return fn(conn)

        return await self._threads.run(work)

    async def dispose(self) -> None:
        # A thread still inside BEGIN, COMMIT or a bulk read keeps its connection until it
        # returns; the pool's connections are closed only after that.
        await self._threads.settle()
        self.sync_engine.dispose()


# What the store's code is written against: SQLite's inline engine or PostgreSQL's asyncpg.
DbConnection = AsyncConnection | InlineConnection
DbEngine = AsyncEngine | InlineEngine
