"""Group commit: many units of work share one database transaction and one durable commit.

A durable commit costs a disk flush (about 2 ms here), which is more than the work of a whole
submission or receipt. Units of work therefore run one after another on one writer connection,
each inside its own SAVEPOINT, and the transaction is committed when no further unit is
waiting (or `max_units` have joined). A unit that fails is rolled back to its savepoint and
fails alone; the others are unaffected. The first unit of a batch takes no savepoint: if it
fails, the transaction, which holds nothing else yet, is rolled back whole. A unit returns
only after the commit that contains it is durable, so nothing is acknowledged before it is
stored; if that commit fails, every unit in it fails with the commit's error and nothing of
any of them is stored.

Under light load a batch holds a single unit (commit at once: no added latency); under heavy
load batches grow by themselves, which is what removes the flush from each unit's cost.

The units' savepoints are sent to the driver as plain statements (SAVEPOINT, ROLLBACK TO
SAVEPOINT): SQLAlchemy's nested transaction cost about 0.5 ms of CPU per unit on PostgreSQL
(SAVEPOINT and RELEASE through its machinery, measured against 0.06 ms sent directly; issue
20), and on SQLite, where the statements themselves take microseconds, it was about a tenth
of each gateway's busy time under load. A unit that succeeds leaves its savepoint in place
(its changes belong to the transaction either way; RELEASE would be one more statement, and
COMMIT releases them all), and one that fails rolls back to its own, the newest of that name.
On PostgreSQL the batch's BEGIN and COMMIT go to asyncpg too, on a connection SQLAlchemy
keeps in autocommit, so that it starts no transaction of its own; on SQLite SQLAlchemy begins
(BEGIN IMMEDIATE, gateway.store.store) and commits the transaction, on a worker thread
(gateway.store.inline), and the units' statements run on its sqlite3 connection inside it.

On PostgreSQL a unit's writes whose result it does not need are deferred and sent with its
next statement (gateway.store.driver); what is still deferred when its body ends is sent
then, as part of the unit: if that fails, the unit fails and is rolled back like any other,
and a unit rolled back drops what it deferred. The batch's own statements (BEGIN, SAVEPOINT,
ROLLBACK, COMMIT) go through the same driver, so their errors are SQLAlchemy's too."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.driver import PostgresDriver, SqliteDriver
from gateway.store.inline import DbConnection, DbEngine, InlineConnection, InlineTransaction


class CommitAborted(Exception):
    """The shared transaction could not be committed because the writer connection failed
    while another unit of it was being rolled back; this unit's work was not stored."""


class _Transaction:
    """SQLAlchemy's transaction on the writer connection (SQLite), and the units' savepoints
    on its sqlite3 connection."""

    def __init__(self, trans: InlineTransaction, driver: SqliteDriver) -> None:
        self._trans = trans
        self.driver = driver  # the sqlite3 connection (gateway.store.driver runs on it)

    @classmethod
    async def begin(cls, conn: DbConnection) -> _Transaction:
        assert isinstance(conn, InlineConnection)
        raw = conn.sync_connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        return cls(await conn.begin(), SqliteDriver(raw))

    async def savepoint(self) -> _Savepoint:
        await self.driver.execute(f"SAVEPOINT {_UNIT}")
        return _Savepoint(self.driver)

    async def commit(self) -> None:
        await self._trans.commit()

    async def rollback(self) -> None:
        await self._trans.rollback()


class _Savepoint:
    def __init__(self, driver: SqliteDriver | PostgresDriver) -> None:
        self._driver = driver

    async def commit(self) -> None:
        """Nothing to send: the unit's changes stay in the batch's transaction."""

    async def rollback(self) -> None:
        self._driver.discard()
        await self._driver.execute(f"ROLLBACK TO SAVEPOINT {_UNIT}")


_UNIT = "gw_unit"
"""The name of every unit's savepoint: a new one hides the one before, and a rollback goes to
the newest, which is the failing unit's own (units of a batch run one after another)."""


