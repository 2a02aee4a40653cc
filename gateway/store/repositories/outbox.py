"""The deliveries still to make: claimed by one worker at a time for a lease."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, update

from gateway.store.driver import Prepared
from gateway.store.records import DuplicateMessage, OutboxItem
from gateway.store.repositories.base import Repository
from gateway.store.schema import messages, outbox

_ENQUEUE = outbox.insert()
_FINISH = outbox.delete().where(outbox.c.message_id == bindparam("b_message_id"))
_ENQUEUE_PG = Prepared(_ENQUEUE, ["message_id", "attempts", "next_attempt_at", "leased_until"])
_FINISH_PG = Prepared(_FINISH)


class Outbox(Repository):
    async def enqueue(
        self, message_id: str, now: datetime, leased_until: datetime | None = None
    ) -> None:
        """Queue a delivery; `leased_until`: claimed at once, by the worker it is handed to.
        Deferred (gateway.store.driver), usually sent with the message's own insert: an
        outbox row is keyed by a stored message's id (a foreign key), so one already there
        means the message id is taken, and the unit fails with DuplicateMessage whichever of
        the two PostgreSQL checks first."""
        await self._defer(
            _ENQUEUE_PG,
            {
                "message_id": message_id,
                "attempts": 0,
                "next_attempt_at": now,
                "leased_until": leased_until,
            },
            lambda: DuplicateMessage(message_id),
        )

    async def finish(self, message_id: str) -> bool:
        """Remove the message's outbox row; False if there was none (already finished)."""
        return await self._write(_FINISH_PG, {"b_message_id": message_id}) == 1

    async def reschedule(self, message_id: str, attempts: int, at: datetime, error: str) -> bool:
        """Set the next attempt; False if the row is gone (the outcome is recorded)."""
        done = await self._execute(
            update(outbox)
            .where(outbox.c.message_id == message_id)
            .values(attempts=attempts, next_attempt_at=at, leased_until=None, last_error=error)
        )
        return bool(done.rowcount == 1)

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxItem]:
        """Claim due deliveries for `lease`; a crashed claimer's rows come back when it ends."""
        q = (
            select(
                outbox.c.message_id,
                outbox.c.attempts,
                messages.c.peer,
                messages.c.digest,
                messages.c.signed_xml,
                messages.c.created_at,
                messages.c.message_type,
                messages.c.reference,
                messages.c.case_reference,
            )
            .join(messages, messages.c.message_id == outbox.c.message_id)
            .where(outbox.c.next_attempt_at <= now)
            .where((outbox.c.leased_until.is_(None)) | (outbox.c.leased_until < now))
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        if self.postgres:
            q = q.with_for_update(skip_locked=True, of=outbox)
        rows = list(await self._execute(q))
        if rows:
            await self._execute(
                update(outbox)
                .where(outbox.c.message_id.in_([r.message_id for r in rows]))
                .values(leased_until=now + lease)
            )
        return [
            OutboxItem(
                r.message_id,
                r.peer,
                r.digest,
                r.signed_xml,
                r.attempts,
                r.created_at,
                r.message_type,
                r.reference,
                r.case_reference or "",
            )
            for r in rows
            if r.signed_xml is not None
        ]

    async def release_all_leases(self) -> None:
        await self._execute(update(outbox).values(leased_until=None))

    async def next_due(self, now: datetime) -> datetime | None:
        """When the next outbox row can be claimed: a leased row (being sent, here or on
        another node) only when its lease ends, so the worker does not spin on rows in flight."""
        when = case(
            (outbox.c.leased_until > now, outbox.c.leased_until), else_=outbox.c.next_attempt_at
        )
        async with self.connect() as conn:
            value: datetime | None = (await conn.execute(select(func.min(when)))).scalar()
            return value

    async def state(self, message_id: str) -> dict[str, Any] | None:
        async with self.connect() as conn:
            row = (
                await conn.execute(select(outbox).where(outbox.c.message_id == message_id))
            ).first()
            return None if row is None else dict(row._mapping)

    async def listing(self, state: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Outbound messages `queued` (with their delivery schedule) or `undeliverable`, in
        the order they were stored, after the stored message number `after` (the cursor)."""
        shown = (
            messages.c.id,
            messages.c.message_id,
            messages.c.peer,
            messages.c.message_type,
            messages.c.reference,
            messages.c.case_reference,
            messages.c.created_at,
            messages.c.state,
        )
        if state == "queued":
            q = select(
                *shown,
                outbox.c.attempts,
                outbox.c.next_attempt_at,
                outbox.c.leased_until,
                outbox.c.last_error,
            ).join(outbox, messages.c.message_id == outbox.c.message_id)
        else:
            q = select(*shown, messages.c.reason_text.label("last_error")).where(
                messages.c.state == "undeliverable", messages.c.direction == "out"
            )
        q = q.where(messages.c.id > after).order_by(messages.c.id).limit(limit)
        async with self.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    async def retry_now(self, message_id: str, now: datetime) -> bool:
        """Make a queued delivery due now, unless a worker holds it (on any node): False
        when there is no such row or it is leased (being delivered right now)."""
        done = await self._execute(
            update(outbox)
            .where(outbox.c.message_id == message_id)
            .where((outbox.c.leased_until.is_(None)) | (outbox.c.leased_until < now))
            .values(next_attempt_at=now, attempts=0, last_error=None)
        )
        return bool(done.rowcount == 1)

    async def withdraw(self, message_id: str, now: datetime) -> bool:
        """Remove a queued delivery that no worker holds; False when there is no such row or
        it is leased (being delivered right now, here or on another node)."""
        done = await self._execute(
            outbox.delete()
            .where(outbox.c.message_id == message_id)
            .where((outbox.c.leased_until.is_(None)) | (outbox.c.leased_until < now))
        )
        return bool(done.rowcount == 1)

    async def lease_of(self, message_id: str) -> tuple[bool, datetime | None]:
        """Whether the message has an outbox row, and until when a worker holds it (read
        inside the transaction)."""
        row = (
            await self._execute(
                select(outbox.c.leased_until).where(outbox.c.message_id == message_id)
            )
        ).first()
        return (False, None) if row is None else (True, row.leased_until)
