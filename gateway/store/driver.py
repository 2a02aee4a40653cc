"""The hot path's statements sent to the database driver directly (issue 20).

Through SQLAlchemy's asyncio layer one INSERT of a stored message cost about 0.18 ms of CPU,
sent to asyncpg directly about 0.09 ms: the greenlet switches, the execution context and the
result object around every statement were more than half of it. On SQLite, where a statement
itself takes some microseconds in process, SQLAlchemy's execution context, parameter
processing and result object around it were about a quarter of each gateway's busy time
under load (py-spy, 2026-12-07). A `Prepared` statement is a SQLAlchemy statement compiled
once per dialect: its SQL text, the order of its parameters and each parameter's bind
processor (the UtcDateTime decorator's, for one), so that what reaches the database is what
SQLAlchemy would have sent. It runs on the unit of work's own driver connection (asyncpg's,
or sqlite3's wrapped in `SqliteDriver`), inside the batch's transaction
(gateway.store.group), and the driver's errors come out as SQLAlchemy's (IntegrityError for a
constraint, OperationalError or DBAPIError for the rest), which is what the callers and
STORAGE_ERRORS expect. Outside a unit of work statements go through SQLAlchemy."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.store.inline import DbConnection


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    fixed: dict[str, Any]  # the values the statement carries itself (`WHERE id = 1`)


class SqliteDriver:
    """The unit of work's sqlite3 connection (the writer's, inside the batch's transaction),
    with the part of asyncpg's API that `Prepared` and the batch's savepoints
    (gateway.store.group) use, so that they run the same on both databases. The calls run
    where they are made, as every SQLite statement of the store does (gateway.store.inline),
    and raise SQLAlchemy's errors, as SQLAlchemy's nested transaction did."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    async def execute(self, sql: str, *args: Any) -> str:
        """Run it; a status ending in the number of rows it changed, as asyncpg's does."""
        with _as_sqlalchemy_errors(sql):
            changed = self.connection.execute(sql, args).rowcount
        return f"{sql.split(None, 1)[0].upper()} {max(changed, 0)}"

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _as_sqlalchemy_errors(sql):
            self.connection.executemany(sql, rows)

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with _as_sqlalchemy_errors(sql):
            cursor = self.connection.execute(sql, args)
            try:
                found = cursor.fetchone()
                names = [d[0] for d in cursor.description]
            finally:
                cursor.close()
        return None if found is None else dict(zip(names, found, strict=True))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))


class Prepared:
    """One statement of the hot path, compiled for the unit of work's dialect on first use."""

    def __init__(self, statement: Executable, keys: Sequence[str] | None = None) -> None:
        """`keys`: the columns an INSERT or UPDATE without .values() sets (as SQLAlchemy's
        column_keys), which are the parameters it is executed with."""
        self.statement = statement
        self._keys = list(keys) if keys is not None else None
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            assert isinstance(self.statement, ClauseElement)
            compiled = self.statement.compile(dialect=dialect, column_keys=self._keys)
            assert isinstance(compiled, SQLCompiler)
            names = tuple(compiled.positiontup or ())
            binds = [compiled.binds[n] for n in names]
            processors = tuple(b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds)
            fixed = {
                n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required
            }
            found = self._compiled[dialect.name] = _Compiled(
                compiled.string, names, processors, fixed
            )
        return found

    def _arguments(self, compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        values = [params[n] if n in params else compiled.fixed[n] for n in compiled.names]
        return [
            value if process is None else process(value)
            for value, process in zip(values, compiled.processors, strict=True)
        ]

    async def run(
        self,
        conn: DbConnection,
        driver: Any,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    ) -> int:
        """Run it in a unit of work: on its driver connection when there is one, else through
        SQLAlchemy on `conn`; a sequence of parameter sets runs it once for each. The number
        of rows it changed (0 for several sets)."""
        if driver is None:
            done = await conn.execute(self.statement, params)
            return 0 if isinstance(params, Sequence) else int(done.rowcount)
        if isinstance(params, Sequence):
            await self.executemany(driver, conn.dialect, params)
            return 0
        return await self.execute(driver, conn.dialect, params)

    async def execute(self, driver: Any, dialect: Dialect, params: Mapping[str, Any]) -> int:
        """Run it; the number of rows it changed."""
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            status: str = await driver.execute(compiled.sql, *self._arguments(compiled, params))
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def executemany(
        self, driver: Any, dialect: Dialect, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            await driver.executemany(compiled.sql, [self._arguments(compiled, r) for r in rows])

    async def fetchrow(
        self, driver: Any, dialect: Dialect, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row as the driver gives it (column name -> value, no result
        processing: for columns whose driver value is the value itself), or None."""
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            row: Mapping[str, Any] | None = await driver.fetchrow(
                compiled.sql, *self._arguments(compiled, params)
            )
        return row

    async def fetchval(self, driver: Any, dialect: Dialect, params: Mapping[str, Any]) -> Any:
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            return await driver.fetchval(compiled.sql, *self._arguments(compiled, params))


@contextmanager
def _as_sqlalchemy_errors(sql: str) -> Iterator[None]:
    """The driver's errors raised as SQLAlchemy would have raised them (one raised as such
    already, by SqliteDriver, goes on unchanged)."""
    try:
        yield
    except SQLAlchemyError:
        raise
    except Exception as exc:
        raise _translated(exc, sql) from exc


def _translated(exc: Exception, sql: str) -> Exception:
    """The driver's error as SQLAlchemy would have raised it; anything else unchanged."""
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(sql, None, exc)
    if isinstance(exc, sqlite3.OperationalError):  # "database is locked", a full disk
        return OperationalError(sql, None, exc)
    if isinstance(exc, sqlite3.Error):
        return DBAPIError(sql, None, exc)
    try:
        import asyncpg  # type: ignore[import-untyped]  # the `postgres` extra's driver
    except ImportError:  # installed for SQLite alone: no error of asyncpg's to translate
        return exc

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, None, exc)
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
        return DBAPIError(sql, None, exc)
    return exc
