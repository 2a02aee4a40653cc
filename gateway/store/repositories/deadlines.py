"""The legal time limits being kept, met or expired."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from gateway.store.driver import Prepared
from gateway.store.records import NewDeadline, StoredDeadline, deadline_of
from gateway.store.repositories.base import Repository
from gateway.store.schema import conversations, deadlines

_INSERT = deadlines.insert()
_INSERT_PG = Prepared(_INSERT, [*NewDeadline.__dataclass_fields__, "reminders_sent"])


class Deadlines(Repository):
    async def open(self, deadline: NewDeadline) -> None:
        """Record a time limit (deferred: sent with the unit's next statement, driver.py)."""
        await self._defer(_INSERT_PG, deadline.row())

    async def close(
        self, case: str, rules: frozenset[str], by: str | None, at: datetime, state: str
    ) -> list[str]:
        """Close the case's open deadlines of `rules`; returns the rules closed."""
        q = select(deadlines.c.id, deadlines.c.rule).where(
            deadlines.c.case_reference == case,
            deadlines.c.state == "open",
            deadlines.c.rule.in_(sorted(rules)),
        )
        rows = list(await self._execute(q))
        if rows:
            await self._execute(
                update(deadlines)
                .where(deadlines.c.id.in_([r.id for r in rows]))
                .values(state=state, closed_by=by, closed_at=at, next_event_at=None)
            )
        return [r.rule for r in rows]

    async def take(self, deadline_id: int, next_event_at: datetime | None) -> bool:
        """Move an open deadline's next event on; False if another worker already did."""
        done = await self._execute(
            update(deadlines)
            .where(deadlines.c.id == deadline_id, deadlines.c.state == "open")
            .values(next_event_at=next_event_at, reminders_sent=deadlines.c.reminders_sent + 1)
        )
        return bool(done.rowcount == 1)

    async def expire(self, deadline_id: int, consequence: str | None, at: datetime) -> bool:
        """Mark an open deadline expired, once; False if it was not open any more."""
        done = await self._execute(
            update(deadlines)
            .where(deadlines.c.id == deadline_id, deadlines.c.state == "open")
            .values(state="expired", consequence=consequence, closed_at=at, next_event_at=None)
        )
        return bool(done.rowcount == 1)

    async def count_open(self) -> int:
        """How many limits are open, counted on the (state, next_event_at) index, off the
        event loop: a scrape asks this every time."""
        q = select(func.count()).select_from(deadlines).where(deadlines.c.state == "open")
        return int((await self.read_aside(q))[0][0])

    async def next_event(self) -> datetime | None:
        q = select(func.min(deadlines.c.next_event_at)).where(deadlines.c.state == "open")
        async with self.connect() as conn:
            value: datetime | None = (await conn.execute(q)).scalar()
            return value

    async def due(self, now: datetime, limit: int) -> list[StoredDeadline]:
        q = (
            select(deadlines)
            .where(deadlines.c.state == "open", deadlines.c.next_event_at <= now)
            .order_by(deadlines.c.next_event_at)
            .limit(limit)
        )
        async with self.connect() as conn:
            return [deadline_of(r) for r in await conn.execute(q)]

    async def find(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        acting: str | None = None,
        peer_of: tuple[str, str] | None = None,
        due_before: str | None = None,
        due_after: str | None = None,
        case: str | None = None,
        opened_by: str | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[StoredDeadline]:
        q = select(deadlines).where(deadlines.c.id > after_id)
        for column, value in (
            (deadlines.c.opened_by, opened_by),
            (deadlines.c.state, state),
            (deadlines.c.rule, rule),
            (deadlines.c.acting, acting),
            (deadlines.c.case_reference, case),
        ):
            if value is not None:
                q = q.where(column == value)
        if due_before is not None:
            q = q.where(deadlines.c.due_date <= due_before)
        if due_after is not None:
            q = q.where(deadlines.c.due_date >= due_after)
        if peer_of is not None:
            local, peer = peer_of
            cases = select(conversations.c.reference).where(
                ((conversations.c.requesting == local) & (conversations.c.requested == peer))
                | ((conversations.c.requesting == peer) & (conversations.c.requested == local))
            )
            q = q.where(deadlines.c.case_reference.in_(cases))
        q = q.order_by(deadlines.c.id).limit(limit)
        async with self.connect() as conn:
            return [deadline_of(r) for r in await conn.execute(q)]
