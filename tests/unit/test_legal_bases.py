"""The legal bases' rule packs, table-driven: one row per rule, each naming its article.

Regulation (EU) 2024/1351 counts by Art. 75 (a limit ending on a Saturday, Sunday or official
holiday of the acting State ends with the next working day); Regulation (EU) No 604/2013 by
Art. 42 (no roll-over). The expected days below are worked out by hand from the texts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.cli import main
from gateway.core.calendar import Period
from gateway.core.conversations import (
    Conversation,
    State,
    Step,
    advance,
    basis_label,
    check_reconsiderable,
    criteria_for,
    deem,
    kept_basis,
    message_rules,
    parse_message_rules,
    shift_responsibility,
)
from gateway.core.deadlines import (
    DeadlineError,
    available_rule_sets,
    load_rule_set,
    pack_data,
    parse_rule_set,
)
from gateway.core.official_days import official_holiday, state_code
from gateway.core.policy import PriorMessage, Rejection, check_urgency
from gateway.core.rule_docs import pack_markdown
from gateway.core.tracking import Opening, changes_for, request_limit, transfer_openings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "legal-bases"
START = datetime.fromisoformat("2026-07-01T10:00:00+02:00")  # a Wednesday in Amsterdam
AMS = ZoneInfo("Europe/Amsterdam")

AMMR = [
    ("take_charge_request", "Art. 39(1)", "2026-09-01"),
    ("take_charge_request_hit", "Art. 39(1)", "2026-08-03"),  # Sat 1 Aug -> Mon 3 Aug
    ("take_charge_request_detained", "Art. 45(1)", "2026-07-15"),
    ("take_charge_request_detained_later", "Art. 45(1)", "2026-07-08"),
    ("take_charge_reply", "Art. 40(1), 40(8)", "2026-08-03"),  # rolled over, Art. 75(c)
    ("take_charge_reply_hit", "Art. 40(2), 40(8)", "2026-07-15"),
    ("take_charge_reply_urgent", "Art. 40(7), 40(8)", "2026-07-15"),
    ("take_charge_reply_detained", "Art. 45(2)", "2026-07-08"),
    ("humanitarian_reply", "Art. 35(2)", "2026-09-01"),
    ("take_back_notification", "Art. 41(1)", "2026-07-15"),
    ("take_back_confirmation", "Art. 41(3)-(4)", "2026-07-15"),  # 2 weeks, not the proposal's 1
    ("transfer_decision", "Art. 42(1)", "2026-07-15"),  # 2 weeks, not the proposal's 1
    ("transfer", "Art. 46(1)-(2)", "2027-01-04"),  # 1 Jan holiday, then a weekend
    ("transfer_imprisoned", "Art. 46(2)", "2027-07-01"),
    ("transfer_absconded", "Art. 46(2)", "2029-07-02"),  # Sun 1 Jul 2029 -> Mon
    ("transfer_detained", "Art. 45(3)-(4)", "2026-08-05"),
    ("transfer_available_again", "Art. 46(2)", "2026-10-01"),
    ("info_reply", "Art. 51(5)", "2026-07-22"),
    ("reexamination_request", "2025/2055 Art. 9(2)", "2026-07-22"),
    ("reexamination_reply", "2025/2055 Art. 9(2)", "2026-07-15"),
    ("reconsideration_request", "2025/2055 Art. 15(3)-(4)", "2026-07-15"),
    ("reconsideration_reply", "2025/2055 Art. 15(3)-(4)", "2026-07-15"),
    ("transfer_form_answer", "2025/2055 Art. 25(5), 26(2)-(3)", "2026-07-06"),
    ("transfer_deemed_done", "2025/2055 Art. 24(4), 25(6)", "2026-07-08"),
]

DUBLIN_III = [
    ("take_charge_request", "Art. 21(1)", "2026-10-01"),
    ("take_charge_request_hit", "Art. 21(1)", "2026-09-01"),
    ("take_charge_request_detained", "Art. 28(3)", "2026-08-01"),  # a Saturday: no roll-over
    ("take_charge_reply", "Art. 22(1), 22(7)", "2026-09-01"),
    ("take_charge_reply_urgent", "Art. 22(6)-(7)", "2026-08-01"),
    ("take_charge_reply_detained", "Art. 28(3)", "2026-07-15"),
    ("take_back_request", "Art. 23(2)-(3)", "2026-10-01"),
    ("take_back_request_hit", "Art. 23(2)-(3)", "2026-09-01"),
    ("take_back_reply", "Art. 25(1)-(2)", "2026-08-01"),
    ("take_back_reply_hit", "Art. 25(1)-(2)", "2026-07-15"),
    ("take_back_request_detained", "Art. 28(3)", "2026-08-01"),  # a Saturday: no roll-over
    ("take_back_reply_detained", "Art. 28(3)", "2026-07-15"),
    ("humanitarian_reply", "Art. 17(2)", "2026-09-01"),
    ("transfer", "Art. 29(1)-(2)", "2027-01-01"),  # a holiday that counts (Art. 42(c))
    ("transfer_imprisoned", "Art. 29(2)", "2027-07-01"),
    ("transfer_absconded", "Art. 29(2)", "2028-01-01"),
    ("transfer_detained", "Art. 28(3)", "2026-08-12"),
    ("info_reply", "Art. 34(5)", "2026-08-05"),
    ("reexamination_request", "1560/2003 Art. 5(2)", "2026-07-22"),
    ("reexamination_reply", "1560/2003 Art. 5(2)", "2026-07-15"),
]


def test_three_legal_bases_are_packaged() -> None:
    assert available_rule_sets() == ["2024-1351", "604-2013", "com-2020-610"]


@pytest.mark.parametrize(("name", "article", "due"), AMMR)
def test_2024_1351_rule(name: str, article: str, due: str) -> None:
    rules = load_rule_set("2024-1351")
    assert rules.rule(name).article == article
    assert rules.deadline(name, START, AMS, state="NL").due_date == date.fromisoformat(due)


def test_2024_1351_has_exactly_the_rules_of_the_table() -> None:
    assert list(load_rule_set("2024-1351").rules) == [name for name, _, _ in AMMR]


@pytest.mark.parametrize(("name", "article", "due"), DUBLIN_III)
def test_604_2013_rule(name: str, article: str, due: str) -> None:
    rules = load_rule_set("604-2013")
    assert rules.rule(name).article == article
    assert rules.deadline(name, START, AMS).due_date == date.fromisoformat(due)
    # Art. 42: the acting State's holidays change nothing; the code is still checked.
    assert rules.deadline(name, START, AMS, state="NL").due_date == date.fromisoformat(due)


def test_604_2013_has_exactly_the_rules_of_the_table() -> None:
    assert list(load_rule_set("604-2013").rules) == [name for name, _, _ in DUBLIN_III]


def test_art75_rolls_over_on_the_acting_states_own_holidays() -> None:
    """Art. 75(c) 2024/1351: 2 weeks from Mon 18 May 2026 end on Mon 1 June, Whit Monday of
    the Orthodox calendar, an official holiday in Greece (so the limit ends on 2 June) but a
    working day in the Netherlands (whose Whit Monday was 25 May)."""
    rules = load_rule_set("2024-1351")
    start = datetime.fromisoformat("2026-05-18T09:00:00+02:00")
    athens, amsterdam = ZoneInfo("Europe/Athens"), ZoneInfo("Europe/Amsterdam")
    assert official_holiday("GR", date(2026, 6, 1)) is not None
    assert official_holiday("NL", date(2026, 6, 1)) is None
    greek = rules.deadline("take_charge_reply_hit", start, athens, state="EL")
    dutch = rules.deadline("take_charge_reply_hit", start, amsterdam, state="NL")
    assert (greek.due_date, dutch.due_date) == (date(2026, 6, 2), date(2026, 6, 1))


def test_art75_a_month_ending_on_a_missing_date_takes_the_months_last_day_then_rolls() -> None:
    """Art. 75(b)-(c): 1 month from 31 January 2026 ends on 28 February, a Saturday, so on
    Monday 2 March."""
    start = datetime.fromisoformat("2026-01-31T10:00:00+01:00")
    deadline = load_rule_set("2024-1351").deadline("take_charge_reply", start, AMS, state="NL")
    assert deadline.due_date == date(2026, 3, 2)


def test_art40_8_urgent_reply_deemed_at_two_weeks_with_the_requested_date_shown_as_due() -> None:
    rules = load_rule_set("2024-1351")
    deadline = rules.deadline(
        "take_charge_reply_urgent", START, AMS, state="NL", requested=date(2026, 7, 10)
    )
    assert (deadline.requested_date, deadline.due_date) == (date(2026, 7, 10), date(2026, 7, 15))
    with pytest.raises(DeadlineError, match="less than P1W"):
        rules.deadline(
            "take_charge_reply_urgent", START, AMS, state="NL", requested=date(2026, 7, 7)
        )


def test_art75_needs_the_acting_state() -> None:
    with pytest.raises(DeadlineError, match=r"Art\. 75"):
        load_rule_set("2024-1351").deadline("transfer", START, AMS)


def test_state_codes_take_iso_and_the_eus_el() -> None:
    assert state_code("el") == state_code("GR") == "GR"
    with pytest.raises(ValueError, match="unknown State 'UK'"):
        state_code("UK")


def test_values_not_verified_are_flagged_with_a_source() -> None:
    """1560/2003 was repealed by 2025/2055 from 12 June 2026: how its rules carry on for
    pending Dublin III cases is not verified, nor is the detained transfer period read only
    as quoted (V2). Every limit of 2024/1351 and 2025/2055 was read in the official text."""
    unverified = {
        basis: sorted(n for n, r in load_rule_set(basis).rules.items() if not r.verified)
        for basis in ("2024-1351", "604-2013")
    }
    assert unverified == {
        "2024-1351": [],
        "604-2013": [
            "reexamination_reply",
            "reexamination_request",
            "transfer_absconded",
            "transfer_imprisoned",
        ],
    }
    for basis in available_rule_sets():
        assert all(r.source for r in load_rule_set(basis).rules.values())


def test_the_cut_over_date_is_data_shown_as_disputed() -> None:
    applies = load_rule_set("2024-1351").applies_from
    assert applies is not None
    assert applies.date == date(2026, 6, 12) and not applies.verified
    assert "1 July 2026" in applies.source


def test_consequences_only_where_the_text_gives_one() -> None:
    """Re-examination and reconsideration (2025/2055 Art. 9(2), 15(3)-(4); 1560/2003 Art.
    5(2)) end the procedure with no deemed acceptance; the information reply (Art. 51(5))
    has no deemed reply; a missed detained transfer releases the person (Art. 45(4))."""
    for basis in ("2024-1351", "604-2013"):
        rules = load_rule_set(basis).rules
        for name in ("reexamination_request", "info_reply"):
            assert rules[name].consequence is None, (basis, name)
        # The procedure ends, the refusal standing: never a deemed acceptance.
        assert rules["reexamination_reply"].consequence == "procedure-ended"
        assert rules["transfer_detained"].consequence == "person-released"
    assert load_rule_set("com-2020-610").rules["transfer_detained"].consequence == (
        "person-released"
    )


def test_cli_deadline_prints_basis_article_and_verified(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["deadline", "take_charge_reply_urgent", "--from", "2026-07-01T10:00:00+02:00"]
    args += ["--tz", "Europe/Amsterdam", "--state", "NL", "--requested", "2026-07-10"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == {
        "rule": "take_charge_reply_urgent",
        "legal_basis": "2024-1351",
        "article": "Art. 40(7), 40(8)",
        "due_date": "2026-07-15",
        "expires_at": "2026-07-15T22:00:00Z",
        "verified": True,
        "requested_date": "2026-07-10",
    }
    assert main(["deadline", "transfer", *args[2:8], "--legal-basis", "604-2013"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["due_date"], out["article"]) == ("2027-01-01", "Art. 29(1)-(2)")


@pytest.mark.parametrize("basis", ["2024-1351", "604-2013", "com-2020-610"])
def test_the_docs_page_of_each_basis_is_the_packs_table(basis: str) -> None:
    """docs/legal-bases/<basis>.md is `gateway rules show --legal-basis <basis>`; regenerate
    with `gateway rules show --legal-basis B > docs/legal-bases/B.md`."""
    assert (DOCS / f"{basis}.md").read_text("utf-8") == pack_markdown(load_rule_set(basis))


def test_rules_show_json_carries_every_rule_with_its_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "show", "--legal-basis", "604-2013", "--format", "json"]) == 0
    pack = json.loads(capsys.readouterr().out)
    assert pack["counting"]["article"] == "Art. 42" and not pack["counting"]["roll_over"]
    flags = {r["name"]: r["verified"] for r in pack["rules"]}
    assert flags["transfer_detained"] is True  # Art. 28(3), read in the official text
    assert flags["transfer_absconded"] is False  # its notice rests on repealed 1560/2003


def test_a_new_legal_basis_is_a_data_file_and_its_tests_no_code_change() -> None:
    """A fictional basis read from tests/data: its conversation runs (request, deemed
    acceptance by its own article, transfer decision; a message it does not list is refused
    naming the basis) and its limits count by its own counting rule, with no code knowing
    its name."""
    data = json.loads((Path(__file__).parents[1] / "data" / "fictional-basis.json").read_text())
    limits = parse_rule_set(data, "fictional-basis.json", "fictional-2030")
    rules = parse_message_rules(data["conversations"], "fictional-2030")
    request = Step("take-charge-request", "BE-DU", "NL-DU", "BE-1-2030")
    case = advance(None, request, "fictional-2030", rules)
    assert (case.kind, case.state, case.legal_basis) == (
        "take-charge",
        "requested",
        "fictional-2030",
    )
    silent = next(s for s in rules.silence if s.kind == case.kind and s.state is case.state)
    assert (silent.to, silent.article) == ("deemed-accepted", "Art. F2(3)")
    decided = advance(
        replace(case, state=silent.to),
        Step("transfer-notice", "BE-DU", "NL-DU", "BE-1-2030", outcome="decision-taken"),
        rules=rules,
    )
    assert decided.state == "transfer-decided"
    with pytest.raises(Rejection, match="opens no case under fictional-2030"):
        advance(None, Step("info-request", "BE-DU", "NL-DU", "BE-3-2030"), "fictional-2030", rules)
    # 10 days from Wed 1 July 2026 end on Sat 11 July: its Art. F9 rolls over to Monday.
    reply = limits.deadline("take_charge_reply", START, AMS, state="NL")
    assert reply.due_date == date(2026, 7, 13)
    assert not limits.rule("transfer").verified


def _ammr_case(state: str, kind: str = "take-charge") -> Conversation:
    return Conversation("BE-1-2026", kind, "BE-DU", "NL-DU", State(state), "2024-1351")


def test_2024_1351_take_charge_request_left_unanswered_is_deemed_accepted_art40_8() -> None:
    case = advance(None, Step("take-charge-request", "BE-DU", "NL-DU", "BE-1-2026"), "2024-1351")
    assert (case.state, case.legal_basis) == ("requested", "2024-1351")
    opened = changes_for(
        "take-charge-request",
        None,
        {},
        urgent=False,
        sender="BE-DU",
        receiver="NL-DU",
        after=case,
        late=False,
    )
    assert opened.open == (Opening("take_charge_reply", "NL-DU"),)
    deemed = deem(case)
    assert deemed is not None and deemed.state == "deemed-accepted"
    assert [o.rule for o in transfer_openings(deemed)] == ["transfer_decision", "transfer"]
    silence = message_rules("2024-1351").silence[0]
    assert silence.article == "Art. 40(8), 45(2)"


def test_2024_1351_a_dependants_consultation_opens_no_transfer_art34() -> None:
    """LEGAL-BASES defect 10: Art. 34 asks the State to verify before it makes a take charge
    request under Art. 39; an accepted consultation is not a transfer basis."""
    with pytest.raises(Rejection, match="has no place in a dependants case"):
        advance(
            _ammr_case("accepted", "dependants"),
            Step("transfer-notice", "BE-DU", "NL-DU", "BE-1-2026", outcome="decision-taken"),
        )


def test_2024_1351_absconding_opens_the_three_year_limit_and_its_expiry_shifts_art46_2() -> None:
    decided = _ammr_case("transfer-decided")
    after = advance(
        decided, Step("transfer-notice", "BE-DU", "NL-DU", "BE-1-2026", outcome="absconded")
    )
    got = changes_for(
        "transfer-notice",
        "absconded",
        {},
        urgent=False,
        sender="BE-DU",
        receiver="NL-DU",
        after=after,
        late=False,
    )
    assert got.open == (Opening("transfer_absconded", "BE-DU"),)
    assert "transfer" in got.close and got.close_reason == "absconding-notified"
    shifted = shift_responsibility(after)
    assert shifted is not None and shifted.state == "responsibility-shifted"


def test_the_proposal_keeps_its_own_absconding_rule_art35_2() -> None:
    """Under the proposal an absconding notice made in time keeps responsibility from
    shifting (35(2) second subparagraph, as the gateway has applied it)."""
    absconded = Conversation("BE-1-2026", "take-charge", "BE-DU", "NL-DU", State.ABSCONDED)
    assert shift_responsibility(absconded) is None


def test_604_2013_art23_25_a_take_back_request_is_answered_or_deemed_accepted() -> None:
    """Dublin III, for cases opened before the cut-over: a take back request (Art. 23-24)
    opens a case; the reply is due in 1 month, 2 weeks on Eurodac data (Art. 25(1)); silence
    is acceptance (Art. 25(2)) and opens the 6-month transfer limit (Art. 29(1)); a refusal
    ends the request. A take back notification is not a Dublin III form."""
    request = Step("take-back-request", "BE-DU", "NL-DU", "BE2-2013")
    case = advance(None, request, "604-2013")
    assert (case.kind, case.state, case.legal_basis) == ("take-back", "requested", "604-2013")
    opened = changes_for(
        "take-back-request",
        None,
        {"eurodacHit": ["NL1ABC12345"]},
        urgent=False,
        sender="BE-DU",
        receiver="NL-DU",
        after=case,
        late=False,
    )
    assert opened.open == (Opening("take_back_reply_hit", "NL-DU"),)
    assert load_rule_set("604-2013").rule("take_back_reply_hit").period == Period(2, "weeks")
    deemed = deem(case)
    assert deemed is not None and deemed.state == "deemed-accepted"
    assert [o.rule for o in transfer_openings(deemed)] == ["transfer"]
    asked = PriorMessage("m-1", "in", "take-back-request", "BE-DU", "BE2-2013", False)
    reply = Step("take-back-reply", "NL-DU", "BE-DU", "BE2-2013", "refusal", asked)
    assert advance(case, reply).state == "refused"
    with pytest.raises(Rejection, match="opens no case under 604-2013"):
        advance(None, Step("take-back-notification", "BE-DU", "NL-DU", "BE2-1"), "604-2013")
    with pytest.raises(Rejection):
        advance(None, Step("take-back-request", "BE-DU", "NL-DU", "BE2-1"), "2024-1351")


def test_604_2013_art29_2_absconding_extends_the_transfer_limit_to_18_months() -> None:
    """Art. 29(2): absconding extends the transfer limit to at most 18 months from where the
    6 months ran from (the notice before the 6 months end: 1560/2003 Art. 9(2), unverified
    for pending cases since its repeal)."""
    accepted = Conversation("BE-1-2013", "take-charge", "BE-DU", "NL-DU", State.ACCEPTED,
                            basis_label("604-2013"))  # fmt: skip
    away = advance(
        accepted, Step("transfer-notice", "BE-DU", "NL-DU", "BE-1-2013", outcome="absconded")
    )
    got = changes_for(
        "transfer-notice",
        "absconded",
        {},
        urgent=False,
        sender="BE-DU",
        receiver="NL-DU",
        after=away,
        late=False,
    )
    assert got.close == {"transfer"} and got.close_reason == "extended"
    assert got.open == (Opening("transfer_absconded", "BE-DU", runs_as="transfer"),)
    assert load_rule_set("604-2013").rule("transfer_absconded").period == Period(18, "months")


def test_doctor_names_each_difference_in_how_a_peer_computes_time_limits() -> None:
    """Issue 16, item 8: both gateways of a case must count the same days; doctor warns
    when a peer's /v1/health states other rule pack versions or another holidays package."""
    from gateway.core.conversations import computing_versions
    from gateway.doctor import computing_differences

    ours = computing_versions()
    assert computing_differences({"computing": ours}) == []
    older = {"rules": dict(ours["rules"], **{"2024-1351": "0"}), "holidays": "0.50"}
    assert computing_differences({"computing": older}) == [
        f"rule pack 2024-1351: ours {ours['rules']['2024-1351']}, the peer's 0",
        f"holidays package: ours {ours['holidays']}, the peer's 0.50",
    ]
    assert computing_differences({}) == [
        "the peer does not say which rule packs and holidays it computes with"
    ]


