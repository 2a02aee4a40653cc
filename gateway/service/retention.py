"""Payload retention: payloads older than the configured period are erased; their register
entries and digests stay, so the register still proves what was exchanged. The same pass
applies the operational family's retention periods and the network operator's deletion
orders dropped in `operational.deletion_orders_dir` (gateway.service.operational_lifecycle);
that folder is also looked at every `folder_interval_seconds` between two passes, so an order
takes effect within seconds, not within the hour."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from gateway.context import GatewayContext
from gateway.service.cases import erase_payload
from gateway.service.operational_lifecycle import apply_retention, pick_up_deletion_orders
from gateway.waits import wait_set

BATCH = 200


class RetentionKeeper:
    def __init__(
        self,
        ctx: GatewayContext,
        interval_seconds: float = 3600.0,
        folder_interval_seconds: float = 5.0,
    ) -> None:
        self.ctx = ctx
        self.interval = interval_seconds
        self.folder_interval = folder_interval_seconds
        self.wake = asyncio.Event()

    async def erase_expired(self) -> int:
        days = self.ctx.config.register.payload_retention_days
        if days <= 0:
            return 0
        total = 0
        while True:
            now = self.ctx.clock()
            due = await self.ctx.store.messages.payloads_stored_before(
                now - timedelta(days=days), BATCH
            )
            if not due:
                return total
            async with self.ctx.store.transaction() as tx:
                for message_id in due:
                    await erase_payload(tx, message_id, now, None)
            total += len(due)

    async def retain(self) -> None:
        """One retention pass: Dublin payloads, then the operational family's items."""
        erased = await self.erase_expired()
        if erased:
            self.ctx.log.info("payloads erased after retention", count=erased)
        archived, items_erased = await apply_retention(self.ctx)
        if archived or items_erased:
            self.ctx.log.info(
                "operational items after retention", archived=archived, erased=items_erased
            )

    async def run(self) -> None:
        folder = bool(self.ctx.config.operational.deletion_orders_dir)
        last_pass: float | None = None
        woken = True
        while True:
            self.wake.clear()
            if woken or last_pass is None or time.monotonic() - last_pass >= self.interval:
                last_pass = time.monotonic()
                try:
                    await self.retain()
                except Exception:
                    self.ctx.log.exception("retention pass failed")
            if folder:
                try:
                    await pick_up_deletion_orders(self.ctx)
                except Exception:
                    self.ctx.log.exception("deletion order pickup failed")
            wait = min(self.interval, self.folder_interval) if folder else self.interval
            woken = await wait_set(self.wake, wait)
