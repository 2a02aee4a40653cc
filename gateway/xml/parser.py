"""The one way untrusted XML is parsed: no DOCTYPE, no entities, no network, bounded size and
depth. lxml's resolve_entities=False merely leaves entity references in place, so any DOCTYPE
is refused outright."""

from __future__ import annotations

from functools import cache

from lxml import etree

from gateway.core.policy import Reason, Rejection

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
        remove_blank_text=False,
    )


def parse_untrusted(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> etree._Element:
    if len(data) > max_bytes:
        raise Rejection(Reason.BODY_TOO_LARGE, f"document exceeds {max_bytes} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise Rejection(Reason.DOCTYPE_FORBIDDEN, "DOCTYPE and entity declarations are refused")
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        raise Rejection(Reason.MALFORMED_XML, f"not well-formed XML: line {exc.lineno}") from exc
    docinfo = tree.docinfo
    doctype: str = docinfo.doctype  # type: ignore[attr-defined]
    if doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise Rejection(Reason.DOCTYPE_FORBIDDEN, "DOCTYPE and entity declarations are refused")
    if (docinfo.encoding or "UTF-8").upper() != "UTF-8":
        raise Rejection(Reason.MALFORMED_XML, "documents must be encoded in UTF-8")
    root = tree.getroot()
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._Comment | etree._ProcessingInstruction):
            raise Rejection(
                Reason.MALFORMED_XML, "comments and processing instructions are refused"
            )
    _check_depth_and_nodes(root, max_depth)
    return root


@cache
def _deeper_than(max_depth: int) -> etree.XPath:
    """Whether an element sits below `max_depth` levels (the root is level 1), evaluated by
    libxml2 rather than a Python walk over every node (issue 20)."""
    return etree.XPath("boolean(" + "/".join(["*"] * max_depth) + ")")


def _check_depth_and_nodes(root: etree._Element, max_depth: int) -> None:
    if next(root.iter(etree.Entity), None) is not None:
        raise Rejection(Reason.DOCTYPE_FORBIDDEN, "entity references are refused")
    if next(root.iter(etree.PI), None) is not None:
        raise Rejection(Reason.MALFORMED_XML, "processing instructions are refused")
    if next(root.iter(etree.Comment), None) is not None:
        # Canonicalization drops comments, so `NL-<!---->DU` is signed as one value and may
        # be read as another: no transmission needs a comment.
        raise Rejection(
            Reason.MALFORMED_XML,
            "comments are refused (they can split signed values: XML-DSig C14N drops them)",
        )
    if _deeper_than(max_depth)(root):
        raise Rejection(Reason.TOO_DEEP, f"document nests deeper than {max_depth} elements")


def parse_trusted(data: bytes) -> etree._Element:
    """For bytes we produced or already verified (our own store); same safe settings."""
    return etree.fromstring(data, _parser())