def test_2024_1359_art12_2_derogating_periods_are_data_of_the_pack() -> None:
    rules = load_rule_set("2024-1351")
    assert rules.derogation is not None and rules.derogation.verified
    periods = {n: str(p) for n, p in rules.derogation.periods.items()}
    assert set(periods) == {
        "take_charge_request",
        "take_charge_reply",
        "take_back_notification",
        "take_back_confirmation",
        "transfer",
    }
    derogated = rules.derogated("transfer")
    assert derogated.article == "Art. 46(1)-(2) as derogated by 2024/1359 Art. 12(2)"
    assert rules.derogated("info_reply") == rules.rule("info_reply"), "unchanged elsewhere"
    start = datetime(2026, 9, 1, 10, 0, tzinfo=AMS)
    normal = rules.deadline("take_charge_reply", start, AMS, state="NL")
    crisis = rules.deadline("take_charge_reply", start, AMS, state="NL", derogating=True)
    assert (normal.due_date.isoformat(), crisis.due_date.isoformat()) == (
        "2026-10-01",
        "2026-11-02",  # 1 November is a Sunday: Art. 75 rolls it to Monday
    )
    assert load_rule_set("com-2020-610").derogation is None


def test_a_derogation_naming_a_rule_the_pack_lacks_is_refused() -> None:
    import json as json_module

    from gateway.core.deadlines import DeadlineError, pack_data, parse_rule_set

    data = json_module.loads(json_module.dumps(pack_data("2024-1351")))
    data["derogations"]["periods"]["no_such_rule"] = "P1M"
    with pytest.raises(DeadlineError, match="no_such_rule"):
        parse_rule_set(data, "test.json")


