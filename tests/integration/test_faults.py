"""Faults the gateways must survive without losing, duplicating or falsely acknowledging a
transmission (Art. 40(9): the acknowledgement is the proof of receipt; it must never be
given for what was not stored): a database that is full or read-only, a peer that accepts
connections and never answers, a network partition that heals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gateway.client import ApiError
from gateway.core.register import verify_chain
from gateway.core.times import utc_text
from tests.integration.conftest import Harness, make_harness, send_request
from tests.ledger import LEDGER
from tests.net_proxy import Proxy
from tests.pki_helpers import publish

pytestmark = pytest.mark.fault


@contextlib.asynccontextmanager
async def sqlite_refuses_writes(h: Harness, code: str, pragma: str) -> AsyncIterator[None]:
    """Make the gateway's own SQLite database refuse writes, by SQLite's own limits: a
    `max_page_count` at the current size is a full disk (SQLITE_FULL), `query_only` a
    read-only database (SQLITE_READONLY). Every connection gets it; then it is lifted. On
    PostgreSQL (GATEWAY_TEST_DATABASE=postgres) see `postgres_read_only`; a full disk has no
    per-database equivalent there."""
    store = h.ctx(code).store
    if store.postgres:
        if "query_only" not in pragma:
            pytest.skip("a full disk is simulated with SQLite's max_page_count (SQLite only)")
        async with postgres_read_only(store.engine.url):
            yield
        return
    async with store.engine.connect() as conn:
        pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
    statement = pragma.format(pages=pages)

    def limit(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(statement)
        cur.close()

    await store.engine.dispose()
    event.listen(store.engine.sync_engine, "connect", limit)
    try:
        yield
    finally:
        event.remove(store.engine.sync_engine, "connect", limit)
        await store.engine.dispose()


@contextlib.asynccontextmanager
async def postgres_read_only(url: URL) -> AsyncIterator[None]:
    """The gateway's PostgreSQL database turned read-only: the database's
    `default_transaction_read_only`, and every session it has ended so that each reconnects
    under it (pre-ping); lifted the same way."""
    admin = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = url.database
    others = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    async def run(*statements: str) -> None:
        async with admin.connect() as conn:
            # This session itself starts read-only once the database is.
            await conn.execute(text("SET default_transaction_read_only = off"))
            for sql in statements:
                await conn.execute(text(sql))

    try:
        await run(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on', others)
        try:
            yield
        finally:
            await run(f'ALTER DATABASE "{name}" RESET default_transaction_read_only', others)
    finally:
        await admin.dispose()


async def wait_for(predicate: Callable[[], Any], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "pragma",
    ["PRAGMA max_page_count = {pages}", "PRAGMA query_only = ON"],
    ids=["disk-full", "read-only"],
)
async def test_receiver_that_cannot_store_answers_503_and_acknowledges_nothing(
    harness: Harness, pragma: str
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be = h.api("BE-DU")
    nl_store = h.ctx("NL-DU").store
    head_before = await nl_store.register.head()
    async with sqlite_refuses_writes(h, "NL-DU", pragma):
        sent = await send_request(be, case_number="DISK-1")

        async def retried() -> bool:
            view = await be.message(sent["message_id"])
            return view.get("delivery", {}).get("attempts", 0) >= 2

        await wait_for(retried)
        view = await be.message(sent["message_id"])
        assert view["state"] == "queued" and view["acknowledgement"] is None
        assert "503" in view["delivery"]["last_error"]
        assert await nl_store.register.head() == head_before, "nothing recorded"
        # The internal API says the same to a case system, instead of a server error.
        with pytest.raises(Exception) as caught:
            await send_request(h.api("NL-DU"), receiver="BE-DU", case_number="DISK-2")
        assert getattr(caught.value, "status", None) == 503
    assert await nl_store.messages.get(sent["message_id"]) is None
    delivered = await be.wait_for_state(sent["message_id"], {"delivered"}, within=30)
    assert delivered["acknowledgement"]["status"] == "accepted"
    assert await nl_store.messages.count() == 1
    verify_chain(await nl_store.register.query(limit=1000))


async def test_a_clock_move_the_database_refuses_to_record_leaves_the_clock_as_it_was(
    harness: Harness,
) -> None:
    """Admin actions are register entries naming their actor: the entry is written before the
    clock moves, so a database that refuses it leaves no unrecorded move (time limits of Art.
    29-35 run on this clock). The move used to be applied first, then the write failed."""
    h = harness
    await h.start("BE-DU")
    admin = h.api("BE-DU", "administrator")
    store = h.ctx("BE-DU").store
    head_before = await store.register.head()
    async with sqlite_refuses_writes(h, "BE-DU", "PRAGMA query_only = ON"):
        with pytest.raises(ApiError) as caught:
            await admin.advance_clock(86400)
        assert caught.value.status == 503
    assert h.ctx("BE-DU").clock.offset.total_seconds() == 0  # type: ignore[attr-defined]
    assert await store.register.head() == head_before
    moved = await admin.advance_clock(86400)
    entry = (await store.register.query(limit=10_000))[-1]
    assert entry.event == "admin-action" and entry.details["action"] == "clock-advanced"
    assert entry.details["actor"] == "administrator"
    assert utc_text(entry.time) <= moved["now"], "dated at the moved clock, not before it"
    assert (h.ctx("BE-DU").clock() - entry.time).total_seconds() < 3600


async def test_peer_that_accepts_but_never_answers_delays_only_its_own_messages(
    harness: Harness,
) -> None:
    """A black hole where NL-DU should be: connections are accepted and never answered.
    Deliveries to NL-DU time out and are retried; GR-DU's are not held up; once NL-DU is
    back, everything arrives once."""
    h = harness
    nl_port = h.net.gateways["NL-DU"].peer_port
    held: list[asyncio.StreamWriter] = []

    async def black_hole(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    hole = await asyncio.start_server(black_hole, "127.0.0.1", nl_port)
    try:
        await h.start("BE-DU", "GR-DU")
        be = h.api("BE-DU")
        to_nl = await send_request(be, "NL-DU", case_number="HOLE-1")
        to_gr = await send_request(be, "GR-DU", case_number="HOLE-2")
        await be.wait_for_state(to_gr["message_id"], {"delivered"}, within=15)

        async def timed_out() -> bool:
            view = await be.message(to_nl["message_id"])
            return "Timeout" in ((view.get("delivery") or {}).get("last_error") or "")

        await wait_for(timed_out, within=30)
        assert (await be.message(to_nl["message_id"]))["state"] == "queued"
    finally:
        hole.close()
        for writer in held:
            writer.close()
        await hole.wait_closed()
    await h.start("NL-DU")
    await be.wait_for_state(to_nl["message_id"], {"delivered"}, within=30)
    assert await h.ctx("NL-DU").store.messages.count() == 1


async def route_through(h: Harness, code: str, proxy: Proxy) -> None:
    """Publish a directory whose endpoint for `code` is the proxy, and apply it."""

    def via_proxy(data: dict[str, Any]) -> None:
        entry = next(a for a in data["authorities"] if a["code"] == code)
        entry["endpoint"] = f"https://127.0.0.1:{proxy.port}"

    publish(h.net.pki, via_proxy)
    for running in h.running:
        await h.api(running, "administrator").reload_trust()


async def test_acknowledgement_after_undeliverable_is_verified_recorded_and_corrects_state(
    tmp_path: Path,
) -> None:
    """The receiver stored the message, but every answer was lost, so the sender gave up.
    Once the network heals, the sender asks for its proof of receipt, verifies it, records
    it with the receiver's original receipt time, and corrects the message's state."""
    h = await make_harness(
        tmp_path, delivery={"max_attempts": 2, "reconcile_interval_seconds": 3600}
    )
    proxy = Proxy(h.net.gateways["NL-DU"].peer_port)
    await proxy.start()
    try:
        await h.start("BE-DU", "NL-DU")
        await route_through(h, "NL-DU", proxy)
        proxy.set("drop-responses")
        be = h.api("BE-DU")
        sent = await send_request(be, case_number="LOST-ACK")
        view = await be.wait_for_state(sent["message_id"], {"undeliverable"}, within=30)
        proxy.set("partition")
        assert view["acknowledgement"] is None
        received = await h.ctx("NL-DU").store.messages.get(sent["message_id"])
        assert received is not None and received.ack_xml is not None, "NL-DU has it"
        deliverer = h.running["BE-DU"].deliverer
        assert await deliverer.reconcile() == 0, "during the partition: no proof, no change"
        assert (await be.message(sent["message_id"]))["state"] == "undeliverable"
        proxy.set("forward")
        assert await deliverer.reconcile() == 1
        view = await be.wait_for_state(sent["message_id"], {"delivered"}, within=5)
        ack = view["acknowledgement"]
        assert ack["status"] == "accepted"
        nl_view = await h.api("NL-DU").message(sent["message_id"])
        assert ack["receipt_time"] == nl_view["receipt_time"], "the original receipt time"
        delivered = await h.ctx("BE-DU").store.register.query(event="delivered")
        assert delivered[-1].details["reconciled_after"] == "undeliverable"
        assert [d["rule"] for d in view["deadlines"]] == [
            "take_charge_request",
            "take_charge_reply",
        ]
        assert await h.ctx("NL-DU").store.messages.count() == 1
        verify_chain(await h.ctx("BE-DU").store.register.query(limit=1000))
    finally:
        await proxy.close()
        await h.close()


async def test_partition_and_heal_under_traffic_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    h = await make_harness(tmp_path)
    proxy = Proxy(h.net.gateways["NL-DU"].peer_port)
    await proxy.start()
    try:
        await h.start("BE-DU", "NL-DU")
        await route_through(h, "NL-DU", proxy)
        be = h.api("BE-DU")
        sent: list[str] = []
        for n in range(15):
            if n % 5 == 2:
                proxy.set("partition")
            if n % 5 == 4:
                proxy.set("drop-responses")
            if n % 5 == 0:
                proxy.set("forward")
            sent.append((await send_request(be, case_number=f"PART-{n}"))["message_id"])
            await asyncio.sleep(0.15)
        proxy.set("forward")
        for message_id in sent:
            await be.wait_for_state(message_id, {"delivered"}, within=40)
        nl_store = h.ctx("NL-DU").store
        received = await nl_store.register.query(event="received", limit=1000)
        ids = [e.message_id for e in received]
        LEDGER.traffic(len(sent), len(set(sent) - set(ids)), len(ids) - len(set(ids)))
        assert sorted(ids) == sorted(sent), "each exactly once"
        assert await nl_store.messages.count() == len(sent)
        for code in ("BE-DU", "NL-DU"):
            verify_chain(await h.ctx(code).store.register.query(limit=10_000))
    finally:
        await proxy.close()
        await h.close()
