"""The conversation of a case, as the law lets it unfold (COM(2020) 610 Art. 25-40).

Every (state, message) pair is checked against the table below, which restates the law
independently of the implementation: each allowed move names its article; everything else
must be refused with the conversation-rule reason."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from gateway.core.conversations import (
    TRANSFER_PHASE,
    Conversation,
    Side,
    State,
    Step,
    advance,
)
from gateway.core.policy import PriorMessage, Reason, Rejection

BE, NL, GR = "BE-DU", "NL-DU", "GR-DU"
REF = "BE1CASE-1"
S = State
REQUESTING, REQUESTED, EITHER = Side.REQUESTING, Side.REQUESTED, None

# (message type, outcome, states it is allowed in, who sends it, next state (None: same), article)
LAW: list[tuple[str, str | None, set[State], Side | None, State | None, str]] = [
    # a late reply after deemed acceptance is taken and flagged; the deemed acceptance stands
    ("take-charge-reply", "acceptance", {S.DEEMED_ACCEPTED}, REQUESTED, None, "art30_8"),
    ("take-charge-reply", "refusal", {S.DEEMED_ACCEPTED}, REQUESTED, None, "art30_8"),
    ("take-charge-reply", "acceptance", {S.REQUESTED}, REQUESTED, S.ACCEPTED, "art30_1"),
    ("take-charge-reply", "refusal", {S.REQUESTED}, REQUESTED, S.REFUSED, "art30_1"),
    ("transfer-information", None, set(TRANSFER_PHASE), REQUESTING, None, "art37_1"),
    ("security-information", None, set(TRANSFER_PHASE), REQUESTING, None, "art38"),
    ("health-certificate", None, set(TRANSFER_PHASE), REQUESTING, None, "art39_1"),
    (
        "transfer-notice",
        "decision-taken",
        {S.ACCEPTED, S.DEEMED_ACCEPTED, S.CONFIRMED, S.DEEMED_CONFIRMED},
        REQUESTING,
        S.TRANSFER_DECIDED,
        "art32_1",
    ),
    (
        "transfer-notice",
        "arrangements",
        set(TRANSFER_PHASE),
        REQUESTING,
        S.TRANSFER_ARRANGED,
        "art35_1",
    ),
    (
        "transfer-notice",
        "postponed",
        {S.TRANSFER_DECIDED, S.TRANSFER_ARRANGED},
        REQUESTING,
        S.POSTPONED,
        "art35_4",
    ),
    (
        "transfer-notice",
        "absconded",
        set(TRANSFER_PHASE) - {S.ABSCONDED},
        REQUESTING,
        S.ABSCONDED,
        "art35_2",
    ),
    (
        "transfer-notice",
        "arrived",
        {S.TRANSFER_DECIDED, S.TRANSFER_ARRANGED},
        REQUESTED,
        S.TRANSFERRED,
        "art35_1",
    ),
    (
        "transfer-notice",
        "failed-to-appear",
        {S.TRANSFER_DECIDED, S.TRANSFER_ARRANGED},
        REQUESTED,
        S.NOT_APPEARED,
        "art35_1",
    ),
    (
        "responsibility-notice",
        "responsibility-ceased",
        set(TRANSFER_PHASE) | {S.NOT_APPEARED, S.APPEAL_PENDING},
        EITHER,
        S.RESPONSIBILITY_SHIFTED,
        "art27",
    ),
    (
        "responsibility-notice",
        "transfer-time-limit-expired",
        set(TRANSFER_PHASE) | {S.NOT_APPEARED, S.APPEAL_PENDING},
        EITHER,
        S.RESPONSIBILITY_SHIFTED,
        "art35_2",
    ),
    # 27(1): a requesting State that became responsible while its request was pending
    # informs the requested State; the case ends there, with no deemed acceptance (defect 6)
    (
        "responsibility-notice",
        "responsibility-ceased",
        {S.REQUESTED},
        REQUESTING,
        S.RESPONSIBILITY_SHIFTED,
        "art27_1",
    ),
    # 35(1): the transfer limit runs from the final decision on an appeal with suspensive
    # effect; meanwhile the case waits (issue 16, defect 1)
    (
        "transfer-notice",
        "suspensive-effect",
        set(TRANSFER_PHASE) - {S.ABSCONDED},
        REQUESTING,
        S.APPEAL_PENDING,
        "art35_1",
    ),
    (
        "transfer-notice",
        "final-decision",
        {S.APPEAL_PENDING},
        REQUESTING,
        S.TRANSFER_DECIDED,
        "art35_1",
    ),
    ("rectification-notice", None, set(State), EITHER, None, "art40_8"),
    ("erasure-notice", None, set(State), EITHER, None, "art40_8"),
]
# Messages of other kinds of case, never allowed in a take charge case.
FOREIGN = [
    ("take-back-confirmation", "confirmation"),
    ("take-back-confirmation", "responsibilityCeased"),
    ("info-reply", "information"),
    ("humanitarian-reply", "acceptance"),
]
MESSAGES = sorted({(m, o) for m, o, *_ in LAW} | set(FOREIGN), key=str)
REQUEST = PriorMessage("req-1", "out", "take-charge-request", NL, REF, answered=False)


def conversation(state: State, kind: str = "take-charge") -> Conversation:
    return Conversation(REF, kind, BE, NL, state)


def step(message_type: str, outcome: str | None, side: Side) -> Step:
    sender, receiver = (BE, NL) if side is REQUESTING else (NL, BE)
    target = None
    if message_type.endswith("-reply") or message_type.endswith("-confirmation"):
        request_type = {"take-back-confirmation": "take-back-notification"}.get(
            message_type, message_type.replace("-reply", "-request")
        )
        # seen from the replier's gateway: the request came in from the requesting State
        target = PriorMessage("req-1", "in", request_type, BE, REF, answered=False)
    elif message_type in ("rectification-notice", "erasure-notice"):
        # data the notice's sender itself sent to the receiver, seen from the sender's gateway
        target = PriorMessage("data-1", "out", "transfer-information", receiver, REF, False)
    return Step(message_type, sender, receiver, REF, outcome, target)


def expected(state: State, message_type: str, outcome: str | None, side: Side) -> State | None:
    for m, o, states, who, to, _ in LAW:
        if (m, o) == (message_type, outcome) and state in states and who in (None, side):
            return to or state
    return None


CASES = [
    pytest.param(state, m, o, side, id=f"{state.value}-{m}-{o}-{side.value}")
    for state, (m, o), side in itertools.product(State, MESSAGES, Side)
]


@pytest.mark.parametrize(("state", "message_type", "outcome", "side"), CASES)
def test_every_state_and_message_pair_follows_the_law(
    state: State, message_type: str, outcome: str | None, side: Side
) -> None:
    want = expected(state, message_type, outcome, side)
    if want is None:
        with pytest.raises(Rejection) as err:
            advance(conversation(state), step(message_type, outcome, side))
        assert err.value.reason is Reason.CONVERSATION_RULE, err.value.text
        assert "Art." in err.value.text or "case" in err.value.text
    else:
        assert advance(conversation(state), step(message_type, outcome, side)).state is want


@pytest.mark.parametrize(
    ("message_type", "opened"),
    [
        ("take-charge-request", S.REQUESTED),
        ("humanitarian-request", S.REQUESTED),
        ("take-back-notification", S.NOTIFIED),
        ("info-request", S.REQUESTED),
        ("dependants-request", S.REQUESTED),
        ("minor-family-request", S.REQUESTED),
    ],
)
def test_art20_requests_and_notifications_open_a_case(message_type: str, opened: State) -> None:
    conv = advance(None, Step(message_type, BE, NL, REF))
    assert (conv.state, conv.requesting, conv.requested) == (opened, BE, NL)
    assert conv.legal_basis == "COM(2020) 610"
    with pytest.raises(Rejection, match="already exists"):
        advance(conv, Step(message_type, BE, NL, REF))


def test_art31_3_confirmation_answers_only_a_take_back_notification() -> None:
    tb = conversation(S.NOTIFIED, "take-back")
    target = PriorMessage("n-1", "in", "take-back-notification", BE, REF, answered=False)
    ok = advance(tb, Step("take-back-confirmation", NL, BE, REF, "confirmation", target))
    assert ok.state is S.CONFIRMED
    ceased = advance(
        tb, Step("take-back-confirmation", NL, BE, REF, "responsibilityCeased", target)
    )
    assert ceased.state is S.CEASED
    with pytest.raises(Rejection):
        advance(
            conversation(S.REQUESTED),
            Step("take-back-confirmation", NL, BE, REF, "confirmation", target),
        )


def test_art30_8_silence_is_deemed_acceptance_and_a_late_reply_does_not_undo_it() -> None:
    from gateway.core.conversations import deem, is_late_reply

    deemed = deem(conversation(S.REQUESTED))
    assert deemed is not None and deemed.state is S.DEEMED_ACCEPTED
    assert deem(conversation(S.REFUSED)) is None
    target = PriorMessage("req-1", "in", "take-charge-request", BE, REF, answered=False)
    after = advance(deemed, Step("take-charge-reply", NL, BE, REF, "refusal", target))
    assert after.state is S.DEEMED_ACCEPTED
    assert is_late_reply(after, "take-charge-reply")
    assert not is_late_reply(conversation(S.ACCEPTED), "take-charge-reply")


def test_art31_4_silence_is_deemed_confirmation() -> None:
    from gateway.core.conversations import deem

    deemed = deem(conversation(S.NOTIFIED, "take-back"))
    assert deemed is not None and deemed.state is S.DEEMED_CONFIRMED


def test_art35_2_transfer_limit_shifts_responsibility_unless_absconding_was_notified() -> None:
    from gateway.core.conversations import shift_responsibility

    shifted = shift_responsibility(conversation(S.TRANSFER_DECIDED))
    assert shifted is not None and shifted.state is S.RESPONSIBILITY_SHIFTED
    assert shift_responsibility(conversation(S.ABSCONDED)) is None
    assert shift_responsibility(conversation(S.TRANSFERRED)) is None


def test_art30_a_reply_is_given_once() -> None:
    answered = PriorMessage("req-1", "in", "take-charge-request", BE, REF, answered=True)
    with pytest.raises(Rejection) as err:
        advance(
            conversation(S.REQUESTED),
            Step("take-charge-reply", NL, BE, REF, "acceptance", answered),
        )
    assert err.value.reason is Reason.ALREADY_ANSWERED


def test_art30_a_reply_must_answer_the_request_of_its_case() -> None:
    other_case = PriorMessage("req-9", "in", "take-charge-request", BE, "BE1OTHER", False)
    with pytest.raises(Rejection):
        advance(
            conversation(S.REQUESTED),
            Step("take-charge-reply", NL, BE, REF, "acceptance", other_case),
        )
    with pytest.raises(Rejection):
        advance(conversation(S.REQUESTED), Step("take-charge-reply", NL, BE, REF, "acceptance"))


def test_art30_replies_carry_the_reference_of_their_case() -> None:
    target = PriorMessage("req-1", "in", "take-charge-request", BE, REF, answered=False)
    with pytest.raises(Rejection) as err:
        advance(
            conversation(S.REQUESTED),
            Step("take-charge-reply", NL, BE, "BE1OTHER", "acceptance", target),
        )
    assert err.value.reason is Reason.REFERENCE_INVALID


def test_art40_8_erasure_notice_only_for_data_actually_sent_by_its_sender() -> None:
    received = PriorMessage("data-1", "in", "transfer-information", BE, REF, answered=False)
    # NL cannot ask for erasure of what BE sent it
    with pytest.raises(Rejection, match=r"40\(8\)"):
        advance(conversation(S.ACCEPTED), Step("erasure-notice", NL, BE, REF, None, received))
    # BE can, and so can NL for what NL sent
    sent_by_be_seen_at_nl = received
    assert (
        advance(
            conversation(S.ACCEPTED),
            Step("erasure-notice", BE, NL, REF, None, sent_by_be_seen_at_nl),
        ).state
        is S.ACCEPTED
    )


def test_art39_health_certificate_only_for_a_case_heading_to_transfer() -> None:
    for state in (S.REQUESTED, S.REFUSED, S.TRANSFERRED, S.RESPONSIBILITY_SHIFTED):
        with pytest.raises(Rejection, match=r"Art\. 39"):
            advance(conversation(state), Step("health-certificate", BE, NL, "BE7CASE-1"))
    assert advance(conversation(S.ACCEPTED), Step("health-certificate", BE, NL, "BE7CASE-1"))


def test_art40_information_case_admits_only_its_reply_and_data_notices() -> None:
    info = conversation(S.REQUESTED, "information")
    target = PriorMessage("req-1", "in", "info-request", BE, REF, answered=False)
    assert advance(info, Step("info-reply", NL, BE, REF, "information", target)).state is (
        S.ANSWERED
    )
    with pytest.raises(Rejection):
        advance(replace(info, state=S.ANSWERED), Step("transfer-information", BE, NL, "BE6X"))


def test_a_third_authority_has_no_place_in_a_case() -> None:
    with pytest.raises(Rejection, match="between"):
        advance(conversation(S.ACCEPTED), Step("transfer-information", GR, NL, "GR6X"))


def test_a_third_authority_is_answered_as_if_the_case_did_not_exist() -> None:
    """The refusal tells a third authority nothing about a case between two others."""
    step = Step("transfer-notice", GR, NL, REF, "arrangements")
    with pytest.raises(Rejection) as of_others:
        advance(conversation(S.ACCEPTED), step)
    with pytest.raises(Rejection) as of_nobody:
        advance(None, step)
    assert (of_others.value.reason, of_others.value.text) == (
        of_nobody.value.reason,
        of_nobody.value.text,
    )
    assert BE not in of_others.value.text and REF not in of_others.value.text


def test_a_message_of_another_pair_is_not_between_these_two() -> None:
    received_from_be = PriorMessage("req-1", "in", "take-charge-request", BE, REF, False)
    assert received_from_be.between(BE, NL) and received_from_be.between(NL, BE)
    assert not received_from_be.between(GR, NL)
    sent_to_be = PriorMessage("req-2", "out", "take-charge-request", BE, REF, False)
    assert sent_to_be.between(NL, BE) and not sent_to_be.between(NL, GR)


def test_a_follow_up_needs_an_open_case() -> None:
    with pytest.raises(Rejection, match="no case"):
        advance(None, Step("transfer-notice", BE, NL, REF, "decision-taken"))
