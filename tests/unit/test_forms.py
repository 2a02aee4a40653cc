"""Standard forms: the JSON a case system submits maps to schema-valid XML and back without
loss (Art. 29 take charge request, Art. 30 reply)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.core.forms import FORM_TYPES, form_type
from gateway.core.policy import Header, Reason, Rejection
from gateway.examples import EXAMPLES
from gateway.xml.envelope import (
    AttachmentFile,
    build_transmission,
    carried_file,
    read_attachments,
    read_carried_files,
)
from gateway.xml.forms import FormError, form_from_element, form_json_schema, form_to_element
from gateway.xml.schemas import ENVELOPE_NS, SCHEMA_DIR

TCR = form_type("take-charge-request")
REPLY = form_type("take-charge-reply")
HEADER = Header(
    "6f1d2c0e-0000-4000-8000-000000000001",
    "BE01F-ATT1",
    "take-charge-request",
    "BE-DU",
    "NL-DU",
    datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
)


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def field_of(ft: Any, data: dict[str, Any]) -> str | None:
    with pytest.raises(FormError) as err:
        form_to_element(ft, data)
    return err.value.field


@pytest.mark.parametrize(
    ("ft", "name"),
    [
        (TCR, "take-charge-request.json"),
        (REPLY, "take-charge-reply-acceptance.json"),
        (REPLY, "take-charge-reply-refusal.json"),
    ],
)
def test_examples_round_trip_losslessly(ft: Any, name: str) -> None:
    data = example(name)
    el = form_to_element(ft, data)
    got_type, got = form_from_element(el)
    assert got_type == ft
    assert got == data
    again = form_to_element(ft, got)
    assert etree.tostring(again, method="c14n") == etree.tostring(el, method="c14n")


def test_art29_take_charge_request_requires_applicant_identity() -> None:
    data = example("take-charge-request.json")
    del data["applicant"]
    assert field_of(TCR, data) == "/applicant"
    data = example("take-charge-request.json")
    del data["applicant"]["surname"]
    assert field_of(TCR, data) == "/applicant/surname"


def test_art29_take_charge_request_requires_the_criterion_invoked() -> None:
    data = example("take-charge-request.json")
    del data["criterion"]
    assert field_of(TCR, data) == "/criterion"
    data["criterion"] = "because"
    assert field_of(TCR, data) == "/criterion"


def test_art30_refusal_states_its_reasons() -> None:
    data = example("take-charge-reply-refusal.json")
    del data["refusal"]["reasons"]
    assert field_of(REPLY, data) == "/refusal/reasons"
    data["refusal"]["reasons"] = ""
    assert field_of(REPLY, data) == "/refusal/reasons"


def test_art30_reply_is_acceptance_or_refusal_not_both_nor_neither() -> None:
    both = example("take-charge-reply-acceptance.json") | example("take-charge-reply-refusal.json")
    assert field_of(REPLY, both) is not None
    assert field_of(REPLY, {}) is None


def test_unknown_key_is_named() -> None:
    data = example("take-charge-request.json")
    data["applicant"]["shoeSize"] = "42"
    assert field_of(TCR, data) == "/applicant/shoeSize"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("applicant", "surname"), "DOE"),
        (("detained",), "yes"),
        (("attachment", 0, "size"), "12"),
        (("applicant",), ["x"]),
    ],
)
def test_wrong_json_types_are_named(path: tuple[Any, ...], value: Any) -> None:
    data = example("take-charge-request.json")
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert field_of(TCR, data) == "/" + "/".join(str(p) for p in path)


def test_control_characters_are_refused_not_crashed_on() -> None:
    data = example("take-charge-request.json")
    data["additionalInformation"] = "bell\x07 and nul\x00"
    assert field_of(TCR, data) == "/additionalInformation"


def test_xml_order_follows_the_schema_whatever_the_json_order() -> None:
    data = example("take-charge-request.json")
    reversed_data = dict(reversed(list(data.items())))
    a = form_to_element(TCR, data)
    b = form_to_element(TCR, reversed_data)
    assert etree.tostring(a, method="c14n") == etree.tostring(b, method="c14n")


def test_schemas_load_without_doctype() -> None:
    for ft in FORM_TYPES.values():
        raw = (SCHEMA_DIR / ft.schema_file).read_bytes()
        assert b"<!DOCTYPE" not in raw
    assert b"<!DOCTYPE" not in (SCHEMA_DIR / "common.xsd").read_bytes()


def test_json_schema_is_derived_from_the_xsd() -> None:
    schema = form_json_schema(TCR)
    assert set(schema["required"]) == {"applicant", "criterion"}
    assert schema["properties"]["applicant"]["properties"]["surname"]["type"] == "array"
    assert schema["properties"]["detained"] == {"type": "boolean"}
    reply = form_json_schema(REPLY)
    assert reply["oneOf"] == [{"required": ["acceptance"]}, {"required": ["refusal"]}]


names = st.from_regex(r"[A-Z][a-z]{0,20}( [A-Z][a-z]{0,10})?", fullmatch=True)
dates = st.dates().map(lambda d: d.isoformat())
country = st.from_regex(r"[A-Z]{3}", fullmatch=True)
text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60)
identity = st.fixed_dictionaries(
    {"surname": st.lists(names, min_size=1, max_size=5)},
    optional={
        "forename": st.lists(names, min_size=1, max_size=5),
        "nameAtBirth": names,
        "alias": st.lists(names, min_size=1, max_size=3),
        "dateOfBirth": dates,
        "placeOfBirth": st.fixed_dictionaries({"country": country}, optional={"place": names}),
        "sex": st.sampled_from(["female", "male", "other", "unknown"]),
        "nationality": st.lists(country, min_size=1, max_size=5),
    },
)
requests = st.fixed_dictionaries(
    {
        "applicant": identity,
        "criterion": st.from_regex(r"Art\. [1-9][0-9]?\([1-9]\)", fullmatch=True),
    },
    optional={
        "detained": st.booleans(),
        "urgency": st.fixed_dictionaries({"reasons": text}, optional={"requestedReplyDate": dates}),
        "evidence": st.lists(
            st.fixed_dictionaries(
                {"kind": st.sampled_from(["proof", "circumstantial"]), "description": text}
            ),
            min_size=1,
            max_size=3,
        ),
        "familyMember": st.lists(
            st.fixed_dictionaries(
                {"relationship": names, "identity": identity},
                optional={"writtenConsent": st.booleans()},
            ),
            min_size=1,
            max_size=2,
        ),
        "additionalInformation": text,
        "attachment": st.lists(
            st.fixed_dictionaries(
                {
                    "fileName": st.from_regex(r"[a-z][a-z0-9\-]{0,20}\.pdf", fullmatch=True),
                    "mediaType": st.just("application/pdf"),
                    "sha256": st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
                    "size": st.integers(min_value=1, max_value=10**9),
                }
            ),
            min_size=1,
            max_size=2,
        ),
    },
)


@settings(max_examples=60, deadline=None)
@given(requests)
def test_art29_any_valid_take_charge_request_round_trips(data: dict[str, Any]) -> None:
    el = form_to_element(TCR, data)
    assert form_from_element(el)[1] == data
    # and survives serialisation, as it does on the wire
    parsed = etree.fromstring(etree.tostring(el))
    assert form_from_element(parsed)[1] == data


@settings(max_examples=30, deadline=None)
@given(
    contents=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    wrap=st.sampled_from([0, 64, 76]),
)
def test_art29_attachments_read_for_checking_are_the_files_carried(
    contents: list[bytes], wrap: int
) -> None:
    """Art. 29 evidence: the receiver checks each attachment by name, media type, size and
    SHA-256 without keeping the decoded files (read_carried_files); what it reads is what
    decoding the files whole gives, whitespace-wrapped base64 included."""
    files = [AttachmentFile(f"f{i}.pdf", "application/pdf", c) for i, c in enumerate(contents)]
    root = build_transmission(
        HEADER, form_to_element(TCR, example("take-charge-request.json")), files
    )
    if wrap:
        for content in root.iter(f"{{{ENVELOPE_NS}}}Content"):
            text = content.text or ""
            content.text = "\n".join(text[i : i + wrap] for i in range(0, len(text), wrap))
    assert read_carried_files(root) == [carried_file(f) for f in read_attachments(root)]
    assert [f.content for f in read_attachments(root)] == contents


def test_an_attachment_that_is_not_base64_is_refused_when_checked() -> None:
    files = [AttachmentFile("scan.pdf", "application/pdf", b"%PDF")]
    root = build_transmission(
        HEADER, form_to_element(TCR, example("take-charge-request.json")), files
    )
    next(root.iter(f"{{{ENVELOPE_NS}}}Content")).text = "not base64 é"
    with pytest.raises(Rejection) as err:
        read_carried_files(root)
    assert err.value.reason is Reason.ATTACHMENT_INVALID
