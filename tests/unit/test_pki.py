"""The demo PKI and the directory file: the material every other test and the demo trust.

What matters here is what a peer would check: that leaves chain to the network CA, that the
signing certificate cannot be used for TLS (proved by a real handshake), that private keys
are never readable by others, and that the directory pins exactly what was generated.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.core.directory import Directory, DirectoryError
from gateway.core.roles import ROLES
from gateway.pki.certs import fingerprint, fingerprint_der, load_certificate, load_private_key
from gateway.pki.demo import (
    DOCUMENT_SIGNING,
    MEMBER_STATES,
    DemoNetwork,
    create_demo_network,
    generate_key,
    issue_certificate,
    write_certificate,
    write_private_key,
)
from gateway.pki.directory_file import load_directory, save_directory

CODES = ["BE-DU", "NL-DU", "GR-DU"]
HANDSHAKE_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> DemoNetwork:
    return create_demo_network(tmp_path_factory.mktemp("pki") / "demo", CODES)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert(path: Path) -> x509.Certificate:
    return load_certificate(path)


def ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = load_private_key(path)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def ext(c: x509.Certificate, kind: type[Any]) -> x509.Extension[Any]:
    return c.extensions.get_extension_for_class(kind)


# --- layout and file modes ---------------------------------------------------------------


def test_layout_is_exactly_the_documented_files(net: DemoNetwork) -> None:
    root = net.root
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    expected = ["ca", "ca/ca.key", "ca/ca.pem", "ca/crl.pem", "directory.json", "directory.xml"]
    expected += ["operator", "operator/directory-publisher.key", "operator/directory-publisher.pem"]
    for code in CODES:
        expected += [code] + [f"{code}/{n}" for n in ("signing.key", "signing.pem", "tls.key")]
        expected += [f"{code}/tls.pem", f"{code}/health"]
        expected += [f"{code}/health/health-encryption.{ext}" for ext in ("key", "pem")]
    assert found == sorted(expected), "no temporary or extra files may be left behind"
    assert net.ca_cert == root / "ca" / "ca.pem"
    assert net.ca_key == root / "ca" / "ca.key"
    assert net.directory_source == root / "directory.json"
    assert net.directory == root / "directory.xml"
    assert net.crl == root / "ca" / "crl.pem"
    assert list(net.authorities) == CODES
    files = net.authorities["BE-DU"]
    assert files.code == "BE-DU"
    assert files.tls_cert == root / "BE-DU" / "tls.pem"
    assert files.signing_key == root / "BE-DU" / "signing.key"


def test_keys_are_owner_only_and_certificates_public(net: DemoNetwork) -> None:
    assert mode(net.ca_key) == 0o600
    assert mode(net.ca_cert) == 0o644
    assert mode(net.ca_cert.parent) == 0o700
    assert mode(net.directory_source) == 0o644
    assert mode(net.directory) == 0o644
    assert mode(net.publisher_key) == 0o600
    for files in net.authorities.values():
        assert mode(files.health_key) == 0o600
        assert mode(files.health_key.parent) == 0o700
        assert mode(files.tls_key) == 0o600
        assert mode(files.signing_key) == 0o600
        assert mode(files.tls_cert) == 0o644
        assert mode(files.signing_cert) == 0o644
        assert mode(files.tls_key.parent) == 0o700


def test_modes_hold_even_with_a_permissive_umask(tmp_path: Path, umask_zero: None) -> None:
    net = create_demo_network(tmp_path / "n", ["BE-DU"])
    files = net.authorities["BE-DU"]
    assert mode(files.tls_key) == mode(files.signing_key) == mode(net.ca_key) == 0o600
    assert mode(files.tls_cert) == mode(net.ca_cert) == 0o644
    assert mode(files.tls_key.parent) == mode(net.ca_key.parent) == 0o700


def test_private_key_file_is_created_owner_only_never_widened_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode must be set by the open() that creates the file, not by a chmod afterwards."""
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *a: Any, **kw: Any) -> int:
        calls.append((str(path), flags, mode))
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    write_private_key(tmp_path / "k.key", generate_key())
    creating = [c for c in calls if c[1] & os.O_CREAT]
    assert len(creating) == 1
    path, flags, file_mode = creating[0]
    assert flags & os.O_EXCL and flags & os.O_WRONLY
    assert file_mode == 0o600
    assert Path(path).parent == tmp_path and Path(path).name != "k.key", "a temp file first"
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]