class _PostgresTransaction:
    """The batch's transaction sent to asyncpg directly (see the module's docstring). The
    connection is in autocommit for SQLAlchemy, which then never begins or ends a transaction
    on it, and its statements run inside this one."""

    def __init__(self, driver: PostgresDriver) -> None:
        self.driver = driver  # the asyncpg connection (gateway.store.driver runs on it)

    @classmethod
    async def begin(cls, conn: DbConnection) -> _PostgresTransaction:
        assert isinstance(conn, AsyncConnection)
        driver = PostgresDriver((await conn.get_raw_connection()).driver_connection)
        await driver.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        return cls(driver)

    async def savepoint(self) -> _Savepoint:
        await self.driver.execute(f"SAVEPOINT {_UNIT}")
        return _Savepoint(self.driver)

    async def commit(self) -> None:
        await self.driver.execute("COMMIT")

    async def rollback(self) -> None:
        self.driver.discard()
        await self.driver.execute("ROLLBACK")


@dataclass
class _Batch:
    conn: DbConnection
    trans: _Transaction | _PostgresTransaction
    done: asyncio.Future[None]
    units: int = 0
    poisoned: BaseException | None = None
    # What the units of one batch share (the register head they advance), restored to its
    # value before a unit when that unit is rolled back.
    state: dict[str, Any] = field(default_factory=dict)
    # The exception is read by the units awaiting `done`; one nobody awaited is read here.
    _observe: Callable[[asyncio.Future[None]], Any] = field(
        default=lambda f: f.cancelled() or f.exception(), repr=False
    )


@dataclass
class GroupStats:
    commits: int = 0
    units: int = 0
    largest: int = 0


