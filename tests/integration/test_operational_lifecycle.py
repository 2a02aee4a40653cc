"""The end of an operational item's life on three real gateways: the network operator's signed
deletion orders (an ICONET early warning that breaches the rules of Council Decision
2005/267/EC is deleted wherever it is held), distributed like the directory (a folder each
gateway watches) or uploaded by an administrator; and the retention periods per network,
which archive and then erase items. The register keeps every entry and still verifies."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.cli import main
from gateway.pki.deletion_orders import sign_deletion_order
from tests.integration.conftest import Harness, make_harness
from tests.integration.test_operational import broadcast, call, until, warning

pytestmark = pytest.mark.asyncio

FOLDER_PICKUP = ("NL-DU", "GR-DU")
"""These two apply orders dropped in their folder; BE-DU's administrator uploads them."""


def orders_dir(h: Harness, code: str) -> Path:
    return h.net.root / code / "deletion-orders"


@pytest.fixture
async def lifecycle(tmp_path: Path) -> AsyncIterator[Harness]:
    """Three gateways with `[operational]` set: a deletion-orders folder for each, and for the
    early-warning network (iconet) archiving after 30 days and erasure after 60."""
    h = await make_harness(tmp_path)
    for code, gw in h.net.gateways.items():
        folder = orders_dir(h, code)
        folder.mkdir()
        with gw.config.open("a", encoding="utf-8") as f:
            f.write(
                "\n[operational]\n"
                f'deletion_orders_dir = "{folder}"\n'
                "archive_after_days = { iconet = 30 }\n"
                "erase_after_days = { iconet = 60 }\n"
            )
    try:
        yield h
    finally:
        await h.close()


async def cli(*argv: str) -> int:
    """A `gateway ...` command, as the operator or an administrator runs it."""
    return await asyncio.to_thread(main, list(argv))


async def upload(h: Harness, code: str, data: bytes, role: str = "administrator") -> Any:
    gw = h.net.gateways[code]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.api_url + "/api/v1/admin/deletion-orders",
            data=data,
            headers={
                "Authorization": f"Bearer {gw.tokens[role]}",
                "Content-Type": "application/xml",
            },
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def drop(h: Harness, code: str, name: str, data: bytes) -> None:
    """Into the gateway's folder as the operator's distribution does: written, then renamed."""
    folder = orders_dir(h, code)
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.rename(folder / name)
    h.running[code].retention.wake.set()


async def moved(h: Harness, code: str, name: str, to: str) -> None:
    for _ in range(200):
        if (orders_dir(h, code) / to / name).exists():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{code}: {name} never reached {to}/")


async def entries(h: Harness, code: str) -> list[Any]:
    return list(await h.ctx(code).store.register.query(limit=10_000))


async def payloads_of(h: Harness, code: str, item_id: str) -> list[bytes | None]:
    store = h.ctx(code).store
    found = []
    for t in await store.items.transmissions(item_id):
        stored = await store.messages.get(t.message_id)
        assert stored is not None
        found.append(stored.signed_xml)
    return found


async def received_everywhere(h: Harness, item_id: str) -> None:
    for code in FOLDER_PICKUP:
        await until(
            h, code, "/api/v1/operational", lambda a: item_id in {i["item_id"] for i in a["items"]}
        )
    await until(
        h,
        "BE-DU",
        f"/api/v1/operational/{item_id}",
        lambda a: all(r["state"] == "delivered" for r in a["receivers"]),
    )


async def test_iconet_a_deletion_order_deletes_the_item_on_every_gateway_and_only_once(
    lifecycle: Harness, tmp_path: Path
) -> None:
    """Council Decision 2005/267/EC: an early warning that breaches the rules is deleted by
    order of the network operator, on the sender's gateway and on every receiver's; the
    register keeps every entry (and verifies), and a repeated order changes nothing."""
    h = lifecycle
    await h.start("BE-DU", "NL-DU", "GR-DU")
    breach = (await broadcast(h, warning()))["item_id"]
    kept = (await broadcast(h, warning()))["item_id"]
    await received_everywhere(h, breach)
    await received_everywhere(h, kept)
    never_here = str(uuid.uuid4())
    out = tmp_path / "order.xml"
    pki = h.net.pki
    assert (
        await cli(
            "pki",
            "deletion-order",
            "--item",
            breach,
            "--item",
            never_here,
            "--reason",
            "The warning names a person.",
            "--publisher-cert",
            str(pki.publisher_cert),
            "--publisher-key",
            str(pki.publisher_key),
            "--out",
            str(out),
        )
        == 0
    )
    data = out.read_bytes()
    digest = hashlib.sha256(data).hexdigest()

    # By upload on BE-DU, by folder on NL-DU and GR-DU.
    status, applied = await upload(h, "BE-DU", data)
    assert status == 200, applied
    assert applied["items_held"] == [breach] and applied["items_not_held"] == [never_here]
    assert applied["payloads_erased"] == 2 and applied["already_applied"] is False
    order_id = applied["order_id"]
    for code in FOLDER_PICKUP:
        drop(h, code, "order.xml", data)
    for code in FOLDER_PICKUP:
        await moved(h, code, "order.xml", "done")
        assert not (orders_dir(h, code) / "order.xml").exists()

    for code in ("BE-DU", *FOLDER_PICKUP):
        store = h.ctx(code).store
        item = await store.items.get(breach)
        assert item is not None and item.state == "deleted", code
        payloads = await payloads_of(h, code, breach)
        assert payloads and all(p is None for p in payloads), code
        assert all(p is not None for p in await payloads_of(h, code, kept)), code
        other = await store.items.get(kept)
        assert other is not None and other.state == "active"
        erased = [
            e
            for e in await store.register.query(event="payload-erased", limit=100)
            if e.details.get("item_id") == breach
        ]
        assert len(erased) == 1, code
        assert erased[0].details["order_id"] == order_id
        assert erased[0].details["cause"] == "deletion-order"
        assert erased[0].details["payloads"] == len(payloads)
        actions = await store.register.query(event="admin-action", reference=order_id, limit=10)
        assert len(actions) == 1, code
        details = actions[0].details
        assert details["action"] == "deletion-order-applied" and details["sha256"] == digest
        assert details["items_held"] == [breach] and details["items_not_held"] == [never_here]
        assert details["source"] == ("upload" if code == "BE-DU" else "folder:order.xml")
        assert actions[0].principal == ("administrator" if code == "BE-DU" else None)
    status, view = await call(h, "NL-DU", "GET", f"/api/v1/operational/{breach}")
    assert status == 200 and view["state"] == "deleted" and view["form"] is None

    # The same order again: reported as applied before, and nothing new in any register.
    before = {code: len(await entries(h, code)) for code in h.running}
    status, again = await upload(h, "BE-DU", data)
    assert status == 200 and again["already_applied"] is True and again["payloads_erased"] == 0
    drop(h, "NL-DU", "order.xml", data)
    await moved(h, "NL-DU", "order.1.xml", "done")
    for code in h.running:
        assert len(await entries(h, code)) == before[code], code

    # Nothing more is sent about a deleted item: no withdrawal, no forwarding.
    withdraw = {"type": "item-withdrawal", "form": {"item": breach, "reason": "Fictitious."}}
    status, refused = await call(h, "BE-DU", "POST", "/api/v1/messages", json=withdraw)
    assert status == 422 and refused["field"] == "/form/item", refused
    forward = {"type": "forwarded-item", "form": {"item": breach}, "receiver": "GR-DU"}
    status, refused = await call(h, "NL-DU", "POST", "/api/v1/messages", json=forward)
    assert status == 422 and refused["field"] == "/form/item", refused

    for code in h.running:
        config = h.net.gateways[code].config
        assert await cli("register", "verify", "--config", str(config)) == 0, code


