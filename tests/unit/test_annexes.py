"""What the standard forms of Implementing Regulation (EU) 2025/2055 ask of a case under
Regulation (EU) 2024/1351: Annex II (take charge, Arts 7-8), Annex III (take back, Arts 12-14);
the pack's `forms` section, and nothing asked of a basis without one."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.core.annexes import (
    AnnexError,
    check_group_reply,
    check_non_confirmation,
    check_opening_or_reply,
    form_rules,
    parse_forms,
    reconsider_any_ground,
)
from gateway.core.deadlines import load_rule_set, pack_data
from gateway.core.policy import Reason, Rejection, check_form_rules
from gateway.core.rule_docs import pack_json
from gateway.examples import load_example

AMMR = "2024-1351"


def _request(criterion: str) -> dict[str, Any]:
    form = load_example("take-charge-request.json")
    form["criterion"] = criterion
    return form


@pytest.mark.parametrize(
    ("criterion", "allowed"),
    [
        ("Art. 25", True),
        ("Art. 25(1)", True),  # a paragraph of a listed article
        ("Art. 29(1)", True),
        ("Art. 29(2)", True),
        ("Art. 29(3)", False),  # Annex II lists 29(1), 29(2) and 29(4) only
        ("Art. 33(2)", True),
        ("Art. 35(2)", True),
        ("Art. 35(1)", False),
        ("Art. 19(2)", False),  # the proposal's visa criterion
        ("Art. 12(2)", False),  # Dublin III's
    ],
)
def test_2025_2055_art7_1_a_take_charge_request_rests_on_a_provision_of_annex_ii(
    criterion: str, allowed: bool
) -> None:
    form = _request(criterion)
    if allowed:
        check_opening_or_reply(AMMR, True, "take-charge-request", form)
    else:
        with pytest.raises(Rejection, match=r"2025/2055 Art\. 7\(1\)") as refused:
            check_opening_or_reply(AMMR, True, "take-charge-request", form)
        assert refused.value.reason is Reason.CONVERSATION_RULE
        assert "Art. 29(2)" in refused.value.text and "criterion" in refused.value.text


def test_2024_1351_art84_2_a_case_keeping_the_604_criteria_is_not_held_to_annex_ii() -> None:
    """Its form is Annex XII (not read: images only), its criteria Dublin III's."""
    check_opening_or_reply(AMMR, False, "take-charge-request", _request("Art. 12(2)"))


@pytest.mark.parametrize("basis", ["604-2013", "com-2020-610"])
def test_bases_without_a_forms_section_check_no_provision(basis: str) -> None:
    assert form_rules(basis) is None
    check_opening_or_reply(basis, True, "take-charge-request", _request("Art. 19(2)"))


def test_2025_2055_art8_an_acceptance_names_the_applicable_provision() -> None:
    reply = load_example("take-charge-reply-acceptance.json")
    check_opening_or_reply(AMMR, True, "take-charge-reply", reply)
    reply["acceptance"]["legalBasis"] = "Art. 19(2)"
    with pytest.raises(Rejection, match=r"Art\. 8.*acceptance\.legalBasis"):
        check_opening_or_reply(AMMR, True, "take-charge-reply", reply)
    # a refusal names no provision of its own
    refusal = load_example("take-charge-reply-refusal.json")
    check_opening_or_reply(AMMR, True, "take-charge-reply", refusal)


def test_2025_2055_art12_1_a_take_back_notification_names_its_situation() -> None:
    notification = load_example("take-back-notification.json")
    check_opening_or_reply(AMMR, True, "take-back-notification", notification)
    del notification["provision"]
    with pytest.raises(Rejection, match=r"2025/2055 Art\. 12\(1\).*art-36-1-b"):
        check_opening_or_reply(AMMR, True, "take-back-notification", notification)


def test_2025_2055_art12_2_to_5_a_notification_carries_its_eurodac_hit_but_under_12_6() -> None:
    notification = load_example("take-back-notification.json")
    del notification["eurodacHit"]
    with pytest.raises(Rejection, match=r"Art\. 12\(2\)-\(5\) and Art\. 13.*eurodacHit"):
        check_opening_or_reply(AMMR, True, "take-back-notification", notification)
    notification["provision"] = "ir-art-13"
    with pytest.raises(Rejection, match="eurodacHit"):
        check_opening_or_reply(AMMR, True, "take-back-notification", notification)
    notification["provision"] = "ir-art-12-6"  # no fingerprints could be compared
    notification["minorWithoutBiometrics"] = True
    check_opening_or_reply(AMMR, True, "take-back-notification", notification)


def test_the_proposal_asks_a_eurodac_hit_of_every_notification() -> None:
    notification = load_example("take-back-notification.json")
    del notification["provision"]
    check_opening_or_reply("com-2020-610", True, "take-back-notification", notification)
    del notification["eurodacHit"]
    with pytest.raises(Rejection, match="com-2020-610"):
        check_opening_or_reply("com-2020-610", True, "take-back-notification", notification)


