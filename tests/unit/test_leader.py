"""Leadership (gateway.store.leader): on PostgreSQL one node at a time runs a once-per-
authority task (deadline scheduler, retention, reconciliation); when the leader stops or its
session dies, another node takes over. On SQLite the task just runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from sqlalchemy import text

from gateway.store.leader import Leadership, lock_key
from gateway.store.store import Store
from tests.unit.test_store import pg_url, sqlite_url  # noqa: F401  (pg_url is a fixture)

LOG = structlog.get_logger()
RETRY = 0.2
# Advisory locks in this test's own database (pg_locks covers the whole server).
HERE = (
    "locktype = 'advisory' AND database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def worker(running: set[str], name: str) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        running.add(name)
        try:
            await asyncio.Event().wait()
        finally:
            running.discard(name)

    return work


def test_lock_keys_are_stable_signed_64_bit_and_distinct() -> None:
    keys = {lock_key(n) for n in ("deadlines", "retention", "reconcile")}
    assert len(keys) == 3
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("deadlines") == lock_key("deadlines")


async def test_on_sqlite_the_task_just_runs(tmp_path: Path) -> None:
    store = await Store.open(sqlite_url(tmp_path))
    try:
        done: list[int] = []

        async def work() -> None:
            done.append(1)

        await Leadership(store, "deadlines", LOG).run(work)
        assert done == [1]
    finally:
        await store.close()


async def test_postgres_one_leader_at_a_time_and_takeover(pg_url: str) -> None:  # noqa: F811
    """Two nodes (two Stores, as two processes have): one runs the task, the other stands by;
    when the leader is cancelled (stops) the other takes over within the retry interval;
    when the new leader's session is killed by the server, it stops the task and the first
    node, started again, can lead."""
    a, b = await Store.open(pg_url), await Store.open(pg_url)
    running: set[str] = set()
    leaders = {
        n: Leadership(s, "deadlines", LOG, retry_seconds=RETRY)
        for n, s in zip("ab", (a, b), strict=True)
    }
    tasks = {n: asyncio.create_task(leaders[n].run(worker(running, n))) for n in "ab"}
    try:
        await until(lambda: len(running) == 1)
        await asyncio.sleep(5 * RETRY)
        assert len(running) == 1, "never two leaders"
        first = next(iter(running))
        other = "b" if first == "a" else "a"
        assert leaders[first].leading and not leaders[other].leading

        tasks[first].cancel()
        await asyncio.gather(tasks[first], return_exceptions=True)
        await until(lambda: running == {other})

        # The server ends the leader's session (its process died, the network broke): the
        # leader notices, stops its task, and the lock is free for another node.
        async with a.engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    f"WHERE {HERE} AND granted AND pid <> pg_backend_pid()"
                )
            )
        await until(lambda: not running, within=5)
        tasks[first] = asyncio.create_task(leaders[first].run(worker(running, first)))
        await until(lambda: len(running) == 1)
        await asyncio.sleep(5 * RETRY)
        assert len(running) == 1
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await a.close()
        await b.close()


async def test_postgres_leader_gives_up_the_lock_when_its_task_ends(pg_url: str) -> None:  # noqa: F811
    store = await Store.open(pg_url)
    try:

        async def work() -> None:
            return None

        await Leadership(store, "retention", LOG, retry_seconds=RETRY).run(work)
        async with store.engine.connect() as conn:
            held = (
                await conn.execute(text(f"SELECT count(*) FROM pg_locks WHERE {HERE}"))
            ).scalar_one()
        assert held == 0
    finally:
        await store.close()
