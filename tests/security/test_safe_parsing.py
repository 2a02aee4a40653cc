"""Untrusted XML is parsed with no DOCTYPE, no entities, no network and bounded size/depth."""

from __future__ import annotations

import pytest

from gateway.core.policy import Reason, Rejection
from gateway.xml.parser import parse_untrusted


def reason(data: bytes, **kw: int) -> Reason:
    with pytest.raises(Rejection) as err:
        parse_untrusted(data, **kw)
    return err.value.reason


def test_xxe_external_entity_is_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    assert reason(data) == Reason.DOCTYPE_FORBIDDEN


def test_billion_laughs_is_refused() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>'
    )
    assert reason(data) == Reason.DOCTYPE_FORBIDDEN


def test_external_dtd_is_refused() -> None:
    assert reason(b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd"><a/>') == (
        Reason.DOCTYPE_FORBIDDEN
    )


def test_doctype_hidden_in_utf16_is_refused() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'
    assert reason(data.encode("utf-16")) in {Reason.DOCTYPE_FORBIDDEN, Reason.MALFORMED_XML}


def test_undeclared_entity_is_malformed() -> None:
    assert reason(b"<a>&x;</a>") == Reason.MALFORMED_XML


def test_too_deep_document_is_refused() -> None:
    data = b"<a>" * 100 + b"</a>" * 100
    assert reason(data, max_depth=64) == Reason.TOO_DEEP


def test_too_large_document_is_refused_before_parsing() -> None:
    assert reason(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000) == Reason.BODY_TOO_LARGE


def test_processing_instruction_is_refused() -> None:
    assert reason(b"<a><?evil x?></a>") == Reason.MALFORMED_XML


def test_not_xml_is_malformed() -> None:
    assert reason(b"{json: true}") == Reason.MALFORMED_XML


def test_plain_document_parses() -> None:
    assert parse_untrusted(b"<a><b>text</b></a>").tag == "a"
