"""The hot path's statements sent to the database driver directly (gateway/store/driver.py).

What a `Prepared` statement stores must be what SQLAlchemy would have stored, byte for byte:
the register's hash covers the canonical form of each row as the database returns it (Art.
40(9): the register proves every transmission), so a time written in another format breaks
the chain as surely as an edit. Its errors must be SQLAlchemy's, which is what a repeated
message id (DuplicateMessage) and a storage failure (STORAGE_ERRORS) are recognised by.

On PostgreSQL the writes a unit of work defers go with its next statement: every one of them
must be stored when the unit is, in the order made and visible to what the unit reads
after them, none when it fails, and a message id taken must still be DuplicateMessage
(Art. 40: every transmission stored once)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.core.conversations import Conversation, State
from gateway.store.driver import (
    PostgresDriver,
    Prepared,
    SqliteDriver,
    _carried_text,
    _unnested,
)
from gateway.store.records import DuplicateMessage, NewDeadline, NewMessage
from gateway.store.schema import deadlines, messages, outbox
from gateway.store.store import STORAGE_ERRORS, Store, Transaction
from tests.postgres import scratch_database

# Not UTC and with microseconds: the bind processors (UtcDateTime's, then SQLite's text
# format) must both run.
CREATED = datetime(2026, 12, 7, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))


def message(message_id: str) -> NewMessage:
    return NewMessage(
        message_id=message_id,
        direction="out",
        peer="NL-DU",
        message_type="take-charge-request",
        reference="BE1F-1",
        in_reply_to=None,
        urgent=True,
        created_at=CREATED,
        stored_at=CREATED + timedelta(seconds=1),
        digest="ab" * 32,
        signed_xml=b"<signed>\x00\xff</signed>",
        state="queued",
        receipt_time=datetime(2026, 12, 7, 9, 31, tzinfo=UTC),
        ack_xml=None,
    )


def stored(path: Path, message_id: str) -> dict[str, Any]:
    """The row as SQLite holds it (no SQLAlchemy in between)."""
    with sqlite3.connect(path) as raw:
        raw.row_factory = sqlite3.Row
        row = raw.execute("SELECT * FROM messages WHERE message_id = ?", (message_id,)).fetchone()
    assert row is not None
    return {k: row[k] for k in row.keys() if k not in ("id", "message_id")}


async def test_art40_9_a_prepared_statement_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    insert = Prepared(messages.insert(), list(NewMessage.__dataclass_fields__))
    try:
        async with store._writer.unit() as (conn, _, driver):
            assert isinstance(driver, SqliteDriver)
            await conn.execute(messages.insert(), message("by-sqlalchemy").row())
            assert await insert.run(conn, driver, message("by-driver").row()) == 1
    finally:
        await store.close()
    assert stored(path, "by-driver") == stored(path, "by-sqlalchemy")
    assert stored(path, "by-driver")["created_at"] == "2026-12-07 09:30:15.123456"


async def test_a_repeated_message_id_is_sqlalchemys_integrity_error(tmp_path: Path) -> None:
    """Through the driver a second row with the same message id is refused as SQLAlchemy
    refuses it, which the repository turns into DuplicateMessage; the unit's failure leaves
    the first row and nothing of the second."""
    path = tmp_path / "gw.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        async with store.transaction() as tx:
            await tx.messages.insert(message("once"))
        with pytest.raises(DuplicateMessage) as caught:
            async with store.transaction() as tx:
                await tx.messages.insert(message("once"))
        assert isinstance(caught.value.__cause__, IntegrityError)
        assert isinstance(caught.value.__cause__.orig, sqlite3.IntegrityError)
        found = await store.messages.get("once")
        assert found is not None and found.state == "queued"
    finally:
        await store.close()


async def test_a_database_error_is_sqlalchemys_operational_error(tmp_path: Path) -> None:
    """A failure of the database itself (here a table that is not there) comes out as
    SQLAlchemy's OperationalError, one of the STORAGE_ERRORS the API answers with 503."""
    from sqlalchemy import Column, Integer, MetaData, Table

    missing = Table("missing", MetaData(), Column("n", Integer))
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    try:
        with pytest.raises(OperationalError):
            async with store._writer.unit() as (conn, _, driver):
                await Prepared(missing.insert(), ["n"]).run(conn, driver, {"n": 1})
    finally:
        await store.close()


