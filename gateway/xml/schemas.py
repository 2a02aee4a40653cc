"""Where the XSDs live and the compiled validators; schemas are compiled once per process."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(str(resources.files("gateway").joinpath("schemas")))
"""gateway/schemas/, package data, so that an installed wheel has it too. A folder of files:
the XSDs import each other by relative name (pip installs every wheel unzipped)."""
ENVELOPE_NS = "urn:eu:dublin:gateway:1"


@cache
def envelope_schema() -> etree.XMLSchema:
    """Validates transmissions and acknowledgements (envelope.xsd imports every form)."""
    return compile_schema("envelope.xsd")


def compile_schema(name: str) -> etree.XMLSchema:
    """gateway/schemas/<name>, read without entities, DTDs or network, compiled (callers cache)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    doc = etree.parse(str(SCHEMA_DIR / name), parser)
    return etree.XMLSchema(doc)