def test_write_private_key_never_replaces_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_private_key(path, generate_key())
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"k\.key"):
        write_private_key(path, generate_key())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]


def test_keys_are_unencrypted_pkcs8_p256_and_all_distinct(net: DemoNetwork) -> None:
    seen: set[int] = set()
    paths = [net.ca_key]
    for files in net.authorities.values():
        paths += [files.tls_key, files.signing_key]
    for path in paths:
        assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
        key = ec_key(path)
        assert key.curve.name == "secp256r1"
        seen.add(key.private_numbers().private_value)
    assert len(seen) == len(paths), "every certificate must have its own key"


def test_each_certificate_belongs_to_its_key(net: DemoNetwork) -> None:
    assert cert(net.ca_cert).public_key() == ec_key(net.ca_key).public_key()
    for files in net.authorities.values():
        assert cert(files.tls_cert).public_key() == ec_key(files.tls_key).public_key()
        assert cert(files.signing_cert).public_key() == ec_key(files.signing_key).public_key()
        assert cert(files.tls_cert).public_key() != cert(files.signing_cert).public_key()


# --- certificate contents ----------------------------------------------------------------


def test_ca_is_self_signed_and_may_issue_leaves_only(net: DemoNetwork) -> None:
    ca = cert(net.ca_cert)
    assert ca.subject == ca.issuer
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Dublin network demo CA"
    )
    ca.verify_directly_issued_by(ca)
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())


def test_tls_certificate_verifies_as_server_and_as_client(net: DemoNetwork) -> None:
    ca = cert(net.ca_cert)
    builder = PolicyBuilder().store(Store([ca])).time(datetime.now(UTC))
    for code in CODES:
        leaf = cert(net.authorities[code].tls_cert)
        for name in (
            DNSName("localhost"),
            DNSName(f"{code.lower()}.dublin.test"),
            IPAddress(ipaddress.ip_address("127.0.0.1")),
            IPAddress(ipaddress.ip_address("::1")),
        ):
            chain = builder.build_server_verifier(name).verify(leaf, [])
            assert chain == [leaf, ca]
        client = builder.build_client_verifier().verify(leaf, [])
        assert client.chain == [leaf, ca]


def test_tls_certificate_names_and_purposes(net: DemoNetwork) -> None:
    leaf = cert(net.authorities["GR-DU"].tls_cert)
    ca = cert(net.ca_cert)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "GR-DU"
    org = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert org == "Dublin unit of Greece"
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "gr-du.dublin.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    ku = ext(leaf, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.content_commitment
    assert not ku.value.key_cert_sign
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    ext(leaf, x509.SubjectKeyIdentifier)


