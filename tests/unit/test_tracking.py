"""Which limits a message opens and closes, read from the case's rule pack (the proposal's
here: Art. 29-35 and 40 of COM(2020) 610)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.core.conversations import Conversation, State
from gateway.core.deadlines import DeadlineError
from gateway.core.tracking import (
    Opening,
    changes_for,
    opens_rule,
    parse_tracking,
    transfer_openings,
)

CASE = Conversation("BE-1-1", "take-charge", "BE-DU", "NL-DU", State.REQUESTED)


def changes(message: str, form: dict[str, Any], state: State, **kw: Any) -> Any:
    after = Conversation("BE-1-1", "take-charge", "BE-DU", "NL-DU", state)
    sender, receiver = kw.pop("sender", ("BE-DU", "NL-DU"))
    return changes_for(
        message,
        kw.pop("outcome", None),
        form,
        urgent=kw.pop("urgent", False),
        sender=sender,
        receiver=receiver,
        after=after,
        late=kw.pop("late", False),
    )


@pytest.mark.parametrize(
    ("form", "urgent", "rule", "article"),
    [
        ({"detained": True, "eurodacHit": {"x": 1}}, True, "take_charge_reply_detained", "34(3)"),
        (
            {"urgency": {"requestedReplyDate": "2026-03-20"}},
            True,
            "take_charge_reply_urgent",
            "30(7)",
        ),
        ({"visHit": {"x": 1}}, False, "take_charge_reply_hit", "30(1)"),
        ({"detained": False}, False, "take_charge_reply", "30(1)"),
    ],
)
def test_a_take_charge_request_opens_the_reply_limit_its_form_calls_for(
    form: dict[str, Any], urgent: bool, rule: str, article: str
) -> None:
    """Art. 30(1), 30(7), 34(3): detention first, then urgency, then a Eurodac/VIS hit."""
    got = changes("take-charge-request", form, State.REQUESTED, urgent=urgent)
    requested = date(2026, 3, 20) if rule.endswith("urgent") else None
    assert got.open == (Opening(rule, "NL-DU", requested),), article


def test_art32_35_an_acceptance_closes_the_reply_and_opens_the_transfer_limits() -> None:
    got = changes(
        "take-charge-reply", {}, State.ACCEPTED, outcome="acceptance", sender=("NL-DU", "BE-DU")
    )
    assert got.open == (Opening("transfer_decision", "BE-DU"), Opening("transfer", "BE-DU"))
    assert "take_charge_reply" in got.close and got.close_reason == "met"
    refused = changes(
        "take-charge-reply", {}, State.REFUSED, outcome="refusal", sender=("NL-DU", "BE-DU")
    )
    assert refused.open == () and "take_charge_reply" in refused.close


def test_art35_2_an_absconding_notice_closes_the_transfer_limits_without_a_shift() -> None:
    got = changes("transfer-notice", {}, State.ABSCONDED, outcome="absconded")
    assert got.close == {"transfer", "transfer_detained", "transfer_imprisoned"}
    assert got.close_reason == "absconding-notified"
    assert got.suspends, "« dans le délai restant »: the limit is suspended, not ended"
    assert changes("transfer-notice", {}, State.POSTPONED, outcome="postponed").close == set()


def test_art35_2_the_person_available_again_resumes_the_suspended_transfer_limits() -> None:
    got = changes("transfer-notice", {}, State.AVAILABLE_AGAIN, outcome="available-again")
    assert got.open == (
        Opening("transfer", "BE-DU", resumes=True),
        Opening("transfer_imprisoned", "BE-DU", resumes=True),
    )
    assert got.close == set()


def test_2024_1351_art46_2_available_again_gets_3_months_only_if_fewer_are_left() -> None:
    after = Conversation(
        "BE-1-1", "take-charge", "BE-DU", "NL-DU", State.AVAILABLE_AGAIN, "2024-1351"
    )
    got = changes_for(
        "transfer-notice",
        "available-again",
        {},
        urgent=False,
        sender="BE-DU",
        receiver="NL-DU",
        after=after,
        late=False,
    )
    assert got.open == (
        Opening("transfer_available_again", "BE-DU", replaces_if_later="transfer_absconded"),
    )
    assert not got.suspends and got.close == set()


def test_a_late_reply_and_a_reply_that_overtook_its_request_change_nothing() -> None:
    assert changes("take-charge-reply", {}, State.DEEMED_ACCEPTED, late=True).open == ()
    assert changes("take-charge-request", {}, State.ACCEPTED).open == ()


def test_deemed_acceptance_opens_the_packs_transfer_limits() -> None:
    assert [o.rule for o in transfer_openings(CASE)] == ["transfer_decision", "transfer"]


def test_a_tracking_section_naming_a_limit_the_pack_lacks_is_refused() -> None:
    data = json.loads((Path(__file__).parents[1] / "data" / "fictional-basis.json").read_text())
    with pytest.raises(DeadlineError, match="take_charge_reply"):
        parse_tracking(data["tracking"], "fictional-2030", frozenset({"transfer"}))
    parsed = parse_tracking(
        data["tracking"], "fictional-2030", frozenset({"transfer", "take_charge_reply"})
    )
    assert parsed.after_acceptance == (("transfer", "requesting"),)


@pytest.mark.parametrize(
    ("form", "asks"),
    [
        ({"transferType": "supervised-departure"}, True),  # received at a location, 25(1)(b)
        ({"transferType": "supervised-departure", "appearBefore": "an authority"}, False),
        ({"transferType": "escort"}, True),  # 26(1)(b)
        ({"transferType": "escort", "groupTransferReference": "BE09G12"}, False),  # 26(1)(a)
        ({"transferType": "escort", "designatedLocation": True}, False),  # no consultation
        ({"transferType": "voluntary", "appearBefore": "an authority"}, False),
        ({}, False),
    ],
)
def test_2025_2055_art25_5_26_3_which_transfer_forms_ask_the_receiving_states_answer(
    form: dict[str, Any], asks: bool
) -> None:
    form = {"kind": "arrangements", **form}
    rule = "transfer_form_answer"
    assert opens_rule("2024-1351", "transfer-notice", "arrangements", form, rule) is asks
    assert not opens_rule("com-2020-610", "transfer-notice", "arrangements", form, rule)
    after = Conversation(
        "BE01-1", "take-charge", "BE-DU", "NL-DU", State.TRANSFER_ARRANGED, "2024-1351"
    )
    opened = changes_for(
        "transfer-notice",
        "arrangements",
        form,
        urgent=False,
        sender="BE-DU",
        receiver="NL-DU",
        after=after,
        late=False,
    ).open
    answer = [o for o in opened if o.rule == "transfer_form_answer"]
    assert [o.acting for o in answer] == (["NL-DU"] if asks else [])


def test_a_when_with_an_unknown_key_is_refused() -> None:
    data = json.loads((Path(__file__).parents[1] / "data" / "fictional-basis.json").read_text())
    data["tracking"]["messages"].append(
        {
            "message": "take-charge-request",
            "open": [
                {"acting": "receiver", "first_of": [{"rule": "transfer", "when": {"fild": 1}}]}
            ],
        }
    )
    with pytest.raises(DeadlineError, match="when"):
        parse_tracking(
            data["tracking"], "fictional-2030", frozenset({"transfer", "take_charge_reply"})
        )