def test_a_case_keeps_the_basis_it_was_opened_under_issue_16_item_2() -> None:
    """Art. 84(2) of 2024/1351 keeps older cases on their own rules: a message naming another
    basis than its case's is refused, at submission and at reception alike."""
    assert kept_basis(None, "604-2013") == "604-2013"  # opens a case: the basis it names
    dublin_iii = Conversation(
        "BE-1-2025", "take-charge", "BE-DU", "NL-DU", State.ACCEPTED, basis_label("604-2013")
    )
    assert kept_basis(dublin_iii, "604-2013") == "604-2013"
    with pytest.raises(Rejection, match="runs under 604-2013") as refused:
        kept_basis(dublin_iii, "2024-1351")
    assert refused.value.reason == "legal-basis-mismatch"


def test_a_pack_read_by_a_caller_is_its_own_copy() -> None:
    first = pack_data("2024-1351")
    first["rules"].clear()
    assert pack_data("2024-1351")["rules"], "the packaged rules are unchanged"


@pytest.mark.parametrize(
    ("basis", "article"),
    [("2024-1351", "Art. 46(2) second subparagraph"), ("com-2020-610", "Art. 35(2)")],
)
def test_only_the_transferring_state_says_an_absconded_person_is_available_again(
    basis: str, article: str
) -> None:
    """2024/1351 Art. 46(2) second subparagraph; proposal Art. 35(2) (« à nouveau à la
    disposition des autorités »): from an absconded case, by the transferring side only."""
    away = Conversation("BE-1-2026", "take-charge", "BE-DU", "NL-DU", State.ABSCONDED,
                        basis_label(basis))  # fmt: skip
    again = Step("transfer-notice", "BE-DU", "NL-DU", "BE-1-2026", outcome="available-again")
    assert advance(away, again).state == "available-again"
    assert any(
        r.article.startswith(article)
        for r in message_rules(basis).by_type["transfer-notice"]
        if r.outcome == "available-again"
    )
    with pytest.raises(Rejection):
        advance(away, replace(again, sender="NL-DU", receiver="BE-DU"))
    with pytest.raises(Rejection):
        advance(replace(away, state=State.ACCEPTED), again)


