"""What every repository stands on: the engine, and the unit of work's connection if any."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.store.inline import DbConnection, DbEngine


class Repository:
    """Reads on the unit of work's connection (`conn`), or without one on a connection of
    their own per call, which sees what is committed."""

    def __init__(self, engine: DbEngine, postgres: bool, conn: DbConnection | None = None):
        self.engine = engine
        self.postgres = postgres
        self._conn = conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConnection]:
        if self._conn is not None:
            yield self._conn
            return
        async with self.engine.connect() as conn:
            yield conn

    @property
    def conn(self) -> DbConnection:
        """The unit of work's connection; writes need one."""
        if self._conn is None:
            raise RuntimeError("a write needs a unit of work (Store.transaction())")
        return self._conn