@pytest.mark.parametrize(
    ("provision", "refused"),
    [
        ("art-36-1-b", False),
        ("art-36-1-c", True),
        ("art-38-4", True),
        ("art-38-5", True),
        ("ir-art-12-6", True),
        ("ir-art-13", True),
        (None, False),  # a notification of a case opened before provisions were named
    ],
)
def test_2025_2055_annex_iii_an_incorrect_eurodac_indication_answers_only_36_1_b(
    provision: str | None, refused: bool
) -> None:
    notification = load_example("take-back-notification.json")
    notification.pop("provision")
    if provision is not None:
        notification["provision"] = provision
    if refused:
        with pytest.raises(Rejection, match=r"Art\. 36\(1\)\(b\).*Annex III, Part II"):
            check_non_confirmation(AMMR, "incorrect-eurodac-indication", notification)
    else:
        check_non_confirmation(AMMR, "incorrect-eurodac-indication", notification)
    check_non_confirmation(AMMR, "art-37-2", notification)  # other grounds are not limited
    check_non_confirmation(AMMR, "incorrect-eurodac-indication", None)  # erased: not checked
    check_non_confirmation("com-2020-610", "incorrect-eurodac-indication", notification)


def test_2025_2055_art15_4_a_notification_under_12_6_is_reconsidered_whatever_its_ground() -> None:
    notification = load_example("take-back-notification.json")
    assert not reconsider_any_ground(AMMR, notification)
    assert reconsider_any_ground(AMMR, {**notification, "provision": "ir-art-12-6"})
    assert reconsider_any_ground(AMMR, {**notification, "minorWithoutBiometrics": True})
    assert not reconsider_any_ground("com-2020-610", {**notification, "provision": "ir-art-12-6"})


@pytest.mark.parametrize("form_name", ["take-charge-request.json", "take-back-notification.json"])
def test_2025_2055_art7_1_and_12_1_persons_covered_counts_the_family_in_the_form(
    form_name: str,
) -> None:
    form = load_example(form_name)
    check_form_rules(form_name.removesuffix(".json"), form)
    member = {"relationship": "child", "identity": {"surname": ["EXAMPLE-DOE"]}}
    form["coveredFamilyMember"] = [member]
    with pytest.raises(Rejection, match="personsCovered") as refused:
        check_form_rules(form_name.removesuffix(".json"), form)
    assert refused.value.reason is Reason.SCHEMA_INVALID
    form["personsCovered"] = 2
    check_form_rules(form_name.removesuffix(".json"), form)
    del form["personsCovered"]  # optional: nothing to count against
    check_form_rules(form_name.removesuffix(".json"), form)


def test_the_forms_section_is_verified_data_with_its_source() -> None:
    rules = form_rules(AMMR)
    assert rules is not None and rules.verified
    assert "Annex II" in rules.criteria_article and "Annex III" in rules.provisions_article
    assert "2025/2055" in rules.source
    assert set(rules.provisions) == {
        "art-36-1-b",
        "art-36-1-c",
        "art-38-4",
        "art-38-5",
        "ir-art-12-6",
        "ir-art-13",
    }
    assert [c for c, p in rules.provisions.items() if not p.hit] == ["ir-art-12-6"]
    shown = pack_json(load_rule_set(AMMR))["forms"]
    assert shown["take_charge"]["criteria"]["Art. 29(2)"] == "valid visa"
    assert pack_json(load_rule_set("604-2013"))["forms"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(extra=1), "keys"),
        (lambda s: s["take_charge"]["criteria"].update({"Article 99": "x"}), "Art. N"),
        (lambda s: s["take_back"]["provisions"]["art-36-1-b"].update(hit="yes"), "true or false"),
        (lambda s: s.pop("verified"), "verified"),
        (lambda s: s["take_back"].pop("hit_article"), "hit_article"),
    ],
)
def test_a_forms_section_that_cannot_be_read_says_where(change: Any, message: str) -> None:
    section = copy.deepcopy(pack_data(AMMR)["forms"])
    change(section)
    with pytest.raises(AnnexError, match=message):
        parse_forms(json.loads(json.dumps(section)), "test.json: forms")


@pytest.mark.parametrize(
    ("purpose", "allowed"),
    [
        ("examining-application", True),
        ("determining-responsibility", False),
        ("other-obligation", False),
        ("return-decision", False),
    ],
)
def test_2025_2055_annex_vii_the_grounds_of_an_application_are_asked_only_to_examine_it(
    purpose: str, allowed: bool
) -> None:
    form = load_example("info-request.json")
    form.update(purpose=purpose, item=["identity", "grounds-of-claim"], writtenConsent=True)
    if allowed:
        check_opening_or_reply(AMMR, True, "info-request", form)
    else:
        with pytest.raises(Rejection, match=r"grounds-of-claim.*Annex VII"):
            check_opening_or_reply(AMMR, True, "info-request", form)
    form["item"] = ["identity"]
    check_opening_or_reply(AMMR, True, "info-request", form)
    check_opening_or_reply("com-2020-610", True, "info-request", {**form, "purpose": purpose})


@pytest.mark.parametrize(
    ("persons", "announced", "allowed"),
    [
        (None, 25, True),  # the whole group
        (10, 25, True),
        (24, 25, True),
        (9, 25, False),  # below the minimum of a group transfer, Art. 26(1)(a)
        (25, 25, False),  # not a reduced number
        (30, 25, False),
        (12, None, True),  # the announcement was erased: only the minimum is checked
        (9, None, False),
    ],
)
def test_2025_2055_annex_vi_a_group_is_confirmed_for_no_fewer_than_10(
    persons: int | None, announced: int | None, allowed: bool
) -> None:
    reply: dict[str, Any] = {"confirmation": {}}
    if persons is not None:
        reply["confirmation"]["persons"] = persons
    notice = None if announced is None else {"persons": announced}
    if allowed:
        check_group_reply(AMMR, notice, reply)
    else:
        with pytest.raises(Rejection, match=r"at least 10.*Annex VI, Part II"):
            check_group_reply(AMMR, notice, reply)
    check_group_reply(AMMR, notice, {"alternative": {"reasons": "x"}})
