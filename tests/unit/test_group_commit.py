"""Group commit (gateway/store/group.py): many units of work, one durable commit. Nothing is
acknowledged before it is stored (Art. 40(9): the register proves every transmission), so a
unit returns only once the commit containing it is durable; a unit that fails leaves nothing,
and takes nothing of the others with it; a failed commit fails every unit in it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.core.register import verify_chain
from gateway.store.schema import register
from gateway.store.store import Store
from tests.postgres import scratch_database

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
        return
    with scratch_database("group") as database:
        yield database


async def append(store: Store, n: int, *, fail: bool = False) -> int:
    async with store.transaction() as tx:
        entry = await tx.register.append(time=NOW, event="received", direction="in", peer=f"P{n}")
        if fail:
            raise RuntimeError("the unit fails after its append")
    return entry.sequence


async def committed_count(url: str) -> int:
    """What a fresh process finds on disk."""
    other = await Store.open(url)
    try:
        async with other.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(register))).scalar())
    finally:
        await other.close()


async def test_art40_9_concurrent_units_share_commits_and_all_are_durable(url: str) -> None:
    store = await Store.open(url)
    try:
        sequences = await asyncio.gather(*(append(store, n) for n in range(200)))
        stats = store._writer.stats
        assert sorted(sequences) == list(range(1, 201)), "one chain, no gap, no repeat"
        assert stats.units == 200
        assert stats.commits < 200, "concurrent units were grouped into fewer commits"
        assert stats.largest > 1
        verify_chain(await store.register.query(limit=500))
        assert await committed_count(url) == 200, "every unit that returned is on disk"
    finally:
        await store.close()


async def test_a_unit_that_returned_is_durable_before_it_returns(url: str) -> None:
    store = await Store.open(url)
    try:
        visible: list[bool] = []

        async def unit_then_look(n: int) -> None:
            await append(store, n)
            # a reader on another connection sees committed data only
            async with store.engine.connect() as conn:
                q = select(func.count()).select_from(register).where(register.c.peer == f"P{n}")
                visible.append((await conn.execute(q)).scalar() == 1)

        await asyncio.gather(*(unit_then_look(n) for n in range(20)))
        assert visible == [True] * 20
    finally:
        await store.close()


async def test_a_failing_unit_leaves_nothing_and_keeps_the_others(url: str) -> None:
    store = await Store.open(url)
    try:
        results = await asyncio.gather(
            *(append(store, n, fail=n % 3 == 0) for n in range(30)), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, RuntimeError)]
        kept = [r for r in results if isinstance(r, int)]
        assert len(failed) == 10 and len(kept) == 20
        entries = await store.register.query(limit=100)
        # the failed units' appends were rolled back with them and the head with them: the
        # survivors form one unbroken chain, numbered without gaps
        assert [e.sequence for e in entries] == list(range(1, 21))
        assert {e.peer for e in entries} == {f"P{n}" for n in range(30) if n % 3}
        verify_chain(entries)
        assert await store.register.head() == (entries[-1].sequence, entries[-1].hash)
    finally:
        await store.close()


async def test_a_batchs_first_unit_fails_alone_without_a_savepoint(url: str) -> None:
    """The first unit of a batch takes no savepoint (issue 20): when it fails, its whole
    transaction is rolled back, and the units waiting behind it commit in a new one."""
    store = await Store.open(url)
    try:
        results = await asyncio.gather(
            append(store, 0, fail=True), *(append(store, n) for n in range(1, 6)),
            return_exceptions=True,
        )  # fmt: skip
        assert isinstance(results[0], RuntimeError)
        assert results[1:] == [1, 2, 3, 4, 5]
        entries = await store.register.query(limit=10)
        assert [e.peer for e in entries] == ["P1", "P2", "P3", "P4", "P5"]
        verify_chain(entries)
        assert await committed_count(url) == 5
        with pytest.raises(RuntimeError):
            await append(store, 6, fail=True)  # alone: the first and only unit of its batch
        assert await append(store, 7) == 6
        assert await committed_count(url) == 6
    finally:
        await store.close()


async def test_a_failed_commit_fails_every_unit_in_it_and_stores_nothing(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(url)
    try:
        await append(store, 0)
        writer = store._writer
        real = writer._before_commit
        assert real is not None

        async def full_disk(conn: Any, shared: dict[str, Any], driver: Any) -> None:
            await real(conn, shared, driver)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(writer, "_before_commit", full_disk)
        results = await asyncio.gather(
            *(append(store, n) for n in range(1, 11)), return_exceptions=True
        )
        assert all(isinstance(r, OSError) for r in results), results
        monkeypatch.setattr(writer, "_before_commit", real)
        assert await committed_count(url) == 1
        # the head did not move: the next unit continues the chain from the stored entry
        assert await append(store, 11) == 2
        verify_chain(await store.register.query(limit=10))
    finally:
        await store.close()


async def test_art40_9_an_entry_read_back_in_a_failing_unit_leaves_the_others_chained(
    url: str,
) -> None:
    """Entries take their place in the chain at the commit, or at once when the unit reads the
    register. A unit that fixed its batch's places that way and then failed is rolled back
    with what it fixed: the other units' entries are placed again after the head, one chain
    without gap (Art. 40(9))."""
    store = await Store.open(url)
    try:
        gate = asyncio.Event()

        async def first() -> int:
            async with store.transaction() as tx:
                entry = await tx.register.append(time=NOW, event="received", direction="in")
                await gate.wait()  # the others join this batch meanwhile
            return entry.sequence

        async def reads_then_fails() -> None:
            async with store.transaction() as tx:
                await tx.register.append(time=NOW, event="received", direction="in", peer="X")
                seen = await tx.register.query(limit=10)
                assert [e.sequence for e in seen] == [1, 2], "its own and the batch's first"
                raise RuntimeError("the unit fails after reading its entry back")

        opened = asyncio.create_task(first())
        await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(reads_then_fails()), asyncio.create_task(append(store, 3))]
        await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.wait_for(
            asyncio.gather(opened, *tasks, return_exceptions=True), timeout=30
        )
        assert results[0] == 1 and isinstance(results[1], RuntimeError) and results[2] == 2
        entries = await store.register.query(limit=10)
        assert [(e.sequence, e.peer) for e in entries] == [(1, None), (2, "P3")]
        verify_chain(entries)
        assert await store.register.head() == (2, entries[-1].hash)
    finally:
        await store.close()


async def test_art40_9_a_nodes_open_unit_does_not_hold_the_register_for_another_node(
    url: str,
) -> None:
    """Two nodes of one authority share the register on PostgreSQL. A unit of work that has
    appended an entry but not yet committed does not lock the register head: the head is
    locked only by a batch's last statements before its commit, so the other node commits
    meanwhile (issue 20: locking it at the first append made the nodes wait for each other),
    and the chain stays one, in commit order."""
    if not url.startswith("postgresql"):
        pytest.skip("several nodes share a database on PostgreSQL only")
    one, two = await Store.open(url), await Store.open(url)
    try:
        async with one.transaction() as tx:
            held = await tx.register.append(time=NOW, event="received", direction="in", peer="A")
            # Before, this waited for the head until this unit committed, which it never would.
            assert await asyncio.wait_for(append(two, 2), timeout=30) == 1
        assert held.sequence == 2
        entries = await one.register.query(limit=10)
        assert [e.peer for e in entries] == ["P2", "A"]
        verify_chain(entries)
    finally:
        await one.close()
        await two.close()


async def test_a_unit_cancelled_while_waiting_does_not_stall_the_others(url: str) -> None:
    store = await Store.open(url)
    try:
        gate = asyncio.Event()

        async def slow() -> None:
            async with store.transaction() as tx:
                await tx.register.append(time=NOW, event="received", direction="in")
                await gate.wait()

        first = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        waiting = [asyncio.create_task(append(store, n)) for n in range(5)]
        await asyncio.sleep(0.01)
        waiting[0].cancel()
        waiting[2].cancel()
        gate.set()
        await first
        done = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), timeout=10)
        assert sum(isinstance(r, asyncio.CancelledError) for r in done) == 2
        assert sorted(r for r in done if isinstance(r, int)) == [2, 3, 4]
        assert await committed_count(url) == 4
    finally:
        await store.close()


async def test_a_store_closed_while_a_thread_waits_for_the_write_lock_closes_cleanly(
    tmp_path: Path,
) -> None:
    """Shutdown cancels request handlers wherever they are. A unit cancelled while its worker
    thread waits in BEGIN IMMEDIATE (another process holds SQLite's write lock) must not have
    its connection closed or disposed of beside that thread: that crashed the whole process
    (a segmentation fault in libsqlite3) or hung it. The cancellation reaches the unit once
    the thread is done, the store closes, and the lock holder's work is intact."""
    path = tmp_path / "gw.db"
    url = f"sqlite+aiosqlite:///{path}"
    store = await Store.open(url)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    try:
        unit = asyncio.create_task(append(store, 1))
        threads = store.engine._threads  # type: ignore[union-attr]
        for _ in range(200):  # until the unit's thread waits in BEGIN IMMEDIATE
            if threads.running:
                break
            await asyncio.sleep(0.005)
        assert threads.running, "the unit's BEGIN went to a worker thread"
        unit.cancel()
        await asyncio.sleep(0.05)
        assert not unit.done(), "the cancellation waits for the thread that holds the connection"
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0.05)
        assert not closing.done(), "the store is not closed beside a running thread"
        other.execute("CREATE TABLE lock_holder (n INTEGER)")
        other.execute("INSERT INTO lock_holder VALUES (1)")
        other.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(unit, timeout=35)
        await asyncio.wait_for(closing, timeout=35)
    finally:
        other.close()
    assert await committed_count(url) == 0, "the cancelled unit stored nothing"
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT n FROM lock_holder").fetchall() == [(1,)]
    finally:
        check.close()
