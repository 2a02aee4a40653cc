"""Hypothesis strategies that generate valid case-system JSON for any form, read from the
form's XSD: the tests then cover every form without a hand-written generator per form."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from gateway.core.forms import FormType
from gateway.xml.forms import _particles, _root_decl, _scalar_kind

# XML 1.0 carries neither control characters, surrogates nor U+FFFE/U+FFFF.
_NO_CONTROL = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff")


def _text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_NO_CONTROL, min_size=max(1, min_size), max_size=min(max_size, 40))


def _simple(xsd_type: Any) -> st.SearchStrategy[Any]:
    kind = _scalar_kind(xsd_type)
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        low = 1 if "positive" in (xsd_type.name or "") else 0
        low = max(low, int(getattr(xsd_type, "min_value", None) or low))
        high = getattr(xsd_type, "max_value", None)
        return st.integers(min_value=low, max_value=int(high) if high is not None else 10**6)
    enumeration = getattr(xsd_type, "enumeration", None)
    if enumeration:
        return st.sampled_from(list(enumeration))
    primitive = xsd_type.primitive_type.local_name if hasattr(xsd_type, "primitive_type") else ""
    if primitive == "date":
        return st.dates().map(lambda d: d.isoformat())
    if primitive == "time":
        return st.times().map(lambda t: t.replace(microsecond=0).isoformat())
    if primitive == "base64Binary":
        return st.binary(min_size=1, max_size=60).map(lambda b: base64.b64encode(b).decode())
    min_len = getattr(xsd_type, "min_length", None) or 1
    max_len = getattr(xsd_type, "max_length", None) or 40
    patterns = getattr(xsd_type, "patterns", None)
    regexps = list(patterns.regexps) if patterns else []
    if not regexps or any(r"\p{Cc}" in r for r in regexps):
        return _text(min_len, max_len)
    regex = regexps[0]
    return st.from_regex(regex, fullmatch=True).filter(lambda s: min_len <= len(s) <= max_len)


def _complex(decl: Any) -> st.SearchStrategy[dict[str, Any]]:
    group = decl.type.content
    if group.model == "choice":
        return st.one_of(
            [
                _member(child).map(lambda v, n=child.local_name: {n: v[0]})
                for child in _particles(group)
            ]
        )
    parts: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for particle in group:
        if hasattr(particle, "model"):  # a nested choice: pick one alternative
            alternatives = list(_particles(particle))
            parts[f"__choice_{id(particle)}"] = st.one_of(
                [_member(a).map(lambda v, n=a.local_name: {n: v[0]}) for a in alternatives]
            )
            continue
        target = parts if particle.min_occurs > 0 else optional
        target[particle.local_name] = _member(particle).map(lambda v: v[0])
    return st.fixed_dictionaries(parts, optional=optional).map(_flatten)


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key.startswith("__choice_"):
            out.update(value)
        else:
            out[key] = value
    return out


def _member(decl: Any) -> st.SearchStrategy[tuple[Any]]:
    """The JSON value of one element declaration (a list when it may repeat), in a 1-tuple."""
    one = _simple(decl.type) if decl.type.has_simple_content() else _complex(decl)
    if decl.max_occurs is None or decl.max_occurs > 1:
        return st.lists(one, min_size=max(1, decl.min_occurs), max_size=2).map(lambda v: (v,))
    return one.map(lambda v: (v,))


def form_data(ft: FormType) -> st.SearchStrategy[dict[str, Any]]:
    return _complex(_root_decl(ft))
