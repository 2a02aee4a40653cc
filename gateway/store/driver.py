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
STORAGE_ERRORS expect. Outside a unit of work statements go through SQLAlchemy.

On PostgreSQL every statement is a round trip to the server, about 0.17 ms of CPU between
client and server on loopback, and a message cost about 17 of them (issue 20). A write whose
result the unit does not need (a message, its outbox row, a case created, a time limit) is
therefore deferred (`Prepared.defer`): it is sent with the unit's next statement, as a
data-modifying WITH in front of it (`WITH gw_0 AS (INSERT ...) SELECT ...`), or at the end of
the unit, all of them in one statement. PostgreSQL runs every part of such a statement to
completion or fails the statement whole, but in an order of its own, and the parts do not
see each other's rows: a statement that touches a table a deferred write touches is
therefore sent after it, not with it. A deferred write's constraint error comes out where
it is sent, mapped by the table PostgreSQL names to the error its caller asked for
(DuplicateMessage for a message id taken), and fails the unit (gateway.store.group) as it
did when it was sent at once. A failed unit's deferred writes are dropped with it. On SQLite,
in process, a deferred write runs at once."""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
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


Tables = frozenset[str] | None
"""The tables a statement reads or writes; None: not known (it goes alone, after the writes
deferred before it)."""
OnConflict = Callable[[], Exception] | None
"""What a deferred write's constraint error is raised as (None: IntegrityError itself)."""


class SqliteDriver:
    """The unit of work's sqlite3 connection (the writer's, inside the batch's transaction),
    with the part of asyncpg's API that `Prepared` and the batch's savepoints
    (gateway.store.group) use, so that they run the same on both databases. The calls run
    where they are made, as every SQLite statement of the store does (gateway.store.inline),
    and raise SQLAlchemy's errors, as SQLAlchemy's nested transaction did."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    async def execute(self, sql: str, *args: Any, tables: Tables = None) -> str:
        """Run it; a status ending in the number of rows it changed, as asyncpg's does."""
        with _as_sqlalchemy_errors(sql):
            changed = self.connection.execute(sql, args).rowcount
        return f"{sql.split(None, 1)[0].upper()} {max(changed, 0)}"

    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], tables: Tables = None
    ) -> None:
        with _as_sqlalchemy_errors(sql):
            self.connection.executemany(sql, rows)

    async def defer(
        self, sql: str, args: Sequence[Any], tables: Tables, conflict: OnConflict = None
    ) -> None:
        """In process a statement costs no round trip: it runs now."""
        try:
            await self.execute(sql, *args)
        except IntegrityError as exc:
            if conflict is None:
                raise
            raise conflict() from exc

    async def defer_rows(self, sql: str, rows: Sequence[Sequence[Any]], tables: Tables) -> None:
        """In process: executed now, once per row."""
        await self.executemany(sql, rows)

    async def flush(self) -> None:
        """Nothing is deferred on SQLite."""

    def discard(self) -> None:
        """Nothing is deferred on SQLite."""

    async def fetchrow(self, sql: str, *args: Any, tables: Tables = None) -> dict[str, Any] | None:
        with _as_sqlalchemy_errors(sql):
            cursor = self.connection.execute(sql, args)
            try:
                found = cursor.fetchone()
                names = [d[0] for d in cursor.description]
            finally:
                cursor.close()
        return None if found is None else dict(zip(names, found, strict=True))

    async def fetchval(self, sql: str, *args: Any, tables: Tables = None) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))


@dataclass(frozen=True)
class _Deferred:
    sql: str
    args: Sequence[Any]
    tables: Tables
    conflict: OnConflict


MAX_DEFERRED = 16
"""Deferred writes sent together at most (a unit of work defers three or four)."""
_MAX_ARGUMENTS = 30_000
"""PostgreSQL takes at most 32,767 parameters in one statement."""


