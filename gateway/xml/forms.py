"""JSON <-> XML for the standard forms, driven by the XSDs themselves so the two cannot drift.

Convention (the case systems' JSON shape):
- a JSON key is the XML element's local name (lowerCamelCase), a JSON object is an element
  with children;
- an element that may occur more than once is always a JSON array, even with one item;
- xs:boolean is true/false, integer types are JSON integers, everything else (dates included,
  as ISO 8601 text) is a string;
- XML child order follows the schema, whatever the JSON key order.

The walk below only builds elements; validity is then decided by the compiled XSD (lxml), and
its first error is reported with the JSON path of the element at fault."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import xmlschema
from lxml import etree

from gateway.core.forms import ALL_TYPES, FORM_TYPES, FormType, form_type_by_namespace
from gateway.xml.parser import parse_trusted
from gateway.xml.schemas import SCHEMA_DIR, compile_schema, envelope_schema
from gateway.xml.sealed import is_sealed, read_sealed
from gateway.xml.violations import Violation, all_violations

_INTEGER_TYPES = frozenset(
    {
        "integer",
        "nonNegativeInteger",
        "positiveInteger",
        "negativeInteger",
        "nonPositiveInteger",
        "long",
        "int",
        "short",
        "byte",
        "unsignedLong",
        "unsignedInt",
        "unsignedShort",
        "unsignedByte",
    }
)
_XS = "{http://www.w3.org/2001/XMLSchema}"
COMMON_NS = "urn:eu:dublin:forms:common:1"


class FormError(ValueError):
    """Form data that does not fit its schema. `field` is a JSON pointer ("/applicant/surname/0")
    or None when the whole form is at fault."""

    def __init__(
        self,
        field: str | None,
        message: str,
        line: int | None = None,
        problems: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{field or '/'}: {message}")
        self.field = field
        self.message = message
        self.line = line
        """Where the document being checked was read from a file: the line at fault."""
        self.problems = tuple(problems) or ((field or "/", message),)
        """Every problem found, (field, rule), the first being `field` and `message`."""


@cache
def _schemas(name: str) -> tuple[Any, etree.XMLSchema]:
    """(xmlschema model for the walk, compiled lxml validator) of one form's XSD."""
    file = ALL_TYPES[name].schema_file
    model = xmlschema.XMLSchema(str(SCHEMA_DIR / file), defuse="always")
    return model, compile_schema(file)


def compile_schemas() -> None:
    """Compile every form's schemas now (about a second for all of them), so that no request
    waits for a compilation: the first of each type used to take hundreds of milliseconds."""
    envelope_schema()
    for name in ALL_TYPES:
        _schemas(name)


def _root_decl(ft: FormType) -> Any:
    model, _ = _schemas(ft.name)
    return model.elements[ft.root]


def _particles(group: Any) -> Iterator[Any]:
    """Element declarations of a content model, in schema order (groups flattened)."""
    for particle in group:
        if hasattr(particle, "model"):
            yield from _particles(particle)
        else:
            yield particle


def _is_repeated(decl: Any) -> bool:
    return decl.max_occurs is None or decl.max_occurs > 1


# The schemas are compiled once per process (_schemas); what the walks derive from a
# declaration is derived once too (the XSD walk, not XML, was most of a form's build time).
@cache
def _scalar_kind(xsd_type: Any) -> str:
    t = xsd_type
    while t is not None:
        local = (t.name or "").removeprefix(_XS)
        if local in _INTEGER_TYPES:
            return "int"
        if local == "boolean":
            return "bool"
        if local in ("string", "date", "dateTime", "decimal", "anyURI", "token"):
            return "str"
        t = getattr(t, "base_type", None)
    return "str"


@cache
def _children(decl: Any) -> dict[str, Any]:
    """The child declarations by name (shared: not to be changed by callers)."""
    return {d.local_name: d for d in _particles(decl.type.content)}


@cache
def _simple(decl: Any) -> bool:
    return bool(decl.type.has_simple_content())


def _to_text(value: Any, kind: str, pointer: str) -> str:
    if kind == "bool":
        if not isinstance(value, bool):
            raise FormError(pointer, "must be true or false")
        return "true" if value else "false"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FormError(pointer, "must be an integer")
        return str(value)
    if not isinstance(value, str):
        raise FormError(pointer, "must be a string")
    return value


