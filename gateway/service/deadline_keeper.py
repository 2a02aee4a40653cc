"""Time limits in a running gateway: opening and closing them as messages are exchanged, and
a scheduler that applies each expiry's consequence exactly once, and sends reminders.

The scheduler never polls per deadline: it asks the store for the single next event time
(an indexed MIN over open deadlines), sleeps until then or until something changes, and then
handles the due rows in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from gateway.context import GatewayContext
from gateway.core.conversations import Conversation, deem, is_late_reply, shift_responsibility
from gateway.core.deadlines import (
    DeadlineError,
    RuleSet,
    check_requested,
    load_rule_set,
    pack_named,
)
from gateway.core.policy import Header, Reason, Rejection
from gateway.core.register import Event
from gateway.core.tracking import Changes, Opening, changes_for, request_limit, transfer_openings
from gateway.store.records import NewDeadline, StoredDeadline
from gateway.store.store import STORAGE_ERRORS, Transaction
from gateway.waits import wait_set

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
    information_case: str | None = None,
) -> str | None:
    """The requesting State's own limit for making a take charge request (2024/1351 Art.
    39(1), 45(1); proposal Art. 29(1), 34(3)), counted from the registration of the
    application (the form's application date), by the case's basis. The request met it, or
    was made too late; then the returned warning tells the case system the consequence the
    rules data gives (the requesting State responsible; for a detained person, release).

    `information_case`: the case system says the requested State's late reply to that
    request for information withheld information showing it responsible, so the limit is
    extended by the delay (2024/1351 Art. 51(5)); the delay is the register's, not said."""
    application = form.get("application") or {}
    family = {
        "take-charge-request": "take_charge_request",
        "take-back-request": "take_back_request",
    }
    if header.message_type not in family or not application.get("date"):
        return None
    chosen = request_limit(rules, form, family[header.message_type])
    if chosen is None:
        return None
    name, registered = chosen
    zone = ctx.local.zone
    deadline = rules.deadline(
        name,
        _noon(date.fromisoformat(registered), zone),
        zone,
        state=ctx.local.member_state if rules.rolls_over else None,
    )
    extension = None
    if information_case is not None:
        extension = await information_delay(tx, ctx, rules, name, information_case, header, now)
        deadline = rules.extend(
            deadline, extension, zone, ctx.local.member_state if rules.rolls_over else None
        )
    late = now >= deadline.expires_at
    consequence = rules.rules[name].consequence if late else None
    await tx.deadlines.open(
        NewDeadline(
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
    )
    if not late:
        return None
    await tx.register.append(
        time=now,
        event=Event.DEADLINE_EXPIRED,
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
            **(
                {"extended_by_days": extension, "extended_by_case": information_case}
                if extension is not None
                else {}
            ),
        },
    )
    rule = rules.rule(name)
    return (
        f"{rule.article} of {rules.name}: the request was made after "
        f"{deadline.due_date.isoformat()}, the last day of the limit counted from "
        f"{_RUNS_FROM.get(rule.runs_from, 'the registration of the application')}; "
        f"{_LATE_REQUEST.get(consequence or '', 'see the rule')}"
    )


_RUNS_FROM = {
    "lodging": "the lodging of the application",
    "hit": "the receipt of the Eurodac or VIS hit",
    "detention": "the placement in detention",
}


_LATE_REQUEST = {
    "requesting-state-responsible": "the requesting State is responsible",
    "person-released": "the person must be released from detention; the limits of a request "
    "for a person not detained keep applying",
}
"""What a request made too late means, by the consequence the rules data gives it."""


SILENCE_CONSEQUENCES = frozenset({"deemed-acceptance", "deemed-confirmation", "procedure-ended"})
"""Consequences of a limit's expiry that the case's pack turns into a state by its `silence`
section: deemed acceptance or confirmation, or the end of a re-examination procedure with the
refusal standing (2025/2055 Art. 9(2), 1560/2003 Art. 5(2): no deemed acceptance)."""


def _closed_state(changes: Changes) -> str:
    """What the limits a message closes become: met by an answer, suspended (they may
    resume), or closed."""
    if changes.suspends:
        return "suspended"
    return "met" if changes.close_reason == "met" else "closed"


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

    async def _extended(
        self, tx: Transaction, case: Conversation, rule: str, closed_by: str | None
    ) -> datetime | None:
        """When the case's limit `rule` that the message `closed_by` just closed began."""
        for d in await tx.deadlines.find(case=case.reference, rule=rule, limit=1000):
            if d.closed_by == closed_by and d.closed_by is not None and d.state == "closed":
                return d.started_at
        return None

    async def _suspended(
        self, tx: Transaction, case: Conversation, rule: str
    ) -> StoredDeadline | None:
        """The case's limit `rule` suspended last, unless one of that rule is open."""
        found = await tx.deadlines.find(case=case.reference, rule=rule, limit=1000)
        if any(d.state == "open" for d in found):
            return None
        suspended = [d for d in found if d.state == "suspended" and d.closed_at is not None]
        return max(suspended, key=lambda d: (d.closed_at, d.id), default=None)

    async def _replace(
        self,
        tx: Transaction,
        case: Conversation,
        rule: str,
        expires_at: datetime,
        by: str | None,
        at: datetime,
        now: datetime,
    ) -> bool:
        """Close the case's open limit `rule` if it ends before `expires_at`; whether it did
        (False: it ends as late or later and keeps running, or none is open)."""
        running = await tx.deadlines.find(case=case.reference, rule=rule, state="open", limit=10)
        if not running or max(d.expires_at for d in running) >= expires_at:
            return False
        for closed in await tx.deadlines.close(case.reference, frozenset({rule}), by, at, "closed"):
            await tx.register.append(
                time=now,
                event=Event.DEADLINE_CLOSED,
                direction="in",
                message_id=by,
                reference=case.reference,
                status="replaced",
                details={"rule": closed},
            )
        return True

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
        if opening.runs_as is not None:
            extended = await self._extended(tx, case, opening.runs_as, opened_by)
            if extended is None:
                return  # nothing running to extend (e.g. notified after the limit passed)
            start = extended
        if opening.resumes:
            suspended = await self._suspended(tx, case, opening.rule)
            if suspended is None:
                return  # nothing suspended to resume, or the limit runs already
            start = suspended.started_at + (start - (suspended.closed_at or start))
        if opening.runs_from is not None and opening.planned:
            # A day the form plans (the date by which a person is to appear, 2025/2055 Art.
            # 24(4), 25(6)): the limit runs from it.
            start = _noon(opening.runs_from, acting.zone)
        elif opening.runs_from is not None:
            # The form names the day the limit runs from (e.g. a final decision on an
            # appeal, Art. 46(1)); never later than the message that reports it.
            start = min(start, _noon(opening.runs_from, acting.zone))
        # 2024/1359 Art. 12: a limit the acting State must meet, opening on a day its
        # authorisation to derogate covers, takes the derogating period (only where the
        # case's basis has derogations; never without a published authorisation).
        crisis = acting.derogating_on(start.astimezone(acting.zone).date())
        derogating = crisis is not None and rules.derogates(opening.rule)
        rule = rules.applied(opening.rule, derogating)
        state = acting.member_state if rules.rolls_over else None
        requested = opening.requested
        if requested is not None:
            try:
                check_requested(rule, start, acting.zone, requested)
            except DeadlineError as exc:
                # A requested period shorter than the law allows is no requested period: the
                # reply is due "failing that" at the end of the rule's own period (2024/1351
                # Art. 40(7)); the sender's gateway refuses such a request, a peer's is kept.
                ctx.log.warning(
                    "requested reply date ignored", case=case.reference, reason=str(exc)
                )
                requested = None
        deadline = rules.deadline(
            opening.rule,
            start,
            acting.zone,
            state=state,
            requested=requested,
            derogating=derogating,
        )
        now = ctx.clock()
        if opening.replaces_if_later is not None and not await self._replace(
            tx, case, opening.replaces_if_later, deadline.expires_at, opened_by, start, now
        ):
            return
        next_event = _next_event(deadline.expires_at, self.reminders, now, 0)
        await tx.deadlines.open(
            NewDeadline(
                case_reference=case.reference,
                rule=opening.rule,
                legal_basis=rules.legal_basis,
                acting=opening.acting,
                opened_by=opened_by,
                started_at=start,
                due_date=deadline.due_date.isoformat(),
                expires_at=deadline.expires_at,
                next_event_at=next_event,
                derogation=crisis.decision if derogating and crisis else None,
            )
        )
        await tx.register.append(
            time=now,
            event=Event.DEADLINE_OPENED,
            direction="in",
            message_id=opened_by,
            reference=case.reference,
            status="open",
            details={
                "rule": opening.rule,
                "legal_basis": rules.name,
                "article": rule.article,
                "verified": rule.verified,
                "acting": opening.acting,
                "due_date": deadline.due_date.isoformat(),
                "expires_at": deadline.expires_at.isoformat(),
            }
            | (
                {"requested_date": deadline.requested_date.isoformat()}
                if deadline.requested_date
                else {}
            )
            | ({"crisis_derogation": crisis.to_dict()} if derogating and crisis else {}),
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
            await tx.register.append(
                time=now,
                event=Event.LATE_REPLY,
                direction="in",
                message_id=header.message_id,
                message_type=header.message_type,
                reference=header.case,
                status="late",
                details={"state": after.state.value},
            )
        if changes.close:
            closed = await tx.deadlines.close(
                header.case,
                changes.close,
                header.message_id,
                instant,
                _closed_state(changes),
            )
            for rule in closed:
                await tx.register.append(
                    time=now,
                    event=Event.DEADLINE_CLOSED,
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
                nxt = await ctx.store.deadlines.next_event()
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
            await wait_set(self.wake, max(wait, 0.01))

    async def process_due(self) -> int:
        """Handle every deadline event due now; returns how many were handled."""
        total = 0
        while True:
            now = self.ctx.clock()
            due = await self.ctx.store.deadlines.due(now, BATCH)
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
        if await tx.deadlines.take(d.id, nxt):
            await tx.register.append(
                time=now,
                event=Event.REMINDER,
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
        rule = None
        if rules is not None and d.rule in rules.rules:
            rule = rules.applied(d.rule, d.derogation is not None)
        if rule is None:
            self.ctx.log.error(
                "deadline expired under rules this gateway does not run; no consequence applied",
                case=d.case_reference,
                rule=d.rule,
                legal_basis=d.legal_basis,
            )
        consequence = rule.consequence if rule is not None else None
        if not await tx.deadlines.expire(d.id, consequence, now):
            return
        tx.after_commit(self.ctx.metrics.deadlines_expired.labels(consequence or "").inc)
        conv = await tx.conversations.get(d.case_reference)
        applied: Conversation | None = None
        if conv is not None and consequence in SILENCE_CONSEQUENCES:
            applied = deem(conv)
        elif conv is not None and consequence == "responsibility-shifted":
            applied = shift_responsibility(conv)
        if applied is not None:
            await tx.conversations.save(applied, now)
        current = applied or conv
        await tx.register.append(
            time=now,
            event=Event.DEADLINE_EXPIRED,
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
                **({"crisis_derogation": d.derogation} if d.derogation else {}),
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
            # The limits run from the last day of the reply period, whatever the two
            # authorities' time zones (issue 16, defect 8): the same day on both sides.
            last_day = date.fromisoformat(d.due_date)
            for opening in transfer_openings(applied):
                dated = replace(opening, runs_from=last_day)
                await self._open(tx, applied, dated, d.expires_at, None)


async def information_delay(
    tx: Transaction,
    ctx: GatewayContext,
    rules: RuleSet,
    name: str,
    reference: str,
    header: Header,
    now: datetime,
) -> int:
    """The days by which the requested State's reply in the information case `reference`
    came after its limit (until now, while it has not come): what 2024/1351 Art. 51(5)
    extends the Art. 39 limits by. Rejection when the pack gives `name` no such extension or
    the case is no request for information of this sender to this receiver."""
    extending = rules.rule(name).extended_by
    if extending is None:
        raise Rejection(
            Reason.CONVERSATION_RULE,
            f"{rules.name} extends no {name} limit by a late reply to a request for information",
        )
    case = await tx.conversations.get(reference)
    if case is None or (case.kind, case.requesting, case.requested) != (
        "information",
        header.sender,
        header.receiver,
    ):
        raise Rejection(
            Reason.CONVERSATION_RULE,
            f"{reference} is no request for information from {header.sender} to {header.receiver}",
        )
    limits = await tx.deadlines.find(case=reference, rule=extending, limit=1)
    if not limits:
        return 0
    replied = [
        m.receipt_time
        for m in await tx.messages.of_case(reference)
        if m.message_type == "info-reply" and m.receipt_time is not None
    ]
    answered = min(replied) if replied else now
    zone = ctx.local.zone
    due = date.fromisoformat(limits[0].due_date)
    return max(0, (answered.astimezone(zone).date() - due).days)