@pytest.mark.parametrize(
    ("basis", "kind", "article"),
    [
        ("2024-1351", "take-charge", "2025/2055 Art. 9(2)"),
        ("604-2013", "take-charge", "1560/2003 Art. 5(2)"),
        ("604-2013", "take-back", "1560/2003 Art. 5(2)"),
    ],
)
def test_re_examination_of_a_refusal_ends_without_deemed_acceptance(
    basis: str, kind: str, article: str
) -> None:
    """A refused request may be re-examined at the requesting State's request; silence ends
    the procedure with the refusal standing, never a deemed acceptance."""
    refused = Conversation("BE-1-2026", kind, "BE-DU", "NL-DU", State.REFUSED, basis_label(basis))
    asked = advance(refused, Step("reexamination-request", "BE-DU", "NL-DU", "BE-1-2026"))
    assert asked.state == "reexamination-requested"
    ended = deem(asked)
    assert ended is not None and ended.state == "refused"
    silence = next(s for s in message_rules(basis).silence if s.state == asked.state)
    assert silence.article == article
    with pytest.raises(Rejection):  # only the requesting State asks
        advance(refused, Step("reexamination-request", "NL-DU", "BE-DU", "BE-1-2026"))


def test_2025_2055_art15_4_an_unanswered_reconsideration_leaves_the_non_confirmation() -> None:
    """No deemed confirmation: silence ends the reconsideration with responsibility ceased."""
    ceased = Conversation("BE-2-2026", "take-back", "BE-DU", "NL-DU", State.CEASED, "2024-1351")
    asked = advance(ceased, Step("reconsideration-request", "BE-DU", "NL-DU", "BE-2-2026"))
    assert asked.state == "reconsideration-requested"
    ended = deem(asked)
    assert ended is not None and ended.state == "responsibility-ceased"
    rules = load_rule_set("2024-1351").rules
    assert rules["reconsideration_reply"].consequence == "procedure-ended"
    with pytest.raises(Rejection):  # a take charge case has no reconsideration
        advance(
            replace(ceased, kind="take-charge"),
            Step("reconsideration-request", "BE-DU", "NL-DU", "BE-2-2026"),
        )