@dataclass(frozen=True)
class _Plan:
    """What building one declaration's element needs, derived from the XSD once per process
    (issue 20: walking xmlschema's objects per element was most of a form's build time)."""

    tag: str
    namespace: str
    local: str
    simple: bool
    kind: str
    children: dict[str, tuple[Any, bool]]
    """name -> (declaration, repeated), in schema order."""
    allowed: str
    required: tuple[str | tuple[str, ...], ...]
    """In schema order: a mandatory child's name, or a mandatory choice's names (one of them
    must be given); the first one missing is named."""


@cache
def _plan(decl: Any) -> _Plan:
    namespace, local = decl.target_namespace, decl.local_name
    tag = f"{{{namespace}}}{local}"
    if _simple(decl):
        return _Plan(tag, namespace, local, True, _scalar_kind(decl.type), {}, "", ())
    children = {name: (d, _is_repeated(d)) for name, d in _children(decl).items()}
    group = decl.type.content
    required: list[str | tuple[str, ...]] = []
    if group.model == "choice":
        if group.min_occurs > 0:
            required.append(tuple(d.local_name for d in _particles(group)))
    else:
        for particle in group:
            if particle.min_occurs == 0:
                continue
            if hasattr(particle, "model"):
                if particle.model == "choice":
                    required.append(tuple(d.local_name for d in _particles(particle)))
            else:
                required.append(particle.local_name)
    return _Plan(tag, namespace, local, False, "", children, ", ".join(children), tuple(required))


def _missing(plan: _Plan, value: Mapping[str, Any]) -> str | tuple[str, ...] | None:
    """The first mandatory child (or choice of children) `value` lacks, in schema order."""
    for wanted in plan.required:
        if isinstance(wanted, str):
            if wanted not in value:
                return wanted
        elif not any(n in value for n in wanted):
            return wanted
    return None


def _check_required(plan: _Plan, value: Mapping[str, Any], pointer: str) -> None:
    """Name the missing mandatory field (the validator would only list what it expected)."""
    wanted = _missing(plan, value)
    if isinstance(wanted, str):
        raise FormError(f"{pointer}/{wanted}", "required field is missing")
    if wanted is not None:
        raise FormError(pointer or None, f"one of {', '.join(wanted)} is required")


def _build(
    decl: Any,
    value: Any,
    parent: etree._Element | None,
    nsmap: dict[str, str],
    pointer: str,
    paths: list[str] | None,
) -> etree._Element:
    plan = _plan(decl)
    if parent is None:
        el = etree.Element(plan.tag, nsmap=nsmap)
    else:
        el = etree.SubElement(parent, plan.tag)
    if paths is not None:
        # The validator reports errors by line; on a built tree the "line" is our index.
        el.sourceline = len(paths) + 1  # type: ignore[assignment]
        paths.append(pointer or "/")
    if plan.simple:
        try:
            el.text = _to_text(value, plan.kind, pointer)
        except ValueError as exc:
            if isinstance(exc, FormError):
                raise
            raise FormError(pointer, "contains characters that XML cannot carry") from exc
        return el
    if not isinstance(value, Mapping):
        raise FormError(pointer or None, "must be a JSON object")
    children = plan.children
    for key in value:
        if key not in children:
            raise FormError(f"{pointer}/{key}", f"unknown field (allowed: {plan.allowed})")
    _check_required(plan, value, pointer)
    for name, (child, repeated) in children.items():
        if name not in value:
            continue
        item = value[name]
        if repeated:
            if not isinstance(item, list):
                raise FormError(f"{pointer}/{name}", "must be a JSON array")
            for i, entry in enumerate(item):
                _build(child, entry, el, nsmap, f"{pointer}/{name}/{i}", paths)
        else:
            _build(child, item, el, nsmap, f"{pointer}/{name}", paths)
    return el


class _Unusual(Exception):
    """Something only the element builder decides: a field in error, or a text the markup
    path leaves to it (empty, a carriage return, a character XML cannot carry)."""


# What the markup path writes as it is (after escaping): XML's characters but the carriage
# return (a parser reads it as a line feed) and nothing else; an empty text too, which a
# parser reads as no text at all.
_PLAIN = re.compile("[\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+")


