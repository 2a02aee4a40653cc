"""Whether a validly signed acknowledgement of receipt says only what its signer can know.

A valid signature proves who speaks, not that what they say is true. The receipt time in an
acknowledgement starts the legal time limits on both sides (COM(2020) 610 Art. 30(1), 65;
2025/2055 Art. 1(3): the proof of delivery proves the date and time of receipt), and the
receiver is the party those limits bind. A receiver that could sign any receipt time could
move its own reply limit years ahead, or into the past so that the sender records deemed
acceptance at once. So the sender accepts a receipt time only between the transmission's
creation and its own clock, each widened by the clock skew it tolerates, and only an
acknowledgement addressed to itself, with a reason code it knows. Pure decision; the
delivery worker acts on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.core.policy import Reason

__all__ = ["AckRefusal", "Refusal", "refusal"]

_KNOWN_REASONS = frozenset(r.value for r in Reason)
_STATUSES = frozenset({"accepted", "rejected"})


class AckRefusal(StrEnum):
    """Why a validly signed acknowledgement is refused (a metric label and register reason)."""

    RECEIPT_IN_FUTURE = "receipt-time-in-future"
    RECEIPT_BEFORE_CREATION = "receipt-time-before-creation"
    WRONG_RECEIVER = "wrong-receiver"
    UNKNOWN_STATUS = "unknown-status"
    UNKNOWN_REASON = "unknown-reason-code"


@dataclass(frozen=True)
class Refusal:
    reason: AckRefusal
    text: str
    """Names times and codes only: an acknowledgement carries no personal data."""


def refusal(
    *,
    receipt_time: datetime,
    receiver: str | None,
    status: str,
    reason_code: str | None,
    created: datetime,
    now: datetime,
    max_skew: timedelta,
    local: str,
) -> Refusal | None:
    """None if the acknowledgement of our transmission created at `created` may be recorded
    at `now`; else why not. Accepted: created - max_skew <= receipt_time <= now + max_skew,
    addressed to `local`, status accepted or rejected, and a reason code (if any) that is
    one of ours."""
    if receiver != local:
        return Refusal(
            AckRefusal.WRONG_RECEIVER,
            f"the acknowledgement is addressed to {receiver or 'no receiver'}, not {local}",
        )
    if status not in _STATUSES:
        return Refusal(AckRefusal.UNKNOWN_STATUS, "the acknowledgement's status is unknown")
    if reason_code is not None and reason_code not in _KNOWN_REASONS:
        return Refusal(
            AckRefusal.UNKNOWN_REASON,
            f"reason code {reason_code[:64]!r} is not one of the network's reason codes",
        )
    if status == "rejected" and reason_code is None:
        return Refusal(AckRefusal.UNKNOWN_REASON, "a negative acknowledgement without a reason")
    skew = int(max_skew.total_seconds())
    if receipt_time > now + max_skew:
        return Refusal(
            AckRefusal.RECEIPT_IN_FUTURE,
            f"receipt time {receipt_time.isoformat()} is more than {skew} s after our clock "
            f"({now.isoformat()})",
        )
    if receipt_time < created - max_skew:
        return Refusal(
            AckRefusal.RECEIPT_BEFORE_CREATION,
            f"receipt time {receipt_time.isoformat()} is more than {skew} s before the "
            f"transmission was created ({created.isoformat()})",
        )
    return None