def test_2024_1351_art84_2_earlier_applications_keep_the_604_2013_criteria() -> None:
    """Issue 16, item 2: an AMMR case for an application registered before 2024/1351 applied
    records `criteria: 604-2013`; 604-2013 serves only such applications, and naming it for
    a later one is refused saying why (the cut-over date, shown as not verified)."""
    assert criteria_for("2024-1351", date(2026, 5, 20)) == "604-2013"
    assert criteria_for("2024-1351", date(2026, 6, 12)) is None
    assert criteria_for("2024-1351", None) is None
    assert criteria_for("604-2013", date(2026, 6, 11)) is None
    with pytest.raises(Rejection, match="registered on 2026-06-12, on or after 2026-06-12") as no:
        criteria_for("604-2013", date(2026, 6, 12))
    assert no.value.reason == "legal-basis-mismatch" and "not verified" in no.value.text
    assert criteria_for("com-2020-610", date(2020, 1, 1)) is None


def test_an_urgent_request_names_its_requested_reply_date_defect_4() -> None:
    """2024/1351 Art. 39(2) (proposal 29(2), 604/2013 21(2)): an urgent request states the
    reasons and the period within which a reply is requested; the flag and the form agree."""
    urgency = {"urgency": {"reasons": "vulnerable", "requestedReplyDate": "2026-07-10"}}
    check_urgency("take-charge-request", True, urgency)
    check_urgency("take-charge-request", False, {})
    with pytest.raises(Rejection, match="requestedReplyDate") as no_date:
        check_urgency("take-charge-request", True, {"urgency": {"reasons": "vulnerable"}})
    assert no_date.value.reason == "urgency-incomplete"
    with pytest.raises(Rejection, match="sent as urgent"):
        check_urgency("take-charge-request", False, urgency)
    check_urgency("take-charge-reply", True, {})  # a reply to an urgent request
    grounds = load_rule_set("2024-1351").rule("take_charge_reply_urgent").requested_grounds
    assert grounds == {"refusal-of-entry", "return-decision"}
    with pytest.raises(Rejection, match=r"Art\. 39\(2\)"):
        check_urgency("take-charge-request", True, urgency, grounds, "Art. 39(2)")
    grounded = {"urgency": urgency["urgency"] | {"ground": "return-decision"}}
    check_urgency("take-charge-request", True, grounded, grounds, "Art. 39(2)")
    assert load_rule_set("604-2013").rule("take_charge_reply_urgent").requested_grounds is None


