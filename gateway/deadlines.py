"""Time limits in a running gateway: opening and closing them as messages are exchanged, and
a scheduler that applies each expiry's consequence exactly once, and sends reminders.

The scheduler never polls per deadline: it asks the store for the single next event time
(an indexed MIN over open deadlines), sleeps until then or until something changes, and then
handles the due rows in batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from gateway.context import GatewayContext
from gateway.core.conversations import Conversation, deem, is_late_reply, shift_responsibility
from gateway.core.deadlines import DeadlineError, RuleSet, load_rule_set, pack_named
from gateway.core.policy import Header
from gateway.core.tracking import Opening, changes_for, transfer_openings
from gateway.store.store import STORAGE_ERRORS, StoredDeadline, Transaction

BATCH = 500


def _next_event(
    expires: datetime, reminders: tuple[timedelta, ...], now: datetime, sent: int
) -> datetime:
    """The next reminder still ahead (lead times from the longest), else the expiry."""
    for lead in sorted(reminders, reverse=True)[sent:]:
        moment = expires - lead
        if moment > now:
            return moment
    return expires


@cache
def rule_set(name: str) -> RuleSet:
    """The packaged rule set `name`, read once per process."""
    return load_rule_set(name)


@cache
def rules_recorded_as(label: str) -> RuleSet | None:
    """The packaged rule set whose cases and deadlines are recorded as `label` (None: no
    pack of this gateway's version records them so)."""
    try:
        return rule_set(pack_named(label))
    except DeadlineError:
        return None


def _noon(day: date, zone: ZoneInfo) -> datetime:
    """An instant inside a calendar day, for events known only by their date."""
    return datetime.combine(day, time(12), tzinfo=zone)


async def record_request_limit(
    tx: Transaction,
    ctx: GatewayContext,
    rules: RuleSet,
    header: Header,
    form: Mapping[str, Any],
    now: datetime,
) -> str | None:
    """Art. 29(1), 34(3): the requesting State's own limit for making a take charge request,
    counted from the registration of the application (the form's application date). The
    request met it, or was made too late; then the requesting State is responsible, and the
    returned warning tells the case system so."""
    registered = (form.get("application") or {}).get("date")
    if header.message_type != "take-charge-request" or not registered:
        return None
    name = (
        "take_charge_request_detained" if form.get("detained") is True else ("take_charge_request")
    )
    zone = ctx.local.zone
    deadline = rules.deadline(
        name,
        _noon(date.fromisoformat(registered), zone),
        zone,
        state=ctx.local.member_state if rules.rolls_over else None,
    )
    late = now >= deadline.expires_at
    consequence = rules.rules[name].consequence if late else None
    await tx.open_deadline(
        case_reference=header.case,
        rule=name,
        legal_basis=rules.legal_basis,
        acting=header.sender,
        opened_by=header.message_id,
        started_at=_noon(date.fromisoformat(registered), zone),
        due_date=deadline.due_date.isoformat(),
        expires_at=deadline.expires_at,
        next_event_at=None,
        state="expired" if late else "met",
        consequence=consequence,
        closed_by=header.message_id,
        closed_at=now,
    )
    if not late:
        return None
    await tx.append_register(
        time=now,
        event="deadline-expired",
        direction="out",
        message_id=header.message_id,
        reference=header.case,
        status="expired",
        reason=consequence,
        details={
            "rule": name,
            "legal_basis": rules.name,
            "article": rules.rule(name).article,
            "acting": header.sender,
            "due_date": deadline.due_date.isoformat(),
            "expires_at": deadline.expires_at.isoformat(),
            "applied": True,
        },
    )
    return (
        f"Art. 29(1): the request was made after {deadline.due_date.isoformat()}, the last day "
        "of the limit counted from the registration of the application; the requesting State "
        "is responsible"
    )


class DeadlineKeeper:
    def __init__(self, ctx: GatewayContext, rules: RuleSet) -> None:
        self.ctx = ctx
        self.rules = rules
        self.reminders = ctx.config.deadlines.reminders
        self.wake = asyncio.Event()
        # The earliest event the scheduler knows of (None: none); a new deadline wakes it
        # only when it is due earlier, not on every message.
        self._next_known: datetime | None = None

    def notice(self, moment: datetime) -> None:
        """A deadline event at `moment` now exists (call it once its transaction committed)."""
        if self._next_known is None or moment < self._next_known:
            self._next_known = moment
            self.wake.set()

    async def _open(
        self,
        tx: Transaction,
        case: Conversation,
        opening: Opening,
        start: datetime,
        opened_by: str | None,
    ) -> None:
        """Open a limit of `case`, counted by the rules of the case's own legal basis."""
        ctx = self.ctx
        rules = rule_set(pack_named(case.legal_basis))
        acting = ctx.directory.get(opening.acting) or ctx.local
        deadline = rules.deadline(
            opening.rule,
            start,
            acting.zone,
            state=acting.member_state if rules.rolls_over else None,
            requested=opening.requested,
        )
        now = ctx.clock()
        next_event = _next_event(deadline.expires_at, self.reminders, now, 0)
        await tx.open_deadline(
            case_reference=case.reference,
            rule=opening.rule,
            legal_basis=rules.legal_basis,
            acting=opening.acting,
            opened_by=opened_by,
            started_at=start,
            due_date=deadline.due_date.isoformat(),
            expires_at=deadline.expires_at,
            next_event_at=next_event,
        )
        await tx.append_register(
            time=now,
            event="deadline-opened",
            direction="in",
            message_id=opened_by,
            reference=case.reference,
            status="open",
            details={
                "rule": opening.rule,
                "legal_basis": rules.name,
                "article": rules.rule(opening.rule).article,
                "verified": rules.rule(opening.rule).verified,
                "acting": opening.acting,
                "due_date": deadline.due_date.isoformat(),
                "expires_at": deadline.expires_at.isoformat(),
            }
            | (
                {"requested_date": deadline.requested_date.isoformat()}
                if deadline.requested_date
                else {}
            ),
        )
        # Woken before the commit, the scheduler would find nothing and sleep its full round.
        tx.after_commit(lambda: self.notice(next_event))

    async def on_message(
        self,
        tx: Transaction,
        header: Header,
        form: Mapping[str, Any],
        outcome: str | None,
        after: Conversation,
        instant: datetime,
    ) -> bool:
        """Apply a message's deadline changes at `instant` (its acknowledged receipt time);
        returns whether it was a late reply."""
        late = is_late_reply(after, header.message_type)
        changes = changes_for(
            header.message_type,
            outcome,
            form,
            urgent=header.urgent,
            sender=header.sender,
            receiver=header.receiver,
            after=after,
            late=late,
        )
        now = self.ctx.clock()
        if late:
            await tx.append_register(
                time=now,
                event="late-reply",
                direction="in",
                message_id=header.message_id,
                message_type=header.message_type,
                reference=header.case,
                status="late",
                details={"state": after.state.value},
            )
        if changes.close:
            closed = await tx.close_deadlines(
                header.case,
                changes.close,
                header.message_id,
                instant,
                "met" if changes.close_reason == "met" else "closed",
            )
            for rule in closed:
                await tx.append_register(
                    time=now,
                    event="deadline-closed",
                    direction="in",
                    message_id=header.message_id,
                    reference=header.case,
                    status=changes.close_reason,
                    details={"rule": rule},
                )
        for opening in changes.open:
            await self._open(tx, after, opening, instant, header.message_id)
        return late

    async def run(self) -> None:
        ctx = self.ctx
        while True:
            self.wake.clear()
            try:
                handled = await self.process_due()
                if handled:
                    continue
                nxt = await ctx.store.next_deadline_event()
            except STORAGE_ERRORS as exc:
                # Storage refuses for now: nothing was applied (each batch is one
                # transaction); retry shortly instead of stopping the scheduler for good.
                ctx.log.error("deadline scheduler cannot reach its storage", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            wait = 300.0
            self._next_known = nxt
            if nxt is not None:
                wait = max(0.0, min(wait, (nxt - ctx.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=max(wait, 0.01))

    async def process_due(self) -> int:
        """Handle every deadline event due now; returns how many were handled."""
        total = 0
        while True:
            now = self.ctx.clock()
            due = await self.ctx.store.due_deadlines(now, BATCH)
            if due:
                # One durable transaction per batch; each row is re-checked inside it, so a
                # consequence is applied once even with several gateway processes.
                async with self.ctx.store.transaction() as tx:
                    for d in due:
                        await self._handle(tx, d, now)
            total += len(due)
            if len(due) < BATCH:
                return total

    async def _handle(self, tx: Transaction, d: StoredDeadline, now: datetime) -> None:
        if now >= d.expires_at:
            await self._expire(tx, d, now)
            return
        nxt = _next_event(d.expires_at, self.reminders, now, d.reminders_sent + 1)
        if await tx.take_deadline(d.id, nxt):
            await tx.append_register(
                time=now,
                event="reminder",
                direction="in",
                reference=d.case_reference,
                status="open",
                details={
                    "rule": d.rule,
                    "acting": d.acting,
                    "due_date": d.due_date,
                    "expires_at": d.expires_at.isoformat(),
                },
            )

    async def _expire(self, tx: Transaction, d: StoredDeadline, now: datetime) -> None:
        # What silence means is the rules data's, for the legal basis the limit was opened
        # under (None: the text gives no consequence, and none is invented).
        rules = rules_recorded_as(d.legal_basis)
        rule = rules.rules.get(d.rule) if rules is not None else None
        if rule is None:
            self.ctx.log.error(
                "deadline expired under rules this gateway does not run; no consequence applied",
                case=d.case_reference,
                rule=d.rule,
                legal_basis=d.legal_basis,
            )
        consequence = rule.consequence if rule is not None else None
        if not await tx.expire_deadline(d.id, consequence, now):
            return
        conv = await tx.get_conversation(d.case_reference)
        applied: Conversation | None = None
        if conv is not None and consequence in ("deemed-acceptance", "deemed-confirmation"):
            applied = deem(conv)
        elif conv is not None and consequence == "responsibility-shifted":
            applied = shift_responsibility(conv)
        if applied is not None:
            await tx.save_conversation(applied, now)
        current = applied or conv
        await tx.append_register(
            time=now,
            event="deadline-expired",
            direction="in",
            reference=d.case_reference,
            status="expired",
            reason=consequence,
            details={
                "rule": d.rule,
                "legal_basis": rules.name if rules is not None else d.legal_basis,
                "article": rule.article if rule is not None else None,
                "acting": d.acting,
                "due_date": d.due_date,
                "expires_at": d.expires_at.isoformat(),
                "applied": applied is not None,
                "state": current.state.value if current is not None else None,
            },
        )
        self.ctx.log.info(
            "deadline expired",
            case=d.case_reference,
            rule=d.rule,
            consequence=consequence,
            applied=applied is not None,
        )
        if applied is not None and consequence in ("deemed-acceptance", "deemed-confirmation"):
            for opening in transfer_openings(applied):
                await self._open(tx, applied, opening, d.expires_at, None)
