"""Payload retention: payloads older than the configured period are erased; their register
entries and digests stay, so the register still proves what was exchanged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.context import GatewayContext
from gateway.service.cases import erase_payload
from gateway.waits import wait_set

BATCH = 200


class RetentionKeeper:
    def __init__(self, ctx: GatewayContext, interval_seconds: float = 3600.0) -> None:
        self.ctx = ctx
        self.interval = interval_seconds
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

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                erased = await self.erase_expired()
                if erased:
                    self.ctx.log.info("payloads erased after retention", count=erased)
            except Exception:
                self.ctx.log.exception("retention pass failed")
            await wait_set(self.wake, self.interval)
