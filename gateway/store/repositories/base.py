"""What every repository stands on: the engine, and the unit of work's connection if any."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import CursorResult, Executable

from gateway.store.driver import OnConflict, Prepared
from gateway.store.inline import DbConnection, DbEngine, InlineEngine


class Repository:
    """Reads on the unit of work's connection (`conn`), or without one on a connection of
    their own per call, which sees what is committed."""

    def __init__(
        self,
        engine: DbEngine,
        postgres: bool,
        conn: DbConnection | None = None,
        driver: Any = None,
    ):
        self.engine = engine
        self.postgres = postgres
        self._conn = conn
        # The unit of work's driver connection (asyncpg's, or sqlite3's in a SqliteDriver;
        # None outside a unit of work): the hot path's statements go to it directly
        # (gateway.store.driver).
        self._driver = driver

    async def _write(self, statement: Prepared, params: Mapping[str, Any]) -> int:
        """Run a write of the unit of work now; the number of rows it changed."""
        return await statement.run(self.conn, self._driver, params)

    async def _defer(
        self, statement: Prepared, params: Mapping[str, Any], conflict: OnConflict = None
    ) -> None:
        """A write of the unit of work whose result it does not need: sent with the unit's
        next statement or at its end (gateway.store.driver); `conflict`: what its
        constraint error is raised as."""
        await statement.defer(self.conn, self._driver, params, conflict)

    async def _unit_conn(self) -> DbConnection:
        """The unit of work's connection for a statement through SQLAlchemy, once the writes
        the unit deferred are sent: they go before it, in the order they were made."""
        conn = self.conn
        if self._driver is not None:
            await self._driver.flush()
        return conn

    async def _execute(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        """Run a statement of the unit of work through SQLAlchemy, after what it deferred."""
        return await (await self._unit_conn()).execute(statement, params)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        if self._conn is not None:
            yield await self._unit_conn()
            return
        async with self.engine.connect() as conn:
            yield conn

    async def read_aside(self, statement: Executable) -> list[tuple[Any, ...]]:
        """The rows of a read on a connection of its own and, with SQLite, on a worker thread:
        for what a monitor asks (a count at scrape time, a readiness probe), which must not
        hold up the event loop however many rows it counts or however long a lock holds it."""
        if isinstance(self.engine, InlineEngine):
            return await self.engine.run_in_thread(
                lambda conn: [tuple(r) for r in conn.execute(statement)]
            )
        async with self.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(statement)]

    @property
    def conn(self) -> DbConnection:
        """The unit of work's connection; writes need one."""
        if self._conn is None:
            raise RuntimeError("a write needs a unit of work (Store.transaction())")
        return self._conn