REGISTERED = {"application": {"date": "2026-07-01", "registrationDate": "2026-07-02"}}


@pytest.mark.parametrize(
    ("facts", "chosen"),
    [
        ({}, ("take_charge_request", "2026-07-02")),  # Art. 39(1): from registration
        (
            {"hitReceived": "2026-07-10", "hitCategory": "eurodac-illegal-stay"},
            ("take_charge_request_hit", "2026-07-10"),  # 39(1), second subparagraph
        ),
        ({"hitReceived": "2026-07-10"}, ("take_charge_request_hit", "2026-07-10")),
        (
            {"hitReceived": "2026-07-10", "hitCategory": "eurodac-other"},
            ("take_charge_request", "2026-07-02"),  # not a hit that 39(1) names
        ),
        ({"detained": True}, ("take_charge_request_detained", "2026-07-02")),  # 45(1)
        (
            {"detained": True, "detentionDate": "2026-07-20"},
            ("take_charge_request_detained_later", "2026-07-20"),  # 45(1), second subparagraph
        ),
        ({"unaccompaniedMinor": True}, None),  # 39(1), fourth subparagraph: any time
        ({"unaccompaniedMinor": True, "hitReceived": "2026-07-10"}, None),
    ],
)
def test_2024_1351_art39_1_and_45_1_the_requesting_states_own_limit_by_the_forms_facts(
    facts: dict[str, object], chosen: tuple[str, str] | None
) -> None:
    assert request_limit(load_rule_set("2024-1351"), REGISTERED | facts) == chosen