def _scalar_markup(kind: str, value: Any) -> str:
    """A simple element's text as markup, exactly as `_to_text` would give it, or _Unusual."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Unusual
        return "true" if value else "false"
    if kind == "int":
        if type(value) is not int:
            raise _Unusual
        return str(value)
    if not isinstance(value, str) or _PLAIN.fullmatch(value) is None:
        raise _Unusual
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Markup:
    """What writing one declaration's element as markup needs, for one form type's prefixes
    (f: the form's namespace, c: the common one): its tags, and its children's writers,
    made on first use. Built once per process, like _Plan."""

    __slots__ = ("_children", "close", "open", "plan", "prefixes")

    def __init__(self, decl: Any, prefixes: dict[str, str], nsdecl: str = "") -> None:
        plan = _plan(decl)
        prefix = prefixes.get(plan.namespace)
        if prefix is None:  # a third namespace: lxml names its prefix, _build decides
            raise _Unusual
        self.open, self.close = f"<{prefix}{plan.local}{nsdecl}>", f"</{prefix}{plan.local}>"
        self.plan, self.prefixes = plan, prefixes
        self._children: dict[str, _Markup] = {}

    def child(self, name: str, decl: Any) -> _Markup:
        found = self._children.get(name)
        if found is None:
            found = self._children[name] = _Markup(decl, self.prefixes)
        return found

    def write(self, value: Any, out: list[str]) -> None:
        """Write the element `_build` would build for `value`, or raise _Unusual."""
        plan = self.plan
        if plan.simple:
            out.append(self.open + _scalar_markup(plan.kind, value) + self.close)
            return
        if not isinstance(value, Mapping) or _missing(plan, value) is not None:
            raise _Unusual
        children = plan.children
        for key in value:
            if key not in children:
                raise _Unusual
        out.append(self.open)
        for name, (decl, repeated) in children.items():
            if name not in value:
                continue
            item, writer = value[name], self.child(name, decl)
            if repeated:
                if not isinstance(item, list):
                    raise _Unusual
                for entry in item:
                    writer.write(entry, out)
            else:
                writer.write(item, out)
        out.append(self.close)


@cache
def _root_markup(form_type: FormType) -> _Markup | None:
    prefixes = {form_type.namespace: "f:", COMMON_NS: "c:"}
    nsdecl = f' xmlns:f="{form_type.namespace}" xmlns:c="{COMMON_NS}"'
    try:
        return _Markup(_root_decl(form_type), prefixes, nsdecl)
    except _Unusual:
        return None


def _from_markup(form_type: FormType, data: Mapping[str, Any]) -> etree._Element | None:
    """The form's element written as markup and parsed by libxml2: the same tree `_build`
    makes (a property test compares them) in about half the time of lxml's calls one
    element at a time (issue 20). None when `_build` must decide: a field in error, a text
    left to it, an element of a third namespace."""
    writer = _root_markup(form_type)
    if writer is None:
        return None
    out: list[str] = []
    try:
        writer.write(data, out)
        return parse_trusted("".join(out).encode())
    except (_Unusual, etree.XMLSyntaxError):
        return None


def form_to_element(form_type: FormType, data: Mapping[str, Any]) -> etree._Element:
    """Build the form's XML from case-system JSON, validated against the form's schema."""
    nsmap = {"f": form_type.namespace, "c": COMMON_NS}
    decl = _root_decl(form_type)
    root = _from_markup(form_type, data)
    if root is None:
        root = _build(decl, data, None, nsmap, "", None)
    if _schemas(form_type.name)[1].validate(root):
        return root
    # Refused: built again, each element's "line" its index, so that the refusal names the
    # JSON field of every violation (the valid case, nearly every one, skips this).
    paths: list[str] = []
    root = _build(decl, data, None, nsmap, "", paths)
    validate_form(form_type, root, paths)
    return root


def json_pointer(form_type: FormType, root: etree._Element, element: etree._Element) -> str:
    """Where `element`, inside the form `root`, sits in the case system's JSON: what a
    refusal names instead of quoting the value ("/attachment/1/fileName")."""
    steps = []
    for node in (element, *element.iterancestors()):
        if node is root:
            break
        steps.append(node)
    decl, pointer = _root_decl(form_type), ""
    for node in reversed(steps):
        name = etree.QName(node).localname
        decl = _children(decl)[name]
        pointer += f"/{name}"
        if _is_repeated(decl):
            pointer += f"/{sum(1 for s in node.itersiblings(preceding=True) if s.tag == node.tag)}"
    return pointer


def validate_form(
    form_type: FormType, root: etree._Element, paths: Sequence[str] | None = None
) -> None:
    """Check a form element against its schema; `paths` maps lines to JSON pointers when the
    element was built from JSON. The error names the field and the rule, never the value
    (gateway/xml/violations.py)."""
    model, validator = _schemas(form_type.name)
    if validator.validate(root):
        return
    violations = all_violations(model, root)
    if not violations:
        log: Any = validator.error_log
        line, message = log[0].line, f"does not match the schema of a {form_type.name}"
        raise FormError(_pointer(paths, line), message, line or None)

    def described(violation: Violation) -> tuple[str, str]:
        # Built from JSON, the field's pointer names the element already.
        message = violation.rule if paths else violation.text
        return _pointer(paths, _line(violation.element)), message

    problems = list(dict.fromkeys(described(v) for v in violations))
    where, message = problems[0]
    raise FormError(where, message, _line(violations[0].element), problems)


def _line(element: etree._Element) -> int | None:
    line = getattr(element, "sourceline", None)
    return line if isinstance(line, int) and line > 0 else None


def _pointer(paths: Sequence[str] | None, line: int | None) -> str:
    return paths[line - 1] if paths and line and 0 < line <= len(paths) else "/"


def _read(decl: Any, el: etree._Element) -> Any:
    if _simple(decl):
        text = el.text or ""
        kind = _scalar_kind(decl.type)
        if kind == "bool":
            return text.strip() in ("true", "1")
        if kind == "int":
            return int(text)
        return text
    children = _children(decl)
    out: dict[str, Any] = {}
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        child_decl = children.get(name)
        if child_decl is None:
            raise FormError(None, f"unexpected element {name!r} in {decl.local_name}")
        value = _read(child_decl, child)
        if _is_repeated(child_decl):
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def form_from_element(element: etree._Element) -> tuple[FormType, dict[str, Any]]:
    """The case-system JSON of a (verified, schema-valid) form element. A sealed health
    certificate (Art. 39) gives only what travels in clear: consent basis, recipients and
    the ciphertext."""
    if is_sealed(element):
        return FORM_TYPES["health-certificate"], read_sealed(element).to_json()
    qname = etree.QName(element)
    ft = form_type_by_namespace(qname.namespace or "")
    if ft is None or qname.localname != ft.root:
        raise FormError(None, f"{qname.text} is not a known standard form")
    data = _read(_root_decl(ft), element)
    assert isinstance(data, dict)
    return ft, data


def form_json_schema(form_type: FormType) -> dict[str, Any]:
    """A JSON Schema of the case-system shape, derived from the XSD (for documentation)."""

    def schema_of(decl: Any) -> dict[str, Any]:
        if _simple(decl):
            kind = _scalar_kind(decl.type)
            return {"type": {"bool": "boolean", "int": "integer"}.get(kind, "string")}
        props: dict[str, Any] = {}
        required: list[str] = []
        in_choice = {
            d.local_name
            for g in _groups(decl.type.content)
            if g.model == "choice"
            for d in _particles(g)
        }
        for name, child in _children(decl).items():
            item = schema_of(child)
            if _is_repeated(child):
                item = {"type": "array", "items": item, "minItems": child.min_occurs}
                if child.max_occurs is not None:
                    item["maxItems"] = child.max_occurs
            props[name] = item
            if child.min_occurs > 0 and name not in in_choice:
                required.append(name)
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            out["required"] = required
        if in_choice:
            out["oneOf"] = [{"required": [n]} for n in sorted(in_choice)]
        return out

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": form_type.name,
    } | schema_of(_root_decl(form_type))


def _groups(group: Any) -> Iterator[Any]:
    yield group
    for particle in group:
        if hasattr(particle, "model"):
            yield from _groups(particle)
