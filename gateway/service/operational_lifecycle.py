"""The end of an operational item's life: the network operator's deletion orders and the
retention periods per network (ICONET, Council Decision 2005/267/EC; liaison officers'
reports, Regulation (EU) 2019/1240).

An item's payloads are erased, never its register entries or digests: the register still
proves what was exchanged, and still verifies. An order is applied once: applying it again
finds its register entry and nothing left to delete, and writes nothing. Archived items stay
readable; only their state changes, so no register entry is written for it."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.context import GatewayContext
from gateway.core.register import Event
from gateway.pki.certs import fingerprint
from gateway.pki.deletion_orders import (
    MAX_ORDER_BYTES,
    DeletionOrder,
    DeletionOrderError,
    read_deletion_order,
)
from gateway.store.records import OperationalItem
from gateway.store.store import Transaction

BATCH = 200
DELETED = "deleted"
ARCHIVABLE = ("active", "replaced", "withdrawn")
ERASABLE = (*ARCHIVABLE, "archived")
ORDER_APPLIED = "deletion-order-applied"
ORDER_REFUSED = "deletion-order-refused"


@dataclass(frozen=True)
class Applied:
    """What an order did here (or, `already_applied`, had done before)."""

    order_id: str
    issued: datetime
    reason: str
    sha256: str
    held: tuple[str, ...]
    not_held: tuple[str, ...]
    payloads: int
    already_applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "issued": self.issued.isoformat(),
            "reason": self.reason,
            "sha256": self.sha256,
            "items_held": list(self.held),
            "items_not_held": list(self.not_held),
            "payloads_erased": self.payloads,
            "already_applied": self.already_applied,
        }


async def apply_deletion_order(
    ctx: GatewayContext, data: bytes, source: str, principal: str | None
) -> Applied:
    """Verify the order against the directory in force and delete every item of it this
    gateway holds (sent or received). A refused order raises `DeletionOrderError` after its
    refusal is in the register (nothing of an unverified file is trusted there but its
    digest)."""
    now = ctx.clock()
    state = ctx.trust.state
    try:
        order = read_deletion_order(
            data,
            state.anchors,
            now,
            state.revocations,
            fingerprint(state.published.publisher),
            where=source,
        )
    except DeletionOrderError as exc:
        await _record_refusal(ctx, data, source, str(exc), principal)
        raise
    async with ctx.store.transaction() as tx:
        items = [await tx.items.get(item_id) for item_id in order.items]
        held = [i for i in items if i is not None]
        pending = [i for i in held if i.state != DELETED or await _payload_left(tx, i)]
        before = await tx.register.query(
            event=Event.ADMIN_ACTION.value, reference=order.order_id, status="applied", limit=1
        )
        if before and not pending:
            return _applied(order, held, 0, already=True)
        payloads = 0
        for item in pending:
            erased = await tx.items.erase(item.item_id, DELETED, now)
            payloads += erased
            await _record_erasure(
                tx,
                item,
                now,
                erased,
                "deletion-order",
                {"order_id": order.order_id},
                principal,
            )
        await tx.register.append(
            time=now,
            event=Event.ADMIN_ACTION,
            direction="in",
            reference=order.order_id,
            status="applied",
            reason="deletion-order",
            details={
                "action": ORDER_APPLIED,
                "order_id": order.order_id,
                "sha256": order.sha256,
                "items_held": [i.item_id for i in held],
                "items_not_held": _not_held(order, held),
                "source": source,
            },
            principal=principal,
        )
    ctx.log.info(
        "deletion order applied",
        order_id=order.order_id,
        source=source,
        items=len(pending),
        payloads=payloads,
    )
    return _applied(order, held, payloads, already=False)


async def _payload_left(tx: Transaction, item: OperationalItem) -> bool:
    """A copy that arrived after the order was applied (forwarded late, say) is deleted by
    applying the order again."""
    return any(t.signed_xml is not None for t in await tx.items.transmissions(item.item_id))


def _not_held(order: DeletionOrder, held: list[OperationalItem]) -> list[str]:
    ids = {i.item_id for i in held}
    return [i for i in order.items if i not in ids]


def _applied(
    order: DeletionOrder, held: list[OperationalItem], payloads: int, *, already: bool
) -> Applied:
    return Applied(
        order_id=order.order_id,
        issued=order.issued,
        reason=order.reason,
        sha256=order.sha256,
        held=tuple(i.item_id for i in held),
        not_held=tuple(_not_held(order, held)),
        payloads=payloads,
        already_applied=already,
    )


async def _record_refusal(
    ctx: GatewayContext, data: bytes, source: str, reason: str, principal: str | None
) -> None:
    ctx.log.warning("deletion order refused", source=source, reason=reason)
    async with ctx.store.transaction() as tx:
        await tx.register.append(
            time=ctx.clock(),
            event=Event.ADMIN_ACTION,
            direction="in",
            status="refused",
            reason="deletion-order",
            details={
                "action": ORDER_REFUSED,
                "reason": reason,
                "sha256": hashlib.sha256(data).hexdigest(),
                "source": source,
            },
            principal=principal,
        )


async def _record_erasure(
    tx: Transaction,
    item: OperationalItem,
    now: datetime,
    payloads: int,
    cause: str,
    extra: dict[str, Any],
    principal: str | None,
) -> None:
    await tx.register.append(
        time=now,
        event=Event.PAYLOAD_ERASED,
        direction=item.direction,
        peer=item.originator if item.direction == "in" else None,
        message_type=item.message_type,
        reference=item.reference,
        status="erased",
        reason=cause,
        details={"item_id": item.item_id, **extra, "cause": cause, "payloads": payloads},
        principal=principal,
    )


async def apply_retention(ctx: GatewayContext) -> tuple[int, int]:
    """(archived, erased): per network, items older than `operational.archive_after_days`
    become archived, those older than `operational.erase_after_days` lose their payloads and
    become erased; in batches, each its own transaction."""
    settings = ctx.config.operational
    archived = erased = 0
    for network, days in sorted(settings.archive_after_days.items()):
        if days > 0:
            archived += await _in_batches(ctx, network, days, ARCHIVABLE, "archived")
    for network, days in sorted(settings.erase_after_days.items()):
        if days > 0:
            erased += await _in_batches(ctx, network, days, ERASABLE, "erased")
    return archived, erased


async def _in_batches(
    ctx: GatewayContext, network: str, days: int, states: tuple[str, ...], to: str
) -> int:
    total = 0
    for state in states:
        while True:
            now = ctx.clock()
            due = await ctx.store.items.due(network, state, now - timedelta(days=days), BATCH)
            if not due:
                break
            async with ctx.store.transaction() as tx:
                for item_id in due:
                    if to == "archived":
                        await tx.items.set_state(item_id, to, now)
                        continue
                    item = await tx.items.get(item_id)
                    if item is None or item.state != state:
                        continue
                    payloads = await tx.items.erase(item_id, to, now)
                    await _record_erasure(tx, item, now, payloads, "retention", {}, None)
            total += len(due)
    return total


async def pick_up_deletion_orders(ctx: GatewayContext) -> int:
    """Apply each `*.xml` in `operational.deletion_orders_dir` once, then move it to `done/`
    (or, refused, to `refused/`): the operator's orders distributed like the directory, as a
    file. Write a file there atomically (another name, then a rename; dot-files are skipped).
    A file that could not be applied for another reason (the database unavailable) stays for
    the next pass. How many files were handled."""
    folder_name = ctx.config.operational.deletion_orders_dir
    if not folder_name:
        return 0
    folder = Path(folder_name)
    handled = 0
    for path, data in await asyncio.to_thread(_orders_in, folder, ctx):
        try:
            await apply_deletion_order(ctx, data, f"folder:{path.name}", None)
            await asyncio.to_thread(_move, path, folder / "done")
        except DeletionOrderError:
            await asyncio.to_thread(_move, path, folder / "refused")
        handled += 1
    return handled


def _orders_in(folder: Path, ctx: GatewayContext) -> list[tuple[Path, bytes]]:
    """The order files waiting in `folder`, oldest name first, each read (bounded)."""
    found = []
    for path in sorted(folder.glob("*.xml")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            with path.open("rb") as f:
                found.append((path, f.read(MAX_ORDER_BYTES + 1)))
        except OSError as exc:
            ctx.log.warning("deletion order unreadable", file=str(path), error=str(exc))
    return found


def _move(path: Path, to: Path) -> None:
    """Into `to`, never over an earlier file of the same name."""
    to.mkdir(exist_ok=True)
    target = to / path.name
    n = 1
    while target.exists():
        target = to / f"{path.stem}.{n}{path.suffix}"
        n += 1
    path.replace(target)