class GroupCommitter:
    def __init__(
        self,
        engine: DbEngine,
        execution_options: dict[str, Any],
        max_units: int = 64,
        before_commit: Callable[[DbConnection, dict[str, Any], Any], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._begin = (
            _PostgresTransaction.begin
            if engine.dialect.name == "postgresql"
            else _Transaction.begin
        )
        self._before_commit = before_commit
        self._options = execution_options
        self._max = max_units
        self._queue: deque[asyncio.Future[None]] = deque()
        self._busy = False
        self._batch: _Batch | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        # The writer connection, kept from one batch to the next while units are waiting
        # (under load batches follow each other); on SQLite returned to the pool when idle,
        # on PostgreSQL kept (see _keep_or_close, and _open for one whose session ended).
        self._spare: DbConnection | None = None
        self._keep_idle = engine.dialect.name == "postgresql"
        self.stats = GroupStats()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[tuple[DbConnection, dict[str, Any], Any]]:
        """Run the body as one unit of the current batch; returns once it is durable. Yields
        the connection, the batch's shared state and the driver connection under it
        (asyncpg's on PostgreSQL, sqlite3's in a SqliteDriver on SQLite)."""
        await self._acquire()
        try:
            batch = self._batch
            if batch is None:
                batch = self._batch = await self._open()
            batch.units += 1
            # The batch's first unit needs no savepoint: if it fails, the transaction holds
            # nothing else and is rolled back whole (one round trip less per batch, which
            # under light load is per unit; issue 20).
            savepoint = await batch.trans.savepoint() if batch.units > 1 else None
            before = dict(batch.state)
        except BaseException as exc:
            if self._batch is not None and self._batch.units:
                self._batch.poisoned = exc
            self._release()
            raise
        try:
            yield batch.conn, batch.state, batch.trans.driver
            # The writes the unit deferred (gateway.store.driver), still part of the unit: if
            # they fail, it is rolled back as if its body had raised.
            await batch.trans.driver.flush()
        except BaseException:
            batch.trans.driver.discard()
            batch.state.clear()
            batch.state.update(before)
            try:
                if savepoint is None:
                    await self._abandon(batch)
                else:
                    await savepoint.rollback()
            except BaseException as exc:
                batch.poisoned = exc
            finally:
                self._release()
            raise
        try:
            if savepoint is not None:
                await savepoint.commit()
        except BaseException as exc:
            batch.poisoned = exc
            self._release()
            raise
        self._release()
        await asyncio.shield(batch.done)

    async def _abandon(self, batch: _Batch) -> None:
        """The batch's first unit failed: its transaction, which holds nothing else, is rolled
        back, and the next unit begins a new one on the same connection."""
        await batch.trans.rollback()
        self._batch = None
        await self._keep_or_close(batch.conn)

    async def _keep_or_close(self, writer: DbConnection) -> None:
        """Keep the writer connection for the next batch while units wait, and on PostgreSQL
        always (taking it from the pool again cost a checkout and a liveness check, one
        round trip, per batch, which under light load is per unit; issue 20); else return
        it to the pool."""
        if self._waiting() or self._keep_idle:
            self._spare = writer
        else:
            with contextlib.suppress(Exception):
                await writer.close()

    async def barrier(self) -> None:
        """Wait until everything that joined a batch before this call is committed."""
        with contextlib.suppress(Exception):
            async with self.unit():
                pass

    async def close(self) -> None:
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.close()

    async def _open(self) -> _Batch:
        kept, self._spare = self._spare, None
        try:
            writer, trans = await self._begin_on(kept or await self._connect())
        except Exception:
            if kept is None:
                raise
            # The writer kept since the last batch has lost its session (the server ended
            # it or restarted): BEGIN did nothing, so the batch begins on a fresh connection
            # from the pool, checked before use as every pooled one is, and its units see
            # nothing of it.
            writer, trans = await self._begin_on(await self._connect())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = _Batch(writer, trans, done)
        done.add_done_callback(batch._observe)
        return batch

    async def _connect(self) -> DbConnection:
        conn = await self._engine.connect()
        return await conn.execution_options(**self._options)

    async def _begin_on(
        self, writer: DbConnection
    ) -> tuple[DbConnection, _Transaction | _PostgresTransaction]:
        try:
            return writer, await self._begin(writer)
        except BaseException:
            with contextlib.suppress(BaseException):
                await writer.invalidate()
            await writer.close()
            raise

    async def _acquire(self) -> None:
        if not self._busy and not self._queue:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # our turn came as we were cancelled: pass it on
            raise

    def _waiting(self) -> bool:
        while self._queue and self._queue[0].done():
            self._queue.popleft()  # cancelled while waiting
        return bool(self._queue)

    def _release(self) -> None:
        batch = self._batch
        if batch is not None and (
            batch.poisoned is not None or batch.units >= self._max or not self._waiting()
        ):
            self._batch = None
            task = asyncio.get_running_loop().create_task(self._finish(batch))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)
            return
        self._grant_next()

    def _grant_next(self) -> None:
        if self._waiting():
            self._queue.popleft().set_result(None)
        else:
            self._busy = False

    async def _finish(self, batch: _Batch) -> None:
        try:
            if batch.poisoned is not None:
                await batch.trans.rollback()
                raise CommitAborted(
                    "the writer connection failed during this commit; nothing of it was stored"
                ) from batch.poisoned
            if self._before_commit is not None:
                await self._before_commit(batch.conn, batch.state, batch.trans.driver)
            await batch.trans.commit()
        except BaseException as exc:
            if not batch.done.done():
                batch.done.set_exception(exc)
            with contextlib.suppress(BaseException):
                await batch.conn.invalidate()
            with contextlib.suppress(BaseException):
                await batch.conn.close()
        else:
            batch.done.set_result(None)
            self.stats.commits += 1
            self.stats.units += batch.units
            self.stats.largest = max(self.stats.largest, batch.units)
            await self._keep_or_close(batch.conn)
        finally:
            self._grant_next()
