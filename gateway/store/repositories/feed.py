"""The register's reads for the events feed and the message and case views: which entries a
case system sees (Register.case_events, Register.feed_page), as statements built once."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select

from gateway.core.register import Event, RegisterEntry
from gateway.store.inline import DbConnection
from gateway.store.records import entry_of
from gateway.store.schema import conversations, messages, register, register_head


def _a_strangers_refusal() -> ColumnElement[bool]:
    """A register row (joined with the case its reference names and the message its id
    names) recording our refusal of a transmission from an authority that is a party of
    neither."""
    return and_(
        register.c.event == Event.REJECTED.value,
        register.c.direction == "in",
        or_(
            and_(
                conversations.c.reference.is_not(None),
                register.c.peer.is_distinct_from(conversations.c.requesting),
                register.c.peer.is_distinct_from(conversations.c.requested),
            ),
            and_(
                messages.c.message_id.is_not(None),
                register.c.peer.is_distinct_from(messages.c.peer),
            ),
        ),
    )


HEAD_ONLY = select(register_head.c.sequence, register_head.c.hash).where(register_head.c.id == 1)


@functools.cache
def case_events_query(of_case: bool, of_message: bool) -> Select[Any]:
    """The events feed's query (Register.case_events), built once for each of its four
    shapes, its values bound at execution: building it on every read was a quarter of an
    events-feed read's CPU (py-spy, issue 20), and a case system reads the feed all day."""
    q = (
        select(register)
        .select_from(
            register.outerjoin(
                conversations, conversations.c.reference == register.c.reference
            ).outerjoin(messages, messages.c.message_id == register.c.message_id)
        )
        .where(
            register.c.sequence > bindparam("after"),
            register.c.sequence <= bindparam("upto"),
            register.c.event.in_(bindparam("events", expanding=True)),
            register.c.reference.is_not(None),
            ~_a_strangers_refusal(),
        )
    )
    if of_case:
        q = q.where(register.c.reference == bindparam("case"))
    if of_message:
        q = q.where(register.c.message_id == bindparam("message_id"))
    return q.order_by(register.c.sequence).limit(bindparam("limit"))


async def read_case_events(
    conn: DbConnection,
    after: int,
    upto: int | None,
    events: Sequence[str],
    limit: int,
    case: str | None,
    message_id: str | None,
) -> list[RegisterEntry]:
    """Run the feed's query on `conn` (Register.case_events says which entries it gives)."""
    q = case_events_query(case is not None, message_id is not None)
    params = {
        "after": after,
        "upto": upto if upto is not None else 2**62,
        "events": list(events),
        "limit": limit,
        "case": case,
        "message_id": message_id,
    }
    return [entry_of(r) for r in await conn.execute(q, params)]