def test_604_2013_art21_1_counts_the_request_limit_from_lodging_and_knows_no_waiver() -> None:
    rules = load_rule_set("604-2013")
    assert request_limit(rules, REGISTERED) == ("take_charge_request", "2026-07-01")
    assert request_limit(rules, REGISTERED | {"unaccompaniedMinor": True}) == (
        "take_charge_request",
        "2026-07-01",
    )
    crossing = {"hitReceived": "2026-07-10", "hitCategory": "eurodac-irregular-crossing"}
    assert request_limit(rules, REGISTERED | crossing) == ("take_charge_request_hit", "2026-07-10")
    vis = {"hitReceived": "2026-07-10", "hitCategory": "vis"}  # 21(1) names Eurodac only
    assert request_limit(rules, REGISTERED | vis) == ("take_charge_request", "2026-07-01")


@pytest.mark.parametrize(
    ("facts", "chosen"),
    [
        ({}, ("take_back_request", "2026-07-01")),  # Art. 23(3): 3 months from lodging
        ({"hitReceived": "2026-07-10"}, ("take_back_request_hit", "2026-07-10")),  # 23(2)
        ({"detained": True}, ("take_back_request_detained", "2026-07-01")),  # 28(3)
    ],
)
def test_604_2013_art23_28_3_the_take_back_request_limit_by_the_forms_facts(
    facts: dict[str, object], chosen: tuple[str, str]
) -> None:
    rules = load_rule_set("604-2013")
    assert request_limit(rules, REGISTERED | facts, "take_back_request") == chosen
    assert request_limit(load_rule_set("2024-1351"), REGISTERED, "take_back_request") is None


