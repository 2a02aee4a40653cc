"""What the law says of a submission before it is signed, beyond the conversation rules:
an urgent request's requested date (refused when too short), and the warnings a case system
gets with an accepted submission (transfers to a State authorised to derogate wait; the
transfer form's days)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from gateway.context import GatewayContext
from gateway.core.deadlines import DeadlineError, check_requested
from gateway.core.forms import FormType
from gateway.core.policy import Header, Reason
from gateway.core.transfer_forms import timing_warnings, transfer_form_rules
from gateway.service.deadline_keeper import rule_set


class RequestedDateError(ValueError):
    """An urgent request's requested reply date the basis does not allow."""

    def __init__(self, field: str, message: str, rule: str) -> None:
        super().__init__(message)
        self.field, self.text, self.rule = field, message, rule


def check_requested_date(
    ctx: GatewayContext, ft: FormType, form: Mapping[str, Any], header: Header
) -> None:
    """An urgent request's requested reply date, counted as the receiver will count it (in
    its zone, from now): at least the minimum its basis gives (2024/1351 Art. 39(2),
    604/2013 Art. 21(2): one week)."""
    urgency = form.get("urgency")
    wanted = urgency.get("requestedReplyDate") if isinstance(urgency, Mapping) else None
    receiver = ctx.directory.get(header.receiver)
    rules = rule_set(header.legal_basis or ctx.config.deadlines.legal_basis)
    rule = rules.rules.get("take_charge_reply_urgent")
    if ft.name != "take-charge-request" or not isinstance(wanted, str) or not receiver or not rule:
        return
    try:
        check_requested(rule, header.created, receiver.zone, date.fromisoformat(wanted))
    except DeadlineError as exc:
        raise RequestedDateError(
            "/form/urgency/requestedReplyDate",
            f"{exc} ({rule.requested_article or rule.article} of {rules.name})",
            Reason.URGENCY_INCOMPLETE.value,
        ) from exc


def transfers_wait(
    ctx: GatewayContext, ft: FormType, form: Mapping[str, Any], header: Header
) -> str | None:
    """2024/1359 Art. 12(4): transfers to a State authorised to derogate wait (at most a
    year). Said to the case system when it arranges one; the gateway does not hold it back,
    since the text leaves the transfer to the transferring State."""
    if ft.name != "transfer-notice" or form.get("kind") not in ("decision-taken", "arrangements"):
        return None
    receiver = ctx.directory.get(header.receiver)
    rules = rule_set(header.legal_basis or ctx.config.deadlines.legal_basis)
    if receiver is None or rules.derogation is None:
        return None
    crisis = receiver.derogating_on(header.created.astimezone(receiver.zone).date())
    if crisis is None:
        return None
    return (
        f"{receiver.code}'s State is authorised to derogate from {crisis.start} to "
        f"{crisis.until} ({crisis.decision}): transfers to it wait, at most 1 year "
        "(2024/1359 Art. 12(4))"
    )


def transfer_form_timing(
    ctx: GatewayContext, ft: FormType, form: Mapping[str, Any], header: Header
) -> list[str]:
    """The transfer form's days (2025/2055 Arts 24-26), for a basis whose pack has them:
    a warning, since the text gives no consequence for a form sent outside them."""
    if ft.name != "transfer-notice" or form.get("kind") != "arrangements":
        return []
    rules = transfer_form_rules(header.legal_basis or ctx.config.deadlines.legal_basis)
    if rules is None:
        return []
    arrival = form.get("arrivalDate")
    transfer_type = form.get("transferType")
    return timing_warnings(
        rules,
        transfer_type if isinstance(transfer_type, str) else None,
        date.fromisoformat(arrival) if isinstance(arrival, str) else None,
        header.created.astimezone(ctx.local.zone).date(),
        frozenset(c for c in form.get("circumstance", []) if isinstance(c, str)),
    )
