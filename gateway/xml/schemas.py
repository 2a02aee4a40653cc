"""Where the XSDs live and the compiled validators; schemas are compiled once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
ENVELOPE_NS = "urn:eu:dublin:gateway:1"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


@cache
def envelope_schema() -> etree.XMLSchema:
    """Validates transmissions and acknowledgements (envelope.xsd imports every form)."""
    return compile_schema("envelope.xsd")


def compile_schema(name: str) -> etree.XMLSchema:
    """schemas/<name>, read without entities, DTDs or network, compiled (callers cache)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    doc = etree.parse(str(SCHEMA_DIR / name), parser)
    return etree.XMLSchema(doc)
