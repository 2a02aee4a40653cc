"""Persistence: one `Store` per gateway, and units of work (`Store.transaction()`) in which
every change commits together or not at all. What is stored is reached through one
repository per kind of record (gateway/store/repositories/): `store.messages`,
`store.outbox`, `store.register`, `store.deadlines`, `store.conversations`, `store.trust` read
what is committed, each on a connection of its own; `tx.messages`, ... read and write inside
the unit of work.

SQLite (WAL, synchronous=FULL) is the default and serves one gateway process; PostgreSQL
lets several processes of one authority share the outbox (claims use FOR UPDATE SKIP LOCKED)
and serialises register appends on the register_head row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.store.files import private_database
from gateway.store.group import CommitAborted, GroupCommitter
from gateway.store.inline import DbConnection, DbEngine, InlineEngine
from gateway.store.records import Checkpointer, OutboxItem
from gateway.store.repositories.conversations import Conversations
from gateway.store.repositories.deadlines import Deadlines
from gateway.store.repositories.messages import Messages
from gateway.store.repositories.operational import OperationalItems
from gateway.store.repositories.outbox import Outbox
from gateway.store.repositories.register import Register, write_head
from gateway.store.repositories.trust import Trust
from gateway.store.schema import register_head

MIGRATIONS = Path(str(resources.files("gateway.store").joinpath("migrations")))
"""Package data; Alembic reads its scripts from a folder of files."""
# The database refuses or cannot be reached (full, read-only, down): worth retrying later.
STORAGE_ERRORS = (SQLAlchemyError, OSError, CommitAborted)
_WRITE = "gateway_write"
_MIGRATE = 0x6477_6D69_6772_6174  # advisory lock key serialising migrations ("dwmigrat")


class Transaction:
    """One unit of work. Everything done through it commits together or not at all."""

    def __init__(
        self,
        engine: DbEngine,
        conn: DbConnection,
        postgres: bool,
        checkpointer: Checkpointer | None = None,
        shared: dict[str, Any] | None = None,
        driver: Any = None,
    ) -> None:
        self.conn = conn
        self.messages = Messages(engine, postgres, conn, driver)
        self.outbox = Outbox(engine, postgres, conn, driver)
        self.register = Register(
            engine, postgres, conn, driver, checkpointer=checkpointer, shared=shared
        )
        self.deadlines = Deadlines(engine, postgres, conn, driver)
        self.conversations = Conversations(engine, postgres, conn, driver)
        self.trust = Trust(engine, postgres, conn, driver)
        self.items = OperationalItems(engine, postgres, conn, driver)
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this unit of work is durable (never if it is not): whoever
        it wakes then finds what this unit wrote."""
        self._after_commit.append(callback)


POOL_SIZE = 12
"""PostgreSQL connections a gateway process keeps open for reads and its writer."""
POOL_OVERFLOW = 8
"""More it may open for a burst (closed again after use). Three processes at their most stay
under PostgreSQL's default max_connections (100)."""


class Store:
    def __init__(self, engine: AsyncEngine | InlineEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        # One writer connection, group-committed: SQLite allows one writer anyway, and one
        # flush per batch instead of one per unit of work is most of the write cost.
        self._writer = GroupCommitter(engine, {_WRITE: True}, before_commit=write_head)
        self.checkpointer: Checkpointer | None = None
        self.messages = Messages(engine, self.postgres)
        self.outbox = Outbox(engine, self.postgres)
        self.register = Register(engine, self.postgres)
        self.deadlines = Deadlines(engine, self.postgres)
        self.conversations = Conversations(engine, self.postgres)
        self.trust = Trust(engine, self.postgres)
        self.items = OperationalItems(engine, self.postgres)

    @classmethod
    async def open(cls, url: str) -> Store:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                private_database(Path(parsed.database))
            # The configured URL names the asyncio driver; statements run inline (inline.py).
            sync_engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            engine: AsyncEngine | InlineEngine = InlineEngine(sync_engine)

            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # We emit BEGIN ourselves (below): the driver's implicit one is deferred.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine.sync_engine, "begin")
            def _begin(conn: Connection) -> None:
                # A writer takes the write lock up front, so that two writers (even in two
                # processes) queue instead of failing when a read lock cannot be upgraded.
                # Readers need no BEGIN: each statement reads a committed snapshot of its own
                # (WAL), and the register is append-only, so pages read one after another
                # still form one consistent prefix. That saves two statements per read.
                if conn.get_execution_options().get(_WRITE, False):
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # asyncpg. Reads run on connections of their own beside the writer's: under load
            # dozens at once. With SQLAlchemy's default pool (5, overflow 10) most of them
            # were overflow connections, opened (TLS attempt included) and closed for every
            # read: a tenth of the process's time in the profile (issue 20). Kept open now.
            # Reads run in autocommit: under READ COMMITTED every statement of a transaction
            # takes a snapshot of its own anyway, so a read transaction adds nothing but its
            # BEGIN and ROLLBACK, and the pool's liveness check one more pair: six round trips
            # per read instead of two (the statement log, issue 20). The liveness check stays
            # (one round trip now): checking only idle connections let the first read after
            # the server ended every session fail now and then. The writer sends its own
            # BEGIN (gateway.store.group); the migration asks for a READ COMMITTED one.
            engine = create_async_engine(
                url,
                pool_pre_ping=True,
                pool_size=POOL_SIZE,
                max_overflow=POOL_OVERFLOW,
                isolation_level="AUTOCOMMIT",
            )
        store = cls(engine)
        await store.migrate()
        return store

    async def migrate(self) -> None:
        def upgrade(sync_conn: Connection) -> None:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.connect() as plain:
            # A transaction of SQLAlchemy's own on PostgreSQL (the engine reads in autocommit).
            isolation = {"isolation_level": "READ COMMITTED"} if self.postgres else {}
            conn = await plain.execution_options(**{_WRITE: True}, **isolation)
            trans = await conn.begin()  # all or nothing
            try:
                if self.postgres:
                    # Nodes starting together: one migrates, the others wait and find it done.
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE}
                    )
                await conn.run_sync(upgrade)
            except BaseException:
                await trans.rollback()
                raise
            await trans.commit()

    async def close(self) -> None:
        await self._writer.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One unit of work: all of it is stored, durably, when the block exits without an
        exception, or none of it. Units are group-committed (gateway.store.group)."""
        async with self._writer.unit() as (conn, shared, driver):
            tx = Transaction(self.engine, conn, self.postgres, self.checkpointer, shared, driver)
            yield tx
        for callback in tx._after_commit:
            callback()

    async def ping(self) -> None:
        """Read the register head on a connection of its own (with SQLite, on a worker thread,
        so that a lock held elsewhere makes it wait there, not on the event loop): raises
        what the database raises when it cannot be used. Readiness probes call it."""
        await self.register.read_aside(select(register_head.c.sequence))

    async def committed(self) -> None:
        """Wait until every unit of work begun before this call is durable (a reader on
        another connection then sees it)."""
        await self._writer.barrier()

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxItem]:
        """Claim due deliveries for `lease`, in a unit of work of their own."""
        async with self.transaction() as tx:
            return await tx.outbox.claim(now, limit, lease)

    async def release_leases(self) -> None:
        """At start of a single-process (SQLite) gateway no claim can still be live."""
        if not self.postgres:
            async with self.transaction() as tx:
                await tx.outbox.release_all_leases()

    def sqlite_path(self) -> str | None:
        """The SQLite database file, for read-only verification in worker processes."""
        url = self.engine.url
        if self.postgres or not url.database or url.database == ":memory:":
            return None
        return str(url.database)
