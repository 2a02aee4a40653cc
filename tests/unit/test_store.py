"""Persistence: migrations match the code's tables; register appends and outbox claims stay
correct under concurrency, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography import x509
from sqlalchemy import Connection, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.core.pins import PinHistory
from gateway.core.register import RegisterChainError, chain_hash, next_entry, verify_chain
from gateway.pki.anchors import TrustAnchors
from gateway.pki.certs import load_certificate
from gateway.pki.demo import DemoNetwork
from gateway.pki.signed_directory import directory_pins
from gateway.service import audit
from gateway.service.audit import Witness, verify_store
from gateway.service.trust import checkpointer_for
from gateway.store.records import DuplicateMessage, NewMessage
from gateway.store.repositories.messages import BLOB_IO_BYTES
from gateway.store.schema import metadata, register, register_head
from gateway.store.store import Store
from gateway.xml.signature import Signer

PG_ENV = "GATEWAY_TEST_POSTGRES_URL"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql+asyncpg://user@host:port/db")
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def test_migrations_create_exactly_the_tables_the_code_uses(tmp_path: Path) -> None:
    store = await Store.open(sqlite_url(tmp_path))
    try:

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with store.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await store.close()


async def test_reopening_a_migrated_database_keeps_its_register(tmp_path: Path) -> None:
    store = await Store.open(sqlite_url(tmp_path))
    async with store.transaction() as tx:
        await tx.register.append(time=NOW, event="received", direction="in", peer="NL-DU")
    head = await store.register.head()
    await store.close()
    again = await Store.open(sqlite_url(tmp_path))
    try:
        assert await again.register.head() == head
    finally:
        await again.close()


async def test_a_failed_transaction_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = await Store.open(sqlite_url(tmp_path))
    try:
        head = await store.register.head()
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.register.append(time=NOW, event="submitted", direction="out")
                raise RuntimeError("crash in the middle")
        assert await store.register.head() == head
        assert await store.register.query(limit=1000) == []
    finally:
        await store.close()


async def test_after_commit_callbacks_run_once_the_work_is_durable_and_never_after_a_failure(
    tmp_path: Path,
) -> None:
    """Issue 14, item 10: whoever a unit of work wakes (the deadline scheduler) must find
    what it wrote: its callbacks run after the commit, and not at all if it failed."""
    store = await Store.open(sqlite_url(tmp_path))
    seen: list[int] = []
    try:

        async def readable() -> None:
            seen.append(len(await store.register.query(limit=1000)))

        woken: list[asyncio.Task[None]] = []
        async with store.transaction() as tx:
            await tx.register.append(time=NOW, event="submitted", direction="out")
            tx.after_commit(lambda: woken.append(asyncio.create_task(readable())))
            assert woken == []
        assert len(woken) == 1
        await woken[0]
        assert seen == [1]
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.register.append(time=NOW, event="submitted", direction="out")
                tx.after_commit(lambda: seen.append(-1))
                raise RuntimeError("crash in the middle")
        assert seen == [1]
    finally:
        await store.close()


def _new_message(message_id: str) -> NewMessage:
    return NewMessage(
        message_id=message_id,
        direction="out",
        peer="NL-DU",
        message_type="take-charge-request",
        reference="BE1X",
        in_reply_to=None,
        urgent=False,
        created_at=NOW,
        stored_at=NOW,
        digest="0" * 64,
        signed_xml=b"<x/>",
        state="queued",
    )


async def _message(store: Store, message_id: str) -> None:
    async with store.transaction() as tx:
        await tx.messages.insert(_new_message(message_id))
        await tx.outbox.enqueue(message_id, NOW)


async def _large_message_checks(store: Store) -> None:
    """Signed bytes of megabytes (SQLite writes them into the row in place, not as a bound
    value) come back byte for byte, go with a unit of work that fails, and a repeat of the
    message id is refused without touching the first."""
    body = os.urandom(BLOB_IO_BYTES + 12_345)
    big = replace(_new_message(str(uuid.uuid4())), signed_xml=body)
    async with store.transaction() as tx:
        await tx.messages.insert(big)
        await tx.outbox.enqueue(big.message_id, NOW)
    stored = await store.messages.get(big.message_id)
    assert stored is not None and stored.signed_xml == body
    [item] = await store.claim_due(NOW + timedelta(seconds=1), 5, timedelta(minutes=1))
    assert item.signed_xml == body
    with pytest.raises(DuplicateMessage):
        async with store.transaction() as tx:
            await tx.messages.insert(replace(big, signed_xml=os.urandom(BLOB_IO_BYTES)))
    stored = await store.messages.get(big.message_id)
    assert stored is not None and stored.signed_xml == body
    lost = replace(big, message_id=str(uuid.uuid4()))
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.messages.insert(lost)
            raise RuntimeError("crash after the bytes were written")
    assert await store.messages.get(lost.message_id) is None


async def test_large_signed_bytes_are_stored_whole_or_not_at_all_sqlite(tmp_path: Path) -> None:
    store = await Store.open(sqlite_url(tmp_path))
    try:
        await _large_message_checks(store)
    finally:
        await store.close()


async def test_large_signed_bytes_are_stored_whole_or_not_at_all_postgres(pg_url: str) -> None:
    store = await Store.open(pg_url)
    try:
        await _large_message_checks(store)
    finally:
        await store.close()


async def _concurrency_checks(url: str, ca: x509.Certificate, other: Store | None = None) -> None:
    a = await Store.open(url)
    b = other or await Store.open(url)
    try:

        async def append(store: Store, n: int) -> None:
            for _ in range(n):
                async with store.transaction() as tx:
                    await tx.register.append(time=NOW, event="received", direction="in")

        await asyncio.gather(append(a, 25), append(b, 25))
        entries = await a.register.query(limit=100)
        assert len(entries) == 50
        verify_chain(entries)
        report = await verify_store(a, "BE-DU", ca)  # the verifier's raw-row path too
        assert report.entries == 50

        ids = [str(uuid.uuid4()) for _ in range(20)]
        for mid in ids:
            await _message(a, mid)
        with pytest.raises(DuplicateMessage):
            await _message(a, ids[0])
        later = NOW + timedelta(seconds=1)
        got_a, got_b = await asyncio.gather(
            a.claim_due(later, 15, timedelta(minutes=1)),
            b.claim_due(later, 15, timedelta(minutes=1)),
        )
        claimed = [i.message_id for i in got_a] + [i.message_id for i in got_b]
        assert sorted(claimed) == sorted(ids), "every row claimed exactly once"
    finally:
        await a.close()
        if other is None:
            await b.close()


async def test_sqlite_register_appends_and_claims_are_serialised(
    tmp_path: Path, pki: DemoNetwork
) -> None:
    store = await Store.open(sqlite_url(tmp_path))
    try:
        # one process per SQLite database: two users of the same Store
        await _concurrency_checks(sqlite_url(tmp_path), load_certificate(pki.ca_cert), other=store)
    finally:
        await store.close()


async def test_postgres_two_processes_share_register_and_outbox(
    pg_url: str, pki: DemoNetwork
) -> None:
    """Two Store instances (separate pools, as two processes would have)."""
    await _concurrency_checks(pg_url, load_certificate(pki.ca_cert))


async def test_art40_9_fast_verification_agrees_with_the_reference_encoding(
    tmp_path: Path, pki: DemoNetwork
) -> None:
    """SQLite builds the canonical form in SQL; rows it encodes differently (an older JSON
    spelling of the same details) are decided by the Python encoding, and edits still fail."""
    import sqlite3

    url = sqlite_url(tmp_path)
    store = await Store.open(url)
    ca = load_certificate(pki.ca_cert)
    try:
        tricky = {"text": 'é 漢字 🚀 \u2028 \x7f " \\ \n', "n": 3, "nested": {"b": None}}
        for _ in range(3):
            async with store.transaction() as tx:
                await tx.register.append(
                    time=NOW,
                    event="received",
                    direction="in",
                    peer="NL-DU",
                    reference="BE1É-1",
                    details=tricky,
                )
        assert (await verify_store(store, "BE-DU", ca)).entries == 3
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / "gw.db")
    with db:
        db.execute(
            "UPDATE register SET details = ? WHERE sequence = 2",
            (json.dumps(tricky, sort_keys=True),),
        )  # same data, ASCII-escaped
    store = await Store.open(url)
    try:
        assert (await verify_store(store, "BE-DU", ca)).entries == 3
    finally:
        await store.close()
    with db:
        db.execute(
            "UPDATE register SET details = ? WHERE sequence = 2",
            (json.dumps({**tricky, "n": 4}, sort_keys=True),),
        )
    db.close()
    store = await Store.open(url)
    try:
        with pytest.raises(RegisterChainError) as err:
            await verify_store(store, "BE-DU", ca)
        assert err.value.sequence == 2
    finally:
        await store.close()


async def test_an_outbox_claim_is_finished_once(tmp_path: Path) -> None:
    """A delivery is recorded only by whoever still holds its outbox row: a second node whose
    lease ran out learns the outcome is already recorded (finish and reschedule say so)."""
    store = await Store.open(sqlite_url(tmp_path))
    try:
        await _message(store, "m-1")
        async with store.transaction() as tx:
            assert await tx.outbox.reschedule("m-1", 1, NOW, "timeout") is True
        async with store.transaction() as tx:
            assert await tx.outbox.finish("m-1") is True
        async with store.transaction() as tx:
            assert await tx.outbox.finish("m-1") is False
            assert await tx.outbox.reschedule("m-1", 2, NOW, "late") is False
        assert await store.outbox.state("m-1") is None
    finally:
        await store.close()


async def _terminate_other_sessions(url: str) -> int:
    """End every session of the store's database but this one, as a server restart or a
    dropped network path would: the pool's connections are dead and do not know it yet."""
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            ended = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return len(ended.all())
    finally:
        await admin.dispose()