class PostgresDriver:
    """The unit of work's asyncpg connection, which sends the writes the unit deferred with
    its next statement (see the module's docstring); errors come out as SQLAlchemy's."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._pending: list[_Deferred] = []

    async def execute(self, sql: str, *args: Any, tables: Tables = None) -> str:
        status: str = await self._now(self.connection.execute, sql, args, tables)
        return status

    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], tables: Tables = None
    ) -> None:
        await self.flush()
        await self._send(self.connection.executemany, sql, (rows,), ())

    async def fetchrow(self, sql: str, *args: Any, tables: Tables = None) -> Any:
        return await self._now(self.connection.fetchrow, sql, args, tables)

    async def fetchval(self, sql: str, *args: Any, tables: Tables = None) -> Any:
        return await self._now(self.connection.fetchval, sql, args, tables)

    async def defer(
        self, sql: str, args: Sequence[Any], tables: Tables, conflict: OnConflict = None
    ) -> None:
        if not _combinable(sql):
            await self.flush()
            alone = _Deferred(sql, args, tables, conflict)
            await self._send(self.connection.execute, sql, args, (alone,))
            return
        if self._pending and (
            self._overlaps(tables)
            or len(self._pending) >= MAX_DEFERRED
            or sum(len(d.args) for d in self._pending) + len(args) > _MAX_ARGUMENTS
        ):
            await self.flush()
        self._pending.append(_Deferred(sql, args, tables, conflict))

    async def defer_rows(self, sql: str, rows: Sequence[Sequence[Any]], tables: Tables) -> None:
        """One statement run for many rows, deferred as one statement: the rows' values go as
        one array per parameter, read back row by row with unnest (one execution on the
        server instead of one per row). A statement that cannot be so written (one with
        RETURNING) is run for each row now."""
        many = _unnested(sql)
        if many is None or not rows:
            await self.executemany(sql, rows)
            return
        await self.defer(many, [list(column) for column in zip(*rows, strict=True)], tables)

    async def flush(self) -> None:
        """Send the deferred writes (one statement), in the order they were made."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        *before, last = pending
        sql, args = _carried(tuple(d.sql for d in before), last.sql, before, last.args)
        await self._send(self.connection.execute, sql, args, pending)

    def discard(self) -> None:
        """Drop the deferred writes: their unit of work is being rolled back."""
        self._pending = []

    def _overlaps(self, tables: Tables) -> bool:
        return tables is None or any(
            d.tables is None or not d.tables.isdisjoint(tables) for d in self._pending
        )

    async def _now(
        self, call: Callable[..., Awaitable[Any]], sql: str, args: Sequence[Any], tables: Tables
    ) -> Any:
        """Run a statement now, with the deferred writes in front of it when it touches none
        of their tables, else after them."""
        if self._pending and (self._overlaps(tables) or not _combinable(sql)):
            await self.flush()
        pending, self._pending = self._pending, []
        if pending:
            sql, args = _carried(tuple(d.sql for d in pending), sql, pending, args)
        return await self._send(call, sql, (*args,), pending)

    async def _send(
        self,
        call: Callable[..., Awaitable[Any]],
        sql: str,
        args: Sequence[Any],
        deferred: Sequence[_Deferred],
    ) -> Any:
        try:
            return await call(sql, *args)
        except Exception as exc:
            error = _translated(exc, sql)
            if isinstance(error, IntegrityError):
                table = getattr(exc, "table_name", None)
                for d in deferred:
                    if d.conflict is not None and d.tables is not None and table in d.tables:
                        raise d.conflict() from error
            if error is exc:
                raise
            raise error from exc


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _combinable(sql: str) -> bool:
    """A statement that can take deferred writes in front of it (one that has a WITH of its
    own, or is no DML or SELECT, goes alone)."""
    return sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE", "SELECT")


def _carried(
    sqls: tuple[str, ...], sql: str, deferred: Sequence[_Deferred], args: Sequence[Any]
) -> tuple[str, list[Any]]:
    """`sql` with the deferred writes in front of it, and the parameters of them all."""
    text = _carried_text(sqls, sql, tuple(len(d.args) for d in deferred))
    values: list[Any] = []
    for d in deferred:
        values.extend(d.args)
    values.extend(args)
    return text, values


@functools.lru_cache(maxsize=256)
def _carried_text(sqls: tuple[str, ...], sql: str, counts: tuple[int, ...]) -> str:
    """The statement's text: each part's parameters ($1, $2, ...) numbered after the parts'
    before it. The texts are compiled from SQLAlchemy's constructs, whose values are all
    parameters: a `$` is a placeholder."""
    if not sqls:
        return sql
    parts, offset = [], 0
    for i, (part, count) in enumerate(zip(sqls, counts, strict=True)):
        parts.append(f"gw_{i} AS ({_shifted(part, offset)})")
        offset += count
    return f"WITH {', '.join(parts)} {_shifted(sql, offset)}"


def _shifted(sql: str, offset: int) -> str:
    if not offset:
        return sql
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + offset}", sql)


_TYPED = re.compile(r"\$(\d+)::([A-Z]+(?: (?:WITHOUT|WITH|TIME|ZONE|PRECISION|VARYING))*)")
_VALUES = re.compile(r" VALUES \((.*)\)$")


