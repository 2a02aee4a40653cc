"""Every standard form of the catalogue (COM(2020) 610 Art. 25-40; Regulation 1560/2003
annexes): its examples validate and round-trip, its invalid example is refused naming the
field, and forms generated from its XSD round-trip JSON -> XML -> JSON unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from gateway.core.forms import ALL_TYPES, FORM_TYPES, FormType
from gateway.core.policy import Header
from gateway.examples import EXAMPLES, EXAMPLES_DAY, load_example
from gateway.xml.envelope import build_transmission, validate_envelope
from gateway.xml.forms import FormError, form_from_element, form_to_element
from gateway.xml.schemas import SCHEMA_DIR
from tests.forms_strategies import form_data

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
INVALID = json.loads((EXAMPLES / "invalid" / "expected.json").read_text())


def type_of(path: Path) -> FormType:
    names = [n for n in ALL_TYPES if path.stem == n or path.stem.startswith(n + "-")]
    return ALL_TYPES[max(names, key=len)]


def transmission(ft: FormType, form: etree._Element) -> etree._Element:
    header = Header(str(uuid.uuid4()), "BE1X-1", ft.name, "BE-DU", "NL-DU", datetime.now(UTC))
    return build_transmission(header, form)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_round_trips_and_validates_in_a_transmission(path: Path) -> None:
    ft = type_of(path)
    data = json.loads(path.read_text())
    el = form_to_element(ft, data)
    assert form_from_element(el) == (ft, data)
    validate_envelope(transmission(ft, el))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_an_example_moved_to_another_day_keeps_its_intervals_and_validates(path: Path) -> None:
    """The demo and the integration tests use the examples moved to their own day, so that
    an application stays registered a week before the request (2024/1351 Art. 39(1)) on
    any day they run: every date moves by the same days, nothing else changes."""
    today = EXAMPLES_DAY + timedelta(days=400)
    original, moved = load_example(path.name), load_example(path.name, today=today)
    dates = [(a, b) for a, b in zip(_leaves(original), _leaves(moved), strict=True) if a != b]
    assert all(
        date.fromisoformat(b) - date.fromisoformat(a) == timedelta(days=400) for a, b in dates
    )
    if '"20' in path.read_text():
        assert dates, "an example with dates has them moved"
    ft = type_of(path)
    el = form_to_element(ft, moved)
    assert form_from_element(el) == (ft, moved)
    validate_envelope(transmission(ft, el))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint (libxml2-utils)")
def test_every_example_validates_with_xmllint(tmp_path: Path) -> None:
    for path in EXAMPLE_FILES:
        ft = type_of(path)
        out = tmp_path / f"{path.stem}.xml"
        out.write_bytes(
            etree.tostring(transmission(ft, form_to_element(ft, json.loads(path.read_text()))))
        )
        done = subprocess.run(
            [
                "xmllint",
                "--noout",
                "--nonet",
                "--schema",
                str(SCHEMA_DIR / "envelope.xsd"),
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (path.name, done.stderr)


@pytest.mark.parametrize("name", sorted(INVALID), ids=lambda n: n.removesuffix(".json"))
def test_invalid_example_is_refused_naming_the_field(name: str) -> None:
    ft = ALL_TYPES[name.removesuffix(".json")]
    data = json.loads((EXAMPLES / "invalid" / name).read_text())
    with pytest.raises(FormError) as err:
        form_to_element(ft, data)
    assert err.value.field == INVALID[name], str(err.value)


def test_every_form_has_an_example_an_invalid_example_and_a_schema() -> None:
    covered = {type_of(p).name for p in EXAMPLE_FILES}
    assert covered == set(ALL_TYPES)
    assert {n.removesuffix(".json") for n in INVALID} == set(ALL_TYPES)
    for ft in ALL_TYPES.values():
        assert (SCHEMA_DIR / ft.schema_file).exists()


OUTCOMES = {
    "take-charge-reply": {"acceptance", "refusal"},
    "humanitarian-reply": {"acceptance", "refusal"},
    "take-back-confirmation": {"confirmation", "responsibilityCeased"},
    "info-reply": {"information", "refusal"},
    "dependants-reply": {"acceptance", "refusal"},
    "minor-family-reply": {"acceptance", "refusal"},
    "transfer-notice": {
        "decision-taken",
        "arrangements",
        "postponed",
        "absconded",
        "arrived",
        "failed-to-appear",
        "suspensive-effect",  # 2024/1351 Art. 43(3)
        "final-decision",  # 2024/1351 Art. 46(1)
        "imprisoned",  # 2024/1351 Art. 46(2)
        "available-again",  # 2024/1351 Art. 46(2) second subparagraph; proposal 35(2)
    },
    "responsibility-notice": {"responsibility-ceased", "transfer-time-limit-expired"},
    "transfer-reply": {"confirmation", "alternative"},  # 2025/2055 Art. 25(5), 26(3)
}


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_outcomes_the_conversation_reads_are_declared_by_the_schema(name: str) -> None:
    from gateway.xml.forms import _particles, _root_decl

    ft = FORM_TYPES[name]
    decl = _root_decl(ft)
    if ft.outcome == "choice":
        assert decl.type.content.model == "choice"
        got = {p.local_name for p in _particles(decl.type.content)}
    else:
        field = next(p for p in _particles(decl.type.content) if p.local_name == ft.outcome)
        got = set(field.type.enumeration)
    assert got == OUTCOMES[name]


@pytest.mark.parametrize("name", sorted(ALL_TYPES))
def test_generated_forms_round_trip(name: str) -> None:
    ft = ALL_TYPES[name]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(form_data(ft))
    def round_trip(data: dict[str, Any]) -> None:
        el = form_to_element(ft, data)
        assert form_from_element(etree.fromstring(etree.tostring(el)))[1] == data

    round_trip()


def _built_by_elements(ft: FormType, data: dict[str, Any]) -> etree._Element:
    from gateway.xml.forms import COMMON_NS, _build, _root_decl

    return _build(_root_decl(ft), data, None, {"f": ft.namespace, "c": COMMON_NS}, "", None)


@pytest.mark.parametrize("name", sorted(ALL_TYPES))
def test_the_markup_path_builds_the_element_builders_tree_for_every_form(name: str) -> None:
    """Issue 20: a form is written as markup and parsed (libxml2), not built one lxml call
    per element; what is signed must be the very tree the element builder made, byte for
    byte, including texts with markup characters, whitespace and characters outside ASCII."""
    from gateway.xml.forms import COMMON_NS, _from_markup

    ft = ALL_TYPES[name]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(form_data(ft))
    def same_tree(data: dict[str, Any]) -> None:
        fast = _from_markup(ft, data)
        slow = _built_by_elements(ft, data)
        if {etree.QName(e).namespace for e in slow.iter()} <= {ft.namespace, COMMON_NS}:
            assert fast is not None
            assert etree.tostring(fast) == etree.tostring(slow)
        else:  # a third namespace: lxml names its prefix, the element builder decides
            assert fast is None

    same_tree()


@pytest.mark.parametrize(
    "text", ["", "a\rb", "x\x00y", "tab\tand\nline", "<&>]]>'\"", "é\U0001f600\ufffd"]
)
def test_texts_the_markup_path_leaves_to_the_element_builder_come_out_the_same(text: str) -> None:
    """An empty text, a carriage return (a parser reads it as a line feed) and a character
    XML cannot carry go to the element builder, which decides as before (Art. 29 request)."""
    from gateway.xml.forms import _from_markup

    ft = ALL_TYPES["take-charge-request"]
    data = json.loads((EXAMPLES / "take-charge-request.json").read_text())
    data["applicant"]["surname"] = [text]
    fast = _from_markup(ft, data)
    if text in ("", "a\rb", "x\x00y"):
        assert fast is None
    else:
        assert fast is not None
        assert etree.tostring(fast) == etree.tostring(_built_by_elements(ft, data))
