"""Queue administration: the outbound messages still queued or given up on, and an
administrator's retry or cancellation of one of them. Each action is one transaction with its
register entry naming who acted (the named user, `principal`, and the role or, from the shell,
the operating-system user as `actor`) (the case system sees it in its events feed); a message a
delivery worker holds right now, on any node (its outbox lease), is left alone (`409`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.register import Event, filed_under
from gateway.core.times import utc_text
from gateway.store.store import Store, Transaction

STATES = ("queued", "undeliverable")
CANCELLED = "cancelled by an administrator"


class QueueActionError(ValueError):
    """An action the message's state does not allow: `status` is the HTTP status (404 for
    no such outbound message, 409 for one in another state or being delivered now)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]
    next_cursor: str


async def list_outbox(store: Store, state: str, after: int, limit: int) -> QueuePage:
    """One page of outbound messages in `state` (queued or undeliverable); the cursor is the
    stored message number, so a page never repeats or skips a message."""
    if state not in STATES:
        raise ValueError(f"state is one of {', '.join(STATES)}")
    rows = await store.outbox.listing(state, after, limit)
    items = [
        {
            "message_id": r["message_id"],
            "peer": r["peer"],
            "type": r["message_type"],
            "reference": r["reference"],
            "case": r["case_reference"] or r["reference"],
            "state": r["state"],
            "created": utc_text(r["created_at"]),
            "attempts": r.get("attempts"),
            "next_attempt_at": _time(r.get("next_attempt_at")),
            "being_delivered": r.get("leased_until") is not None,
            "last_error": r.get("last_error"),
        }
        for r in rows
    ]
    return QueuePage(items, str(rows[-1]["id"]) if rows else str(after))


def _time(value: Any) -> str | None:
    return None if value is None else utc_text(value)


async def retry(
    store: Store, message_id: str, actor: str, now: datetime, principal: str | None = None
) -> dict[str, Any]:
    """Deliver again: an undeliverable message goes back to the queue with its attempts
    counted afresh; a queued one is made due now. The signed transmission is the same (same
    message id, same signature), so the receiver's replay protection still holds. A running
    gateway's delivery worker picks it up at its next poll (the API wakes it at once)."""
    async with store.transaction() as tx:
        message = await _outbound(tx, message_id)
        if message["state"] == "undeliverable":
            await tx.outbox.enqueue(message_id, now)
            await tx.messages.update(message_id, state="queued", reason_text=None)
        elif message["state"] == "queued":
            if not await tx.outbox.retry_now(message_id, now):
                raise _busy_or_gone(await tx.outbox.lease_of(message_id), message_id)
        else:
            raise QueueActionError(
                409, f"message {message_id} is {message['state']}: there is nothing to retry"
            )
        await _record(tx, Event.REQUEUED, message, actor, principal, "queued", now)
    return {"message_id": message_id, "state": "queued", "previous_state": message["state"]}


async def cancel(
    store: Store, message_id: str, actor: str, now: datetime, principal: str | None = None
) -> dict[str, Any]:
    """Stop delivering a queued message: it becomes undeliverable (it can be retried later);
    one a worker is delivering right now is refused, since its outcome may already be
    decided on the other side."""
    async with store.transaction() as tx:
        message = await _outbound(tx, message_id)
        if message["state"] != "queued":
            raise QueueActionError(
                409, f"message {message_id} is {message['state']}: only a queued one is cancelled"
            )
        if not await tx.outbox.withdraw(message_id, now):
            raise _busy_or_gone(await tx.outbox.lease_of(message_id), message_id)
        await tx.messages.update(message_id, state="undeliverable", reason_text=CANCELLED)
        await _record(tx, Event.CANCELLED, message, actor, principal, "undeliverable", now)
    return {"message_id": message_id, "state": "undeliverable", "previous_state": "queued"}


async def _outbound(tx: Transaction, message_id: str) -> dict[str, Any]:
    stored = await tx.messages.get(message_id)
    if stored is None or stored.direction != "out":
        raise QueueActionError(404, f"no outbound message {message_id}")
    return {
        "message_id": stored.message_id,
        "state": stored.state,
        "peer": stored.peer,
        "type": stored.message_type,
        "reference": stored.reference,
        "case": stored.case_reference,
        "digest": stored.digest,
    }


def _busy_or_gone(lease: tuple[bool, datetime | None], message_id: str) -> QueueActionError:
    held, until = lease
    if held:
        ends = f" (its claim ends at {utc_text(until)})" if until is not None else ""
        return QueueActionError(
            409,
            f"message {message_id} is being delivered right now{ends}; try again then (a "
            "gateway stopped during an attempt keeps the claim until then, or until a SQLite "
            "gateway starts again)",
        )
    return QueueActionError(409, f"message {message_id} is no longer queued")


async def _record(
    tx: Transaction,
    event: Event,
    message: dict[str, Any],
    actor: str,
    principal: str | None,
    status: str,
    now: datetime,
) -> None:
    reference, details = filed_under(message["reference"], message["case"])
    await tx.register.append(
        time=now,
        event=event,
        direction="out",
        peer=message["peer"],
        message_id=message["message_id"],
        message_type=message["type"],
        reference=reference,
        digest=message["digest"],
        status=status,
        details=details | {"actor": actor, "previous_state": message["state"]},
        principal=principal,
    )