@functools.lru_cache(maxsize=64)
def _unnested(sql: str) -> str | None:
    """An INSERT ... VALUES or an UPDATE ... WHERE as SQLAlchemy compiles it for asyncpg
    (every parameter cast to its type: `$2::TIMESTAMP WITHOUT TIME ZONE`), taking one array
    per parameter instead: the parameters become the columns of `unnest` over the arrays
    (`gw_rows.c2`), one row of them per row to write. None for any other shape."""
    typed = {int(n): t for n, t in _TYPED.findall(sql)}
    if not typed or sorted(typed) != list(range(1, len(typed) + 1)) or " RETURNING " in sql:
        return None
    if sql.count("$") != len(typed):  # a parameter without its type, or another `$`
        return None
    arrays = ", ".join(f"${n}::{t}[]" for n, t in sorted(typed.items()))
    names = ", ".join(f"c{n}" for n in sorted(typed))
    source = f"unnest({arrays}) AS gw_rows({names})"
    columns = _TYPED.sub(lambda m: f"gw_rows.c{m.group(1)}", sql)
    if sql.startswith("INSERT INTO "):
        values = _VALUES.search(columns)
        if values is None:
            return None
        # Built from the compiled statement's own text: no value is in it.
        return f"{columns[: values.start()]} SELECT {values.group(1)} FROM {source}"  # noqa: S608
    if sql.startswith("UPDATE ") and columns.count(" WHERE ") == 1:
        return columns.replace(" WHERE ", f" FROM {source} WHERE ")
    return None


def _tables(statement: Executable) -> Tables:
    """The tables a hot-path statement touches: an INSERT's, UPDATE's or DELETE's own, a
    SELECT's FROM list; None for anything else."""
    table = getattr(statement, "table", None)
    if table is not None:
        return frozenset({table.name})
    froms = getattr(statement, "get_final_froms", None)
    if froms is None:
        return None
    names = [getattr(f, "name", None) for f in froms()]
    found = {n for n in names if isinstance(n, str)}
    if not names or len(found) != len(set(names)):
        return None
    return frozenset(found)


class Prepared:
    """One statement of the hot path, compiled for the unit of work's dialect on first use."""

    def __init__(self, statement: Executable, keys: Sequence[str] | None = None) -> None:
        """`keys`: the columns an INSERT or UPDATE without .values() sets (as SQLAlchemy's
        column_keys), which are the parameters it is executed with."""
        self.statement = statement
        self.tables = _tables(statement)
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
            status: str = await driver.execute(
                compiled.sql, *self._arguments(compiled, params), tables=self.tables
            )
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def executemany(
        self, driver: Any, dialect: Dialect, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            await driver.executemany(
                compiled.sql, [self._arguments(compiled, r) for r in rows], tables=self.tables
            )

    async def fetchrow(
        self, driver: Any, dialect: Dialect, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row as the driver gives it (column name -> value, no result
        processing: for columns whose driver value is the value itself), or None."""
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            row: Mapping[str, Any] | None = await driver.fetchrow(
                compiled.sql, *self._arguments(compiled, params), tables=self.tables
            )
        return row

    async def fetchval(self, driver: Any, dialect: Dialect, params: Mapping[str, Any]) -> Any:
        compiled = self._compile(dialect)
        with _as_sqlalchemy_errors(compiled.sql):
            return await driver.fetchval(
                compiled.sql, *self._arguments(compiled, params), tables=self.tables
            )

    async def defer_rows(
        self, conn: DbConnection, driver: Any, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run it once for each of `rows` in a unit of work: on PostgreSQL deferred as one
        statement for them all (PostgresDriver.defer_rows); on SQLite now."""
        if driver is None:
            await conn.execute(self.statement, list(rows))
            return
        compiled = self._compile(conn.dialect)
        args = [self._arguments(compiled, r) for r in rows]
        with _as_sqlalchemy_errors(compiled.sql):
            await driver.defer_rows(compiled.sql, args, self.tables)

    async def defer(
        self,
        conn: DbConnection,
        driver: Any,
        params: Mapping[str, Any],
        conflict: OnConflict = None,
    ) -> None:
        """Run it in a unit of work when the unit's next statement goes, or at its end (on
        PostgreSQL; see the module's docstring); `conflict`: what its constraint error is
        raised as."""
        if driver is None:
            try:
                await conn.execute(self.statement, params)
            except IntegrityError as exc:
                if conflict is None:
                    raise
                raise conflict() from exc
            return
        compiled = self._compile(conn.dialect)
        await driver.defer(compiled.sql, self._arguments(compiled, params), self.tables, conflict)


@contextmanager
def _as_sqlalchemy_errors(sql: str) -> Iterator[None]:
    """The driver's errors raised as SQLAlchemy would have raised them (one raised as such
    already, by SqliteDriver, goes on unchanged)."""
    try:
        yield
    except SQLAlchemyError:
        raise
    except Exception as exc:
        error = _translated(exc, sql)
        if error is exc:  # not the driver's: as it is
            raise
        raise error from exc


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
    # InternalClientError: asyncpg's connection in a state it cannot go on from (seen when
    # the server ended the connection under a statement): the database cannot be used.
    failed = asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.InternalClientError
    if isinstance(exc, failed | OSError):
        return DBAPIError(sql, None, exc)
    return exc