async def test_iconet_an_order_signed_with_a_member_signing_key_is_refused_and_registered(
    lifecycle: Harness,
) -> None:
    """Only the network operator orders deletions (Council Decision 2005/267/EC): an order
    signed with BE-DU's own form-signing key deletes nothing, through either path, and its
    refusal is in the register."""
    h = lifecycle
    await h.start("BE-DU", "NL-DU", "GR-DU")
    item = (await broadcast(h, warning()))["item_id"]
    await received_everywhere(h, item)
    forged = sign_deletion_order([item], "Mine.", h.signer("BE-DU"), datetime.now(UTC))
    digest = hashlib.sha256(forged).hexdigest()

    status, body = await upload(h, "BE-DU", forged, role="liaison-officer")
    assert status == 403, body
    status, body = await upload(h, "BE-DU", forged)
    assert status == 422 and body["rule"] == "deletion-order", body
    assert "not issued for this purpose" in body["detail"]
    drop(h, "NL-DU", "forged.xml", forged)
    await moved(h, "NL-DU", "forged.xml", "refused")

    for code in ("BE-DU", "NL-DU"):
        store = h.ctx(code).store
        found = await store.items.get(item)
        assert found is not None and found.state == "active", code
        assert all(p is not None for p in await payloads_of(h, code, item))
        refused = [
            e
            for e in await store.register.query(event="admin-action", status="refused", limit=10)
            if e.details.get("action") == "deletion-order-refused"
        ]
        assert len(refused) == 1, code
        assert refused[0].details["sha256"] == digest
        assert "not issued for this purpose" in refused[0].details["reason"]
        assert await store.register.query(event="payload-erased", limit=10) == []


async def test_iconet_retention_archives_an_item_then_erases_it(lifecycle: Harness) -> None:
    """Council Decision 2005/267/EC: early warnings are not kept for ever. After 30 days
    (operational.archive_after_days) an item is archived, still readable; after 60
    (erase_after_days) its payloads are erased, its register entries kept."""
    h = lifecycle
    await h.start("BE-DU", "NL-DU", "GR-DU")
    item = (await broadcast(h, warning()))["item_id"]
    await received_everywhere(h, item)
    admin = h.api("NL-DU", "administrator")
    store = h.ctx("NL-DU").store

    async def state_becomes(state: str) -> None:
        h.running["NL-DU"].retention.wake.set()
        for _ in range(200):
            found = await store.items.get(item)
            if found is not None and found.state == state:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the item never became {state}")

    await admin.advance_clock(29 * 86400)
    h.running["NL-DU"].retention.wake.set()
    await asyncio.sleep(0.5)
    found = await store.items.get(item)
    assert found is not None and found.state == "active"

    await admin.advance_clock(2 * 86400)
    await state_becomes("archived")
    status, view = await call(h, "NL-DU", "GET", f"/api/v1/operational/{item}")
    assert status == 200 and view["state"] == "archived" and view["form"] is not None

    await admin.advance_clock(30 * 86400)
    await state_becomes("erased")
    payloads = await payloads_of(h, "NL-DU", item)
    assert payloads and all(p is None for p in payloads)
    erased = await store.register.query(event="payload-erased", limit=10)
    assert [(e.details["item_id"], e.details["cause"]) for e in erased] == [(item, "retention")]
    # BE-DU's clock did not move: its copy is untouched.
    sent = await h.ctx("BE-DU").store.items.get(item)
    assert sent is not None and sent.state == "active"
    config = h.net.gateways["NL-DU"].config
    assert await cli("register", "verify", "--config", str(config)) == 0