def test_signing_certificate_is_for_documents_only(net: DemoNetwork) -> None:
    ca = cert(net.ca_cert)
    leaf = cert(net.authorities["BE-DU"].signing_cert)
    leaf.verify_directly_issued_by(ca)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "BE-DU signing"
    eku = list(ext(leaf, x509.ExtendedKeyUsage).value)
    assert eku == [DOCUMENT_SIGNING]
    assert DOCUMENT_SIGNING.dotted_string == "1.3.6.1.5.5.7.3.36"
    assert ExtendedKeyUsageOID.CLIENT_AUTH not in eku
    assert ExtendedKeyUsageOID.SERVER_AUTH not in eku
    ku = ext(leaf, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    ext(leaf, x509.SubjectKeyIdentifier)


def test_signing_certificate_is_refused_by_a_tls_verifier(net: DemoNetwork) -> None:
    ca = cert(net.ca_cert)
    leaf = cert(net.authorities["BE-DU"].signing_cert)
    builder = PolicyBuilder().store(Store([ca])).time(datetime.now(UTC))
    with pytest.raises(VerificationError):
        builder.build_client_verifier().verify(leaf, [])
    with pytest.raises(VerificationError):
        builder.build_server_verifier(DNSName("localhost")).verify(leaf, [])


def test_validity_window_and_random_serials(tmp_path: Path) -> None:
    now = datetime(2030, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    net = create_demo_network(tmp_path / "n", ["BE-DU", "NL-DU"], valid_days=30, now=now)
    paths = [net.ca_cert]
    for files in net.authorities.values():
        paths += [files.tls_cert, files.signing_cert]
    start = datetime(2030, 3, 1, 11, 55, tzinfo=UTC)
    for path in paths:
        c = cert(path)
        assert c.not_valid_before_utc == start
        assert c.not_valid_after_utc == start + timedelta(minutes=5, days=30)
    serials = {cert(p).serial_number for p in paths}
    assert len(serials) == len(paths)
    assert all(s.bit_length() > 64 for s in serials), "serials must be random, not counters"


def test_issue_certificate_refuses_a_tls_leaf_without_names(tmp_path: Path) -> None:
    net = create_demo_network(tmp_path / "n", ["BE-DU"])
    ca, ca_key = cert(net.ca_cert), ec_key(net.ca_key)
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BE-DU")])
    with pytest.raises(ValueError, match="subject alternative name"):
        issue_certificate(
            ca,
            ca_key,
            generate_key().public_key(),
            subject,
            purpose="tls",
            not_before=now,
            not_after=now + timedelta(days=1),
        )
    with pytest.raises(ValueError, match="outlive"):
        issue_certificate(
            ca,
            ca_key,
            generate_key().public_key(),
            subject,
            purpose="signing",
            not_before=now,
            not_after=now + timedelta(days=10_000),
        )


# --- the directory -----------------------------------------------------------------------


def test_directory_pins_exactly_the_generated_certificates(net: DemoNetwork) -> None:
    directory = load_directory(net.directory_source)
    assert directory.version == 1
    assert sorted(directory.authorities) == sorted(CODES)
    for index, code in enumerate(CODES):
        auth = directory.get(code)
        assert auth is not None
        files = net.authorities[code]
        assert auth.tls_fingerprints == {fingerprint(cert(files.tls_cert))}
        assert auth.signing_fingerprints == {fingerprint(cert(files.signing_cert))}
        assert auth.member_state == code[:2]
        assert auth.roles == frozenset(ROLES)
        assert auth.endpoint == f"https://localhost:{8443 + index}"
        state, zone = MEMBER_STATES[code[:2]]
        assert auth.name == f"Dublin unit of {state}"
        assert auth.time_zone == zone
    greece = directory.get("GR-DU")
    assert greece is not None and greece.time_zone == "Europe/Athens"
    assert greece.name == "Dublin unit of Greece"
    assert directory.by_tls_fingerprint(fingerprint(cert(net.authorities["NL-DU"].tls_cert)))
    signing = fingerprint(cert(net.authorities["NL-DU"].signing_cert))
    assert directory.by_tls_fingerprint(signing) is None, "a signing cert is no TLS identity"


def test_directory_file_is_pretty_json_with_trailing_newline(net: DemoNetwork) -> None:
    text = net.directory_source.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert '\n  "authorities": [\n' in text
    assert Directory.from_dict(json.loads(text)) == load_directory(net.directory_source)


def test_endpoints_can_be_given_per_authority(tmp_path: Path) -> None:
    net = create_demo_network(
        tmp_path / "n", ["BE-DU", "NL-DU"], {"NL-DU": "https://127.0.0.1:9001"}
    )
    directory = load_directory(net.directory_source)
    be, nl = directory.get("BE-DU"), directory.get("NL-DU")
    assert be is not None and be.endpoint == "https://localhost:8443"
    assert nl is not None and nl.endpoint == "https://127.0.0.1:9001"


def test_endpoints_for_unknown_authorities_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FR-DU"):
        create_demo_network(tmp_path / "n", ["BE-DU"], {"FR-DU": "https://x.test"})
    assert not (tmp_path / "n").exists()


def test_save_directory_replaces_atomically(tmp_path: Path, net: DemoNetwork) -> None:
    directory = load_directory(net.directory_source)
    target = tmp_path / "directory.json"
    target.write_text("old")
    save_directory(target, directory)
    assert load_directory(target) == directory
    assert mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["directory.json"]


def test_save_directory_failure_leaves_the_old_file_and_no_debris(
    tmp_path: Path, net: DemoNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "directory.json"
    target.write_text("old")

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk on fire"):
        save_directory(target, load_directory(net.directory_source))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["directory.json"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "JSON object"),
        (b'{"version": 1}', "'authorities' list"),
        (b'{"authorities": ["BE-DU"]}', "authorities\\[0\\] must be a JSON object"),
        (b'{"authorities": [{"code": "BE-DU"}]}', "lacks the field"),
        (b'{"version": true, "authorities": []}', "version"),
    ],
)
def test_load_directory_names_the_file_and_the_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "directory.json"
    path.write_bytes(content)
    with pytest.raises(DirectoryError, match=problem) as info:
        load_directory(path)
    assert str(path) in str(info.value)


def test_load_directory_rejects_invalid_entries(tmp_path: Path, net: DemoNetwork) -> None:
    data = json.loads(net.directory_source.read_text())
    path = tmp_path / "directory.json"

    data["authorities"][0]["tls_fingerprints"] = "abc"
    path.write_text(json.dumps(data))
    with pytest.raises(DirectoryError, match="list of strings") as info:
        load_directory(path)
    assert str(path) in str(info.value)

    data["authorities"][0]["tls_fingerprints"] = ["not-hex"]
    path.write_text(json.dumps(data))
    with pytest.raises(DirectoryError, match="64 hex digits") as info:
        load_directory(path)
    assert str(path) in str(info.value)


def test_load_directory_reports_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(DirectoryError, match="cannot read") as info:
        load_directory(path)
    assert str(path) in str(info.value)


# --- refusing to clobber, refusing bad input ---------------------------------------------


def test_an_existing_network_is_never_overwritten(tmp_path: Path) -> None:
    net = create_demo_network(tmp_path / "n", ["BE-DU"])
    before = {p: p.read_bytes() for p in net.root.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="already holds a demo network"):
        create_demo_network(tmp_path / "n", ["BE-DU"])
    with pytest.raises(FileExistsError, match="already holds a demo network"):
        create_demo_network(tmp_path / "n", ["NL-DU"])
    after = {p: p.read_bytes() for p in net.root.rglob("*") if p.is_file()}
    assert after == before


def test_leftovers_of_an_unfinished_network_are_refused_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "n"
    (out / "BE-DU").mkdir(parents=True)
    (out / "BE-DU" / "tls.key").write_text("someone's key")
    with pytest.raises(FileExistsError, match=r"tls\.key"):
        create_demo_network(out, ["BE-DU"])
    assert (out / "BE-DU" / "tls.key").read_text() == "someone's key"
    assert not (out / "ca").exists()


@pytest.mark.parametrize(
    "code", ["be-du", "BEDU", "B-DU", "BE-", "BE-DU-2", "BE_DU", " BE-DU", "BE-ABCDEFGHIJK"]
)
def test_malformed_codes_are_refused(tmp_path: Path, code: str) -> None:
    with pytest.raises(ValueError, match="must look like 'BE-DU'"):
        create_demo_network(tmp_path / "n", [code])
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("code", ["XX-DU", "UK-DU", "EU-DU"])
def test_unknown_states_are_refused(tmp_path: Path, code: str) -> None:
    with pytest.raises(ValueError, match="not the Eurodac letters"):
        create_demo_network(tmp_path / "n", ["BE-DU", code])
    assert not (tmp_path / "n").exists()


def test_greece_typed_as_el_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Eurodac writes GR"):
        create_demo_network(tmp_path / "n", ["EL-DU"])


def test_duplicate_and_missing_codes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="listed twice"):
        create_demo_network(tmp_path / "n", ["BE-DU", "NL-DU", "BE-DU"])
    with pytest.raises(ValueError, match="at least one"):
        create_demo_network(tmp_path / "n", [])
    with pytest.raises(ValueError, match="not one string"):
        create_demo_network(tmp_path / "n", "BE-DU")
    assert not (tmp_path / "n").exists()