def test_2025_2055_art5_2_an_unaccompanied_minor_gives_the_reference_its_priority_mark() -> None:
    scheme = load_rule_set("2024-1351").references
    assert scheme.has_priority("take-charge-request", {"unaccompaniedMinor": True}, asked=False)
    assert not scheme.has_priority("take-charge-request", {"unaccompaniedMinor": False}, False)


@pytest.mark.parametrize(
    ("cessation", "any_ground", "refused"),
    [
        ("art-37-2", False, False),
        ("art-37-4", False, False),
        ("art-37-5", False, False),
        ("art-37-1", False, True),
        ("art-37-3", False, True),
        ("incorrect-eurodac-indication", False, True),
        ("art-37-1", True, False),  # 2025/2055 Art. 15(4): a notification under Art. 12(6)
        (None, False, False),  # a ground given only as text is not checked
    ],
)
def test_2025_2055_art15_3_which_non_confirmations_may_be_reconsidered(
    cessation: str | None, any_ground: bool, refused: bool
) -> None:
    if refused:
        with pytest.raises(Rejection, match=r"2025/2055 Art\. 15\(3\)-\(4\)"):
            check_reconsiderable("2024-1351", cessation, any_ground)
    else:
        check_reconsiderable("2024-1351", cessation, any_ground)
    check_reconsiderable("604-2013", cessation, any_ground)  # no such rule in Dublin III
