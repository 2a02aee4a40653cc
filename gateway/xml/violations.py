"""Why a document does not fit its schema, said without any of its values.

The validators' own messages quote the offending value ("'1990-13-45'x' is not a valid value
of the atomic type 'xs:date'"), and a value in a form is personal data that must not reach
an API problem, an error file or a log. Redacting those messages with regular expressions
failed on the first apostrophe. So no message text is used at all: the lxml validator
(fast, on every document) only decides *whether* a document is valid; when it is not,
xmlschema finds the first violation again as objects (the element, and the schema component
that refused it: a pattern, an enumeration, a length, a built-in type, a content model),
and the explanation is written from the element's name and that component alone.
Explaining costs about a millisecond, paid only by documents that are refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

__all__ = ["Violation", "all_violations", "first_violation"]


@dataclass(frozen=True)
class Violation:
    element: etree._Element
    """Where: the element at fault (its `sourceline` is the line in a file that was read)."""
    subject: str
    """Its name (`surname`, `Attachment/@fileName`)."""
    rule: str
    """The rule it breaks, in schema terms only (`must be a date (YYYY-MM-DD)`)."""

    @property
    def text(self) -> str:
        return f"{self.subject}: {self.rule}"


def first_violation(model: Any, root: etree._Element) -> Violation | None:
    """The first violation of `root` against the xmlschema `model`, or None if xmlschema
    finds none (lxml and xmlschema rarely disagree; callers then say less)."""
    found = all_violations(model, root, limit=1)
    return found[0] if found else None


def all_violations(model: Any, root: etree._Element, limit: int = 50) -> list[Violation]:
    """Every violation of `root` against the xmlschema `model`, in document order, at most
    `limit` (a hostile document cannot make the answer unbounded)."""
    found = []
    for error in model.iter_errors(root):
        found.append(_explain(model, error))
        if len(found) >= limit:
            break
    return found


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else "element"


_TYPES = {
    "date": "a date (YYYY-MM-DD)",
    "dateTime": "a date and time (ISO 8601, with a time zone)",
    "time": "a time (hh:mm:ss)",
    "gYear": "a year",
    "boolean": "true or false",
    "base64Binary": "base64 text",
    "decimal": "a decimal number",
    "anyURI": "a URI",
}
_INTEGERS = {"integer", "long", "int", "short", "byte"}

# The rule a schema component states, in words, by the component's class.
_RULES: dict[str, Callable[[Any], str]] = {
    "XsdPatternFacets": lambda v: "must match the pattern " + " or ".join(v.regexps),
    "XsdEnumerationFacets": lambda v: "must be one of: " + ", ".join(str(x) for x in v.enumeration),
    "XsdMaxLengthFacet": lambda v: f"must be at most {v.value} characters long",
    "XsdMinLengthFacet": lambda v: (
        "must not be empty" if v.value == 1 else f"must be at least {v.value} characters long"
    ),
    "XsdLengthFacet": lambda v: f"must be exactly {v.value} characters long",
    "XsdMinInclusiveFacet": lambda v: f"must be at least {v.value}",
    "XsdMaxInclusiveFacet": lambda v: f"must be at most {v.value}",
    "XsdMinExclusiveFacet": lambda v: f"must be more than {v.value}",
    "XsdMaxExclusiveFacet": lambda v: f"must be less than {v.value}",
    "XsdTotalDigitsFacet": lambda v: f"must have at most {v.value} digits",
    "XsdFractionDigitsFacet": lambda v: f"must have at most {v.value} decimal places",
}


def _type_rule(component: Any) -> str:
    primitive = getattr(component, "primitive_type", component)
    name = str(getattr(primitive, "local_name", "") or "")
    if name in _INTEGERS or name.endswith("Integer"):
        return "must be an integer"
    return f"must be {_TYPES.get(name, f'a valid xs:{name}' if name else 'of its schema type')}"


def _rule(component: Any) -> str:
    rule = _RULES.get(type(component).__name__)
    if rule is not None:
        return rule(component)
    if type(component).__name__ == "XsdGroup":
        return "must not hold text between its elements"
    if hasattr(component, "primitive_type") or type(component).__name__ == "XsdAtomicBuiltin":
        return _type_rule(component)
    return "does not match its schema declaration"


def _expected(error: Any) -> str:
    names = []
    for particle in getattr(error, "expected", None) or ():
        name = getattr(particle, "local_name", None)
        names.append(name if name else "an element of another namespace")
    return f"; expected: {', '.join(names)}" if names else ""


def _declaration(model: Any, error: Any) -> Any:
    try:
        return model.find(error.path, namespaces=error.namespaces)
    except Exception:  # an unusual path: the explanation just says less
        return None


def _attribute_problem(model: Any, error: Any, element: etree._Element) -> Violation | None:
    """Errors on attributes carry no attribute name but in their text: find the attribute
    from the declaration instead (missing, not allowed, or a value its type refuses)."""
    decl = _declaration(model, error)
    declared = getattr(decl, "attributes", None) if decl is not None else None
    if declared is None:
        return None
    name = _local(element.tag)
    for attr in element.attrib:
        if attr not in declared:
            return Violation(element, name, f"the attribute {_local(attr)} is not allowed")
    for attr, a in declared.items():
        if getattr(a, "use", None) == "required" and attr not in element.attrib:
            return Violation(element, name, f"the attribute {_local(attr)} is required")
    for attr, a in declared.items():
        value = element.get(attr)
        if value is not None and not a.type.is_valid(value):
            return Violation(element, f"{name}/@{_local(attr)}", _rule(error.validator))
    return None


def _explain(model: Any, error: Any) -> Violation:
    element = error.elem
    name = _local(element.tag)
    child = getattr(error, "invalid_child", None)
    if child is not None:
        rule = f"this element is not expected in {name}{_expected(error)}"
        return Violation(child, _local(child.tag), rule)
    if type(error).__name__ == "XMLSchemaChildrenValidationError":
        return Violation(element, name, f"an element is missing{_expected(error)}")
    about_attribute = _attribute_problem(model, error, element) if element.attrib else None
    if about_attribute is not None:
        return about_attribute
    return Violation(element, name, _rule(error.validator))
