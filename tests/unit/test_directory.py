"""The authority directory of Art. 41(1)-(2): only listed authorities, identified by pins."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.directory import Directory, DirectoryError


def entry(code: str = "BE-DU", **kw: Any) -> dict[str, Any]:
    n = sum(map(ord, code))
    base: dict[str, Any] = {
        "code": code,
        "member_state": code[:2],
        "name": f"Dublin unit {code}",
        "time_zone": "Europe/Brussels",
        "endpoint": "https://127.0.0.1:8443",
        "roles": ["case-officer", "auditor"],
        "tls_fingerprints": [f"{n:064x}"],
        "signing_fingerprints": [f"{n + 1:064x}"],
    }
    base.update(kw)
    return base


def test_art41_directory_round_trips_and_finds_by_pins() -> None:
    d = Directory.from_dict({"version": 3, "authorities": [entry(), entry("NL-DU")]})
    assert Directory.from_dict(d.to_dict()) == d
    be = d.get("BE-DU")
    assert be is not None
    assert d.by_tls_fingerprint(next(iter(be.tls_fingerprints))) == be
    assert d.by_signing_fingerprint(next(iter(be.signing_fingerprints))) == be
    assert d.by_tls_fingerprint(next(iter(be.signing_fingerprints))) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code": "be-du"}, "code"),
        ({"member_state": "NL"}, "member_state"),
        ({"time_zone": "Mars/Olympus"}, "time zone"),
        ({"endpoint": "http://x"}, "https"),
        ({"roles": ["king"]}, "roles"),
        ({"tls_fingerprints": ["abc"]}, "fingerprint"),
        ({"tls_fingerprints": []}, "at least one"),
    ],
)
def test_malformed_entries_are_refused_with_a_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        Directory.from_dict({"authorities": [entry(**change)]})


def test_a_certificate_pinned_for_two_authorities_is_refused() -> None:
    a = entry()
    b = entry("NL-DU", tls_fingerprints=a["tls_fingerprints"])
    with pytest.raises(DirectoryError, match="pinned twice"):
        Directory.from_dict({"authorities": [a, b]})


def test_a_certificate_may_not_be_both_tls_and_signing() -> None:
    a = entry()
    a["signing_fingerprints"] = a["tls_fingerprints"]
    with pytest.raises(DirectoryError, match="both"):
        Directory.from_dict({"authorities": [a]})


def test_missing_field_is_named() -> None:
    a = entry()
    del a["endpoint"]
    with pytest.raises(DirectoryError, match="endpoint"):
        Directory.from_dict({"authorities": [a]})
