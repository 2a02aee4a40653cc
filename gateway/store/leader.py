"""Leadership among the processes (nodes) of one authority that share a PostgreSQL database.

The tasks that must run once per authority, not once per node (the deadline scheduler, the
payload retention keeper, the reconciliation of undeliverable messages), run on one node at a
time. A node leads a task while it holds a session-level advisory lock
(`pg_try_advisory_lock`) on a connection of its own, outside the store's pool and in
autocommit mode (it never sits idle in a transaction). A node that does not hold the lock
tries again every few seconds. When the leader's process dies, PostgreSQL ends its session
and with it the lock, and another node takes over at its next try. A leader checks its lock
connection at the same interval; if the connection fails (the lock may already be someone
else's) it stops the task at once and competes again.

Leadership saves doing the work twice; it is not what makes the work correct. Every deadline
consequence is applied by a conditional update inside the transaction that records it, so
even two nodes running the scheduler for the seconds a lost connection takes to notice apply
each expiry once.

On SQLite (one process per database) there is nobody to elect: the task simply runs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.store.store import STORAGE_ERRORS, Store

RETRY_SECONDS = 3.0
"""How often a follower tries to take the lock, and a leader checks its lock connection."""


def lock_key(name: str) -> int:
    """The advisory lock key of task `name`: a stable signed 64-bit integer."""
    digest = hashlib.sha256(f"dublin-gateway:leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def node_name() -> str:
    """This process, as logs name it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """Runs one task (`name`) on whichever node holds the task's advisory lock."""

    def __init__(
        self,
        store: Store,
        name: str,
        log: structlog.stdlib.BoundLogger,
        *,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.name = name
        self.key = lock_key(name)
        self.retry_seconds = retry_seconds
        self.log = log
        self.leading = False
        """Whether this node runs the task now (always true on SQLite once started)."""
        self._following = False

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` while this node leads; returns when `work` returns, raises what it
        raises; cancelling stops `work` and gives up the lock."""
        if not self.store.postgres:
            self.leading = True
            try:
                await work()
            finally:
                self.leading = False
            return
        # The lock's own connection: not from the pool, so that closing it really ends the
        # session (a pooled connection would keep a lock it failed to release).
        engine = create_async_engine(
            self.store.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            while True:
                conn = await self._acquire(engine)
                if conn is None:
                    await asyncio.sleep(self.retry_seconds)
                    continue
                try:
                    if await self._lead(conn, work):
                        return
                finally:
                    await self._release(conn)
                await asyncio.sleep(self.retry_seconds)
        finally:
            await engine.dispose()

    async def _acquire(self, engine: AsyncEngine) -> AsyncConnection | None:
        """A connection holding the lock, or None (another node leads, or no database)."""
        try:
            conn = await engine.connect()
        except STORAGE_ERRORS as exc:
            self.log.warning(
                "leader election cannot reach the database", task=self.name, error=str(exc)[:200]
            )
            return None
        try:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            ).scalar_one()
        except STORAGE_ERRORS as exc:
            await self._close(conn)
            self.log.warning(
                "leader election cannot reach the database", task=self.name, error=str(exc)[:200]
            )
            return None
        except BaseException:
            await self._close(conn)
            raise
        if not got:
            await self._close(conn)
            if not self._following:
                self._following = True
                self.log.info("another node leads; standing by", task=self.name, node=node_name())
            return None
        self._following = False
        return conn

    async def _lead(self, conn: AsyncConnection, work: Callable[[], Awaitable[None]]) -> bool:
        """Run `work` while `conn` lives. True: `work` returned; False: leadership lost."""
        self.leading = True
        self.log.info("leadership acquired", task=self.name, node=node_name())
        task = asyncio.ensure_future(work())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.retry_seconds)
                if done:
                    task.result()
                    return True
                try:
                    async with asyncio.timeout(self.retry_seconds):
                        await conn.execute(text("SELECT 1"))
                except (*STORAGE_ERRORS, TimeoutError) as exc:
                    self.log.warning(
                        "leadership lost: the lock connection failed",
                        task=self.name,
                        node=node_name(),
                        error=str(exc)[:200],
                    )
                    return False
        finally:
            self.leading = False
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _release(self, conn: AsyncConnection) -> None:
        with contextlib.suppress(*STORAGE_ERRORS, TimeoutError):
            async with asyncio.timeout(self.retry_seconds):
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        await self._close(conn)
        self.log.info("leadership released", task=self.name, node=node_name())

    async def _close(self, conn: AsyncConnection) -> None:
        # Closing the session releases any lock it still holds.
        with contextlib.suppress(*STORAGE_ERRORS, TimeoutError):
            async with asyncio.timeout(self.retry_seconds):
                await conn.close()


async def lead(
    store: Store,
    name: str,
    work: Callable[[], Awaitable[None]],
    log: structlog.stdlib.BoundLogger,
) -> None:
    """Run `work` on one node at a time among those sharing `store` (see the module)."""
    await Leadership(store, name, log).run(work)