async def test_an_error_not_the_databases_comes_out_as_it_is_without_the_postgres_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value the store refuses itself (a time without its zone) is that refusal, on an
    installation for SQLite alone too (no asyncpg to look its errors up in)."""
    import sys

    monkeypatch.setitem(sys.modules, "asyncpg", None)  # `import asyncpg` fails, as uninstalled
    naive = replace(message("naive"), created_at=datetime(2026, 12, 7, 10, 30))
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    try:
        with pytest.raises(ValueError, match="naive datetimes are refused"):
            async with store.transaction() as tx:
                await tx.messages.insert(naive)
        assert await store.messages.get("naive") is None
    finally:
        await store.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_database("driver") as url:
        yield url


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[Store]:
    store = await Store.open(pg_url)
    try:
        yield store
    finally:
        await store.close()


class Counting:
    """The unit's asyncpg connection, counting the statements sent through it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.connection, name)

        async def counted(sql: str, *args: Any) -> Any:
            self.sent.append(sql)
            return await call(sql, *args)

        return counted


def counting(tx: Transaction) -> Counting:
    driver = tx.messages._driver
    assert isinstance(driver, PostgresDriver)
    counter = Counting(driver.connection)
    driver.connection = counter
    return counter


CASE = Conversation("BE1F-7", "take-charge", "BE-DU", "NL-DU", State.REQUESTED)


def a_limit(message_id: str) -> NewDeadline:
    return NewDeadline(
        CASE.reference, "reply", "2024/1351", "NL-DU", message_id, CREATED, "2026-12-08",
        CREATED + timedelta(days=1), None,
    )  # fmt: skip


async def count(store: Store, table: Any) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def test_carried_statements_number_their_parameters_after_the_ones_before() -> None:
    combined = _carried_text(
        ("INSERT INTO a VALUES ($1, $2)", "UPDATE b SET x = $1 WHERE y = $2"),
        "SELECT * FROM c WHERE k = $1 AND j = $12",
        (2, 9),
    )
    assert combined == (
        "WITH gw_0 AS (INSERT INTO a VALUES ($1, $2)), "
        "gw_1 AS (UPDATE b SET x = $3 WHERE y = $4) "
        "SELECT * FROM c WHERE k = $12 AND j = $23"
    )
    assert _carried_text((), "SELECT $1", ()) == "SELECT $1"


async def test_art40_a_units_deferred_writes_are_stored_with_one_statement(
    pg_store: Store,
) -> None:
    """A submission's writes (its case, message, outbox row and time limit) reach the server
    as one statement at the end of the unit; every row is stored as written."""
    async with pg_store.transaction() as tx:
        sent = counting(tx)
        assert await tx.conversations.get(CASE.reference) is None
        await tx.conversations.save(CASE, CREATED, new=True)
        await tx.messages.insert(message("m-1"))
        await tx.outbox.enqueue("m-1", CREATED)
        await tx.deadlines.open(a_limit("m-1"))
        assert len(sent.sent) == 1  # the case's read; the writes wait
    assert sent.sent[2:] == ["COMMIT"]  # the batch's, which this unit was alone in
    assert sent.sent[1].startswith("WITH gw_0 AS (INSERT INTO conversations")
    found = await pg_store.messages.get("m-1")
    assert found is not None and found.created_at == CREATED and found.state == "queued"
    assert found.signed_xml == message("m-1").signed_xml
    assert await pg_store.conversations.get(CASE.reference) == CASE
    assert await count(pg_store, outbox) == 1
    assert await count(pg_store, deadlines) == 1


