"""Fresh PostgreSQL databases for tests: one per gateway per test, created under a unique name
on the server GATEWAY_TEST_POSTGRES_URL names and dropped when the test ends.

`GATEWAY_TEST_DATABASE=postgres` runs every local network of the integration suite on them
(`make test-postgres`); tests that need PostgreSQL whatever the suite runs on (several
nodes of one authority) ask for the `postgres_databases` fixture."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

PG_ENV = "GATEWAY_TEST_POSTGRES_URL"
DATABASE_ENV = "GATEWAY_TEST_DATABASE"
SKIP_REASON = (
    f"needs PostgreSQL: set {PG_ENV}=postgresql+asyncpg://user@host:port/db "
    "(a server on which the tests may CREATE DATABASE)"
)


def server_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def suite_database() -> str:
    """What the integration suite's gateways store in: "sqlite" (default) or "postgres"."""
    choice = os.environ.get(DATABASE_ENV, "sqlite") or "sqlite"
    if choice not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"{DATABASE_ENV} must be sqlite or postgres, not {choice!r}")
    return choice


class PostgresDatabases:
    """Creates databases on demand (also from inside a running event loop: the DDL runs on a
    thread of its own) and drops them all at `drop_all`."""

    def __init__(self, server: str) -> None:
        self.server = make_url(server)
        self.names: list[str] = []

    def create(self, code: str) -> str:
        """A new, empty database for the gateway of `code`; its database_url."""
        name = f"gw_test_{uuid.uuid4().hex[:12]}_{re.sub(r'[^a-z0-9]', '_', code.lower())}"
        self._run(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        names, self.names = self.names, []
        self._run(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))

    def _run(self, *statements: str) -> None:
        if not statements:
            return

        async def run() -> None:
            engine = create_async_engine(
                self.server, isolation_level="AUTOCOMMIT", poolclass=NullPool
            )
            try:
                async with engine.connect() as conn:
                    for sql in statements:
                        await conn.execute(text(sql))
            finally:
                await engine.dispose()

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run()).result(timeout=120)


@contextmanager
def scratch_database(code: str) -> Iterator[str]:
    """A fresh database for one test's gateway `code` (the test skips without a server to
    create it on); dropped when the block ends."""
    server = server_url()
    if server is None:
        pytest.skip(SKIP_REASON)
    databases = PostgresDatabases(server)
    try:
        yield databases.create(code)
    finally:
        databases.drop_all()