def test_bad_validity_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid_days"):
        create_demo_network(tmp_path / "n", ["BE-DU"], valid_days=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        create_demo_network(tmp_path / "n", ["BE-DU"], now=datetime(2030, 1, 1))


def test_member_state_table() -> None:
    eu = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
    associated = "CH IS LI NO"
    assert set(MEMBER_STATES) == set(eu.split()) | set(associated.split())
    assert MEMBER_STATES["GR"] == ("Greece", "Europe/Athens")
    assert "EL" not in MEMBER_STATES
    for _, zone in MEMBER_STATES.values():
        ZoneInfo(zone)


def test_a_whole_network_of_every_state_is_a_valid_directory(tmp_path: Path) -> None:
    codes = [f"{state}-DU" for state in sorted(MEMBER_STATES)]
    net = create_demo_network(tmp_path / "all", codes)
    assert sorted(load_directory(net.directory_source).authorities) == codes


# --- a real mutual-TLS handshake ---------------------------------------------------------


def _handshake(net: DemoNetwork, client_cert: Path, client_key: Path) -> dict[str, Any]:
    """One connection to a server that requires a client certificate from the network CA.

    Returns what each side saw; both sides are bounded by timeouts and the server thread is
    always joined, so a misbehaving handshake fails the test instead of hanging it.
    """
    server_files = net.authorities["NL-DU"]
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.load_cert_chain(server_files.tls_cert, server_files.tls_key)
    server_ctx.load_verify_locations(cafile=net.ca_cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED

    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.load_verify_locations(cafile=net.ca_cert)
    client_ctx.load_cert_chain(client_cert, client_key)

    seen: dict[str, Any] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(HANDSHAKE_TIMEOUT)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(HANDSHAKE_TIMEOUT)
                    with server_ctx.wrap_socket(conn, server_side=True) as tls:
                        seen["server_peer"] = tls.getpeercert(binary_form=True)
                        tls.sendall(b"ok")
            except OSError as exc:  # ssl.SSLError and timeouts are OSErrors
                seen["server_error"] = exc

        thread = threading.Thread(target=serve, name="tls-test-server", daemon=True)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT) as raw:
                with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    seen["client_read"] = tls.recv(2)
        except OSError as exc:
            seen["client_error"] = exc
        finally:
            thread.join(HANDSHAKE_TIMEOUT)
        assert not thread.is_alive(), "the test server did not finish"
    return seen


def test_mutual_tls_handshake_with_the_tls_certificate_succeeds(net: DemoNetwork) -> None:
    files = net.authorities["BE-DU"]
    seen = _handshake(net, files.tls_cert, files.tls_key)
    assert "server_error" not in seen and "client_error" not in seen, seen
    assert seen["client_read"] == b"ok"
    # The server sees exactly the certificate the directory pins for BE-DU.
    pinned = load_directory(net.directory_source).by_tls_fingerprint(
        fingerprint_der(seen["server_peer"])
    )
    assert pinned is not None and pinned.code == "BE-DU"


def test_mutual_tls_handshake_with_the_signing_certificate_is_refused(net: DemoNetwork) -> None:
    files = net.authorities["BE-DU"]
    seen = _handshake(net, files.signing_cert, files.signing_key)
    error = seen.get("server_error")
    assert isinstance(error, ssl.SSLCertVerificationError), seen
    assert error.verify_code == 26, error.verify_message  # X509_V_ERR_INVALID_PURPOSE
    assert "server_peer" not in seen
    assert seen.get("client_read") != b"ok"


def test_written_certificates_load_back_identically(tmp_path: Path, net: DemoNetwork) -> None:
    original = cert(net.ca_cert)
    copy = tmp_path / "copy.pem"
    write_certificate(copy, original)
    assert cert(copy) == original
    write_certificate(copy, original)  # certificates may be refreshed in place
    assert mode(copy) == 0o644
