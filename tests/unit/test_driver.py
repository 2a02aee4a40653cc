"""The hot path's statements sent to the database driver directly (gateway/store/driver.py).

What a `Prepared` statement stores must be what SQLAlchemy would have stored, byte for byte:
the register's hash covers the canonical form of each row as the database returns it (Art.
40(9): the register proves every transmission), so a time written in another format breaks
the chain as surely as an edit. Its errors must be SQLAlchemy's, which is what a repeated
message id (DuplicateMessage) and a storage failure (STORAGE_ERRORS) are recognised by."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.store.driver import Prepared, SqliteDriver
from gateway.store.records import DuplicateMessage, NewMessage
from gateway.store.schema import messages
from gateway.store.store import Store

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