async def test_postgres_a_pooled_connection_the_server_ended_is_replaced_unseen(
    pg_url: str,
) -> None:
    """Reads hold no transaction (issue 20), but a pooled connection is still checked before
    use: one whose session the server ended is replaced unseen by the caller, for reads and
    for the writer's units of work (Art. 40(9): the register stays whole)."""
    store = await Store.open(pg_url)
    try:
        async with store.transaction() as tx:
            await tx.register.append(time=NOW, event="received", direction="in", peer="NL-DU")
        assert await store.register.head() != (0, "0" * 64)
        assert await _terminate_other_sessions(pg_url) >= 1
        await asyncio.sleep(0.2)
        sequence, _ = await store.register.head()  # a read: a fresh connection, no error
        async with store.transaction() as tx:  # the writer: likewise
            entry = await tx.register.append(
                time=NOW, event="received", direction="in", peer="NL-DU"
            )
        assert entry.sequence == sequence + 1
        verify_chain(await store.register.query(limit=10))
    finally:
        await store.close()


async def test_postgres_reads_hold_no_transaction_and_units_commit_whole(pg_url: str) -> None:
    """Reads run in autocommit (no BEGIN and ROLLBACK around each, issue 20), so a pooled
    connection left idle holds no transaction (nothing pins old row versions); a unit of work
    still commits all its statements together, and a failing one leaves nothing (Art. 40(9))."""
    store = await Store.open(pg_url)
    try:
        await store.register.head()
        await store.messages.get("none")
        admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                states = (
                    (
                        await conn.execute(
                            text(
                                "SELECT state FROM pg_stat_activity WHERE datname = "
                                "current_database() AND pid <> pg_backend_pid() "
                                "AND backend_type = 'client backend'"
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
        finally:
            await admin.dispose()
        assert states and "idle in transaction" not in states
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.register.append(time=NOW, event="received", direction="in", peer="A")
                await tx.messages.insert(_new_message("m-half"))
                raise RuntimeError("the unit fails after writing")
        async with store.transaction() as tx:
            await tx.register.append(time=NOW, event="received", direction="in", peer="B")
            await tx.messages.insert(_new_message("m-whole"))
        assert await store.messages.get("m-half") is None
        assert await store.messages.get("m-whole") is not None
        entries = await store.register.query(limit=10)
        assert [e.peer for e in entries] == ["B"]
        verify_chain(entries)
    finally:
        await store.close()


async def test_art40_9_postgres_verification_hashes_in_the_server_and_names_edits(
    pg_url: str, pki: DemoNetwork
) -> None:
    """PostgreSQL builds each entry's canonical form and hashes it next to the data (issue
    20); for every entry the gateway writes, tricky text and a principal included, it agrees
    with the Python encoding, an older spelling of the same details is decided by the Python
    encoding, and an edited field, a relinked entry or a garbled link is named."""
    store = await Store.open(pg_url)
    ca = load_certificate(pki.ca_cert)
    tricky = {"text": 'é 漢字 🚀 \u2028 \x7f \x01 " \\ \n\t', "n": 3, "nested": {"b": None}}
    try:
        for n in range(6):
            async with store.transaction() as tx:
                await tx.register.append(
                    time=NOW + timedelta(microseconds=n * 7),
                    event="received",
                    direction="in",
                    peer="NL-DU",
                    reference='BE1É-\x1f"1' if n % 2 else None,
                    details=tricky if n != 3 else None,
                    principal="aïcha\u2028" if n == 4 else None,
                )
        every = await store.register.verified_rows(0, 100, 100, fixed=range(1, 7))
        assert [(r[0], r[3]) for r in every] == [(n, True) for n in range(1, 7)], "it agrees"
        sparse = await store.register.verified_rows(0, 100, 100)
        assert [r[0] for r in sparse] == [1, 6], "and returns the range's ends only"
        assert (await verify_store(store, "BE-DU", ca)).entries == 6
    finally:
        await store.close()

    async def edit(sql: str) -> None:
        admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await admin.dispose()

    async def verdict() -> int | None:
        again = await Store.open(pg_url)
        try:
            await verify_store(again, "BE-DU", ca)
            return None
        except RegisterChainError as exc:
            return exc.sequence
        finally:
            await again.close()

    spaced = json.dumps(tricky, sort_keys=True)  # the same data, ASCII-escaped and spaced
    await edit(f"UPDATE register SET details = '{spaced}' WHERE sequence = 2")
    assert await verdict() is None, "the Python encoding decides an older spelling"
    await edit("UPDATE register SET peer = 'FR-DU' WHERE sequence = 3")
    assert await verdict() == 3
    await edit("UPDATE register SET peer = 'NL-DU' WHERE sequence = 3")
    assert await verdict() is None
    await edit("UPDATE register SET prev_hash = 'not hex' WHERE sequence = 5")
    assert await verdict() == 5


def _gap(n: int) -> str:
    return f"DELETE FROM register WHERE sequence = {n}"


def _relink(n: int) -> str:
    linked_elsewhere = "(SELECT hash FROM register WHERE sequence = 3)"
    return f"UPDATE register SET prev_hash = {linked_elsewhere} WHERE sequence = {n}"


def _edit(n: int) -> str:
    return f"UPDATE register SET peer = 'FR-DU' WHERE sequence = {n}"


def _garble(n: int) -> str:
    return f"UPDATE register SET prev_hash = 'not hex' WHERE sequence = {n}"


async def _rewrite_from(store: Store, n: int) -> None:
    """Edit entry `n` and rehash the chain after it, the head too: a sound chain, but not the
    one the checkpoints signed."""
    entries = await store.register.query(after=n - 1, limit=1000)
    head = entries[0].prev_hash
    async with store.transaction() as tx:
        for entry in entries:
            changed = replace(
                entry, prev_hash=head, peer="FR-DU" if entry.sequence == n else entry.peer
            )
            head = chain_hash(head, changed.canonical())
            await tx.conn.execute(
                update(register)
                .where(register.c.sequence == entry.sequence)
                .values(peer=changed.peer, prev_hash=changed.prev_hash, hash=head)
            )
        await tx.conn.execute(update(register_head).values(hash=head))


@pytest.mark.parametrize("page", [10_000, 32], ids=["one-range", "ranges-of-32"])
@pytest.mark.parametrize(
    "tamper",
    [None, _gap, _relink, _edit, _garble, "checkpoint", "witness", "beyond-head"],
    ids=[
        "intact",
        "gap",
        "relinked",
        "edited",
        "non-hex-link",
        "checkpoint",
        "witness",
        "beyond-head",
    ],
)
async def test_art40_9_postgres_verification_names_the_same_fault_as_sqlite_mid_range(
    pg_url: str,
    tmp_path: Path,
    pki: DemoNetwork,
    signers: dict[str, Signer],
    monkeypatch: pytest.MonkeyPatch,
    tamper: Any,
    page: int,
) -> None:
    """PostgreSQL checks sequences, links and hashes in the server and returns only the
    entries the verifier must see (issue 20); tampered entries in the middle of a range (a
    gap, a changed or garbled link, an edited field, a history rewritten under a signed
    checkpoint, a false witness, an entry past the recorded head) are named exactly as the
    SQLite verifier names them: the same sequence and reason, or the same head."""
    monkeypatch.setattr(audit, "PAGE", page)
    ca = load_certificate(pki.ca_cert)
    pins = PinHistory([directory_pins(pki.directory, TrustAnchors.load(pki.ca_cert))])
    signer = signers["BE-DU"]
    every_50 = SimpleNamespace(checkpoint_every=50)  # checkpoints at 50 and 100
    config = SimpleNamespace(authority="BE-DU", register=every_50)
    now = datetime.now(UTC)
    witnesses = [Witness(70, "ab" * 32, "NL-DU")] if tamper == "witness" else []

    async def verdict(url: str) -> tuple[object, ...]:
        store = await Store.open(url)
        store.checkpointer = checkpointer_for(config, signer)  # type: ignore[arg-type]
        try:
            for n in range(120):
                async with store.transaction() as tx:
                    await tx.register.append(
                        time=now, event="received", direction="in", peer="NL-DU", details={"n": n}
                    )
            if tamper == "checkpoint":
                await _rewrite_from(store, 30)
            elif tamper == "beyond-head":  # written as a writer would, the head not yet
                entry = next_entry(
                    *await store.register.head(), time=now, event="received", direction="in"
                )
                row = entry.to_dict() | {"time": entry.time, "details": "{}"}
                async with store.transaction() as tx:
                    await tx.conn.execute(register.insert().values(row))
            elif callable(tamper):
                async with store.transaction() as tx:
                    await tx.conn.execute(text(tamper(40)))
            try:
                report = await verify_store(store, "BE-DU", ca, witnesses=witnesses, pins=pins)
                return ("ok", report.head_sequence, report.head_hash, report.checkpoints)
            except RegisterChainError as exc:
                return ("bad", exc.sequence, exc.reason)
        finally:
            await store.close()

    on_sqlite = await verdict(sqlite_url(tmp_path))
    on_postgres = await verdict(pg_url)
    assert on_postgres == on_sqlite
    expected = {
        None: "ok",
        _gap: (40, "missing (next entry found is 41)"),
        _relink: (40, "previous-hash link does not match"),
        _edit: (40, "content does not match its hash (edited)"),
        _garble: (40, "previous-hash link does not match"),
        "checkpoint": (50, "differs from its signed checkpoint"),
        "witness": (70, "contradicts the head witnessed by NL-DU"),
        "beyond-head": (
            123,
            "the recorded head does not match the chain (deleted or rewritten tail)",
        ),
    }[tamper]
    assert (on_sqlite[0] == "ok") if expected == "ok" else (on_sqlite[1:] == expected)


async def _feed_page_checks(url: str) -> None:
    store = await Store.open(url)
    try:
        async with store.transaction() as tx:
            for n in range(5):
                await tx.register.append(
                    time=NOW, event="delivered", direction="out", peer="NL-DU", reference="R1"
                )
                # neither a case event nor of this case: never in the page, but the head moves
                await tx.register.append(time=NOW, event="received", direction="in")
                await tx.register.append(
                    time=NOW, event="delivered", direction="out", peer="NL-DU", reference=f"X{n}"
                )
            await tx.register.append(time=NOW, event="received", direction="in")
        head, _ = await store.register.head()
        events = ["delivered"]
        top, first = await store.register.feed_page(0, 2, events, case="R1")
        assert top == head
        assert [e.reference for e in first] == ["R1", "R1"]
        top, rest = await store.register.feed_page(first[-1].sequence, 10, events, case="R1")
        assert top == head and len(rest) == 3
        assert [e.sequence for e in first + rest] == sorted(e.sequence for e in first + rest)
        # the same entries as the query the message and case views make
        assert first + rest == await store.register.case_events(0, 10, events, case="R1")
        top, everything = await store.register.feed_page(0, 100, events)
        assert len(everything) == 10 and everything[-1].sequence < top == head
        assert await store.register.feed_page(0, 10, events, case="R2") == (head, [])
    finally:
        await store.close()


async def test_the_events_feed_page_ends_at_the_head_it_read(tmp_path: Path) -> None:
    """The events feed (one connection: the head, then the case's events up to it): pages
    follow each other without gaps, the case filter holds, and the head is returned for the
    cursor to jump to when a page comes short."""
    await _feed_page_checks(sqlite_url(tmp_path))


async def test_the_events_feed_page_ends_at_the_head_it_read_on_postgres(pg_url: str) -> None:
    await _feed_page_checks(pg_url)