async def test_what_a_unit_deferred_is_visible_to_what_it_reads_next(pg_store: Store) -> None:
    """A read of a table a deferred write touches goes after the write, not with it (the parts
    of one statement do not see each other's rows); a read of another table carries it."""
    async with pg_store.transaction() as tx:
        await tx.messages.insert(message("m-2"))
    async with pg_store.transaction() as tx:
        sent = counting(tx)
        await tx.messages.update("m-2", state="delivered")
        assert await tx.conversations.get(CASE.reference) is None  # carries the update
        assert len(sent.sent) == 1 and sent.sent[0].startswith("WITH gw_0 AS (UPDATE messages")
        await tx.conversations.save(CASE, CREATED, new=True)
        assert await tx.conversations.times(CASE.reference) == (CREATED, CREATED)
        await tx.messages.update("m-2", reason_text="seen")
        current = await tx.messages.get("m-2")
        assert current is not None and current.state == "delivered"
        assert current.reason_text == "seen"


async def test_a_failed_unit_leaves_nothing_of_what_it_deferred(pg_store: Store) -> None:
    """Two units in one batch: the one that fails after deferring its writes leaves none of
    them; the other is stored whole."""
    gate = asyncio.Event()

    async def failing() -> None:
        async with pg_store.transaction() as tx:
            await tx.messages.insert(message("lost"))
            await tx.outbox.enqueue("lost", CREATED)
            await gate.wait()
            raise RuntimeError("the unit fails after deferring")

    async def kept() -> None:
        gate.set()
        async with pg_store.transaction() as tx:
            await tx.messages.insert(message("kept"))
            await tx.outbox.enqueue("kept", CREATED)

    results = await asyncio.gather(failing(), kept(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert await pg_store.messages.get("lost") is None
    assert await pg_store.messages.get("kept") is not None
    assert await count(pg_store, outbox) == 1


async def test_art40_a_message_id_taken_is_duplicate_message_whichever_part_fails(
    pg_store: Store,
) -> None:
    """The repeat's message and outbox row go in one statement: PostgreSQL may report either
    constraint; both mean the id is taken (an outbox row is keyed by a stored message). The
    repeat's case, sent with them, is not stored."""
    async with pg_store.transaction() as tx:
        await tx.messages.insert(message("dup"))
        await tx.outbox.enqueue("dup", CREATED)
    for with_outbox in (True, False):
        with pytest.raises(DuplicateMessage) as caught:
            async with pg_store.transaction() as tx:
                await tx.conversations.save(CASE, CREATED, new=True)
                await tx.messages.insert(message("dup"))
                if with_outbox:
                    await tx.outbox.enqueue("dup", CREATED)
        assert isinstance(caught.value.__cause__, IntegrityError)
    assert await pg_store.conversations.get(CASE.reference) is None
    assert await count(pg_store, messages) == 1


async def test_a_conflict_of_another_table_stays_integrity_error(pg_store: Store) -> None:
    """Only a message's or outbox row's conflict means DuplicateMessage: a case opened twice
    (by another node meanwhile) is the database's own refusal."""
    async with pg_store.transaction() as tx:
        await tx.conversations.save(CASE, CREATED, new=True)
    with pytest.raises(IntegrityError):
        async with pg_store.transaction() as tx:
            await tx.conversations.save(CASE, CREATED, new=True)
            await tx.messages.insert(message("fresh"))
    assert await pg_store.messages.get("fresh") is None


async def test_a_lost_connection_is_a_storage_error(pg_store: Store) -> None:
    """The batch's own statements (here the second unit's SAVEPOINT, then the ROLLBACK) fail
    as SQLAlchemy's errors too, which the API answers with 503 (STORAGE_ERRORS), not as a
    driver's error it does not know; the next unit opens a new connection."""
    second_waits = asyncio.Event()

    async def first() -> None:
        async with pg_store.transaction() as tx:
            driver = tx.messages._driver
            assert isinstance(driver, PostgresDriver)
            pid = await driver.fetchval("SELECT pg_backend_pid()")
            await asyncio.wait_for(second_waits.wait(), 10)
            async with pg_store.engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    async def second() -> None:
        await asyncio.sleep(0)  # the first unit holds the writer
        second_waits.set()
        async with pg_store.transaction() as tx:
            await tx.messages.insert(message("lost"))

    results = await asyncio.gather(first(), second(), return_exceptions=True)
    assert all(isinstance(r, STORAGE_ERRORS) for r in results), results
    async with pg_store.transaction() as tx:
        await tx.messages.insert(message("after"))
    assert await pg_store.messages.get("after") is not None
    assert await pg_store.messages.get("lost") is None


def test_many_rows_become_one_statement_over_arrays() -> None:
    """An INSERT's or UPDATE's parameters as arrays read back by unnest (one execution for a
    batch's register entries, Art. 40(9)); a statement of any other shape is not rewritten."""
    assert _unnested(
        "INSERT INTO t (a, b) VALUES ($1::BIGINT, $2::TIMESTAMP WITHOUT TIME ZONE)"
    ) == (
        "INSERT INTO t (a, b) SELECT gw_rows.c1, gw_rows.c2 FROM unnest($1::BIGINT[], "
        "$2::TIMESTAMP WITHOUT TIME ZONE[]) AS gw_rows(c1, c2)"
    )
    assert _unnested("UPDATE m SET x=$1::BYTEA WHERE m.id = $2::VARCHAR") == (
        "UPDATE m SET x=gw_rows.c1 FROM unnest($1::BYTEA[], $2::VARCHAR[]) AS gw_rows(c1, c2) "
        "WHERE m.id = gw_rows.c2"
    )
    assert _unnested("INSERT INTO t (a) VALUES ($1::BIGINT) RETURNING t.id") is None
    assert _unnested("INSERT INTO t (a, b) VALUES ($1::BIGINT, $2)") is None
    assert _unnested("DELETE FROM t WHERE a = $1::BIGINT") is None


async def test_art40_9_a_batchs_register_entries_acknowledgements_and_head_go_in_one_statement(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Units committed together: their entries, in one statement with the head they advance to,
    form a chain that verifies, in the order the units appended them."""
    from gateway.core.register import Event
    from gateway.store.schema import register

    async def append(n: int) -> None:
        async with pg_store.transaction() as tx:
            await tx.register.append(
                time=CREATED, event=Event.SUBMITTED, direction="out", peer="NL-DU",
                message_id=f"m-{n}", reference=f"BE1F-{n}",
            )  # fmt: skip

    sent: list[str] = []
    original = PostgresDriver.flush

    async def flush(driver: PostgresDriver) -> None:
        sent.extend(d.sql for d in driver._pending)
        await original(driver)

    monkeypatch.setattr(PostgresDriver, "flush", flush)
    await asyncio.gather(*(append(n) for n in range(20)))
    inserts = [sql for sql in sent if sql.startswith("INSERT INTO register ")]
    assert inserts and all("unnest(" in sql for sql in inserts)
    assert len(inserts) < 20  # batches, not one per entry
    async with pg_store.engine.connect() as conn:
        rows = (await conn.execute(select(register.c.sequence, register.c.message_id)
                                   .order_by(register.c.sequence))).all()  # fmt: skip
    entries = [r.message_id for r in rows if r.message_id is not None]
    assert sorted(entries) == sorted(f"m-{n}" for n in range(20))
    assert [r.sequence for r in rows] == list(range(rows[0].sequence, rows[-1].sequence + 1))
    assert (await pg_store.register.head())[0] == rows[-1].sequence
