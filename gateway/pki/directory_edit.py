"""`gateway pki directory add / update / remove`: the operator edits the directory source from
issued certificates, never by pasting PEMs or fingerprints into JSON by hand. Each edit checks
the whole directory (as a gateway would load it), raises its version by one and writes it
atomically; publishing (`gateway pki directory publish`) signs it."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core.directory import Authority, Directory, DirectoryError
from gateway.core.roles import ROLES
from gateway.pki.certs import fingerprint, load_certificate
from gateway.pki.directory_file import load_directory, save_directory
from gateway.pki.purposes import DOCUMENT_SIGNING, HEALTH_ENCRYPTION

_USAGES = {
    "tls": ExtendedKeyUsageOID.SERVER_AUTH,
    "signing": DOCUMENT_SIGNING,
    "health-encryption": HEALTH_ENCRYPTION,
}


def _issued_for(path: Path, purpose: str) -> x509.Certificate:
    """The certificate in `path`, refused unless it was issued for `purpose` (its extended
    key usage): a signing certificate pinned as a TLS one would lock its authority out."""
    cert = load_certificate(path)
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if _USAGES[purpose] not in usages:
        raise DirectoryError(f"{path} is not a {purpose} certificate (its extended key usage)")
    return cert


def _pins(paths: list[Path] | None, purpose: str) -> frozenset[str]:
    return frozenset(fingerprint(_issued_for(p, purpose)) for p in paths or ())


def _pems(paths: list[Path] | None) -> tuple[str, ...]:
    return tuple(
        _issued_for(p, "health-encryption").public_bytes(serialization.Encoding.PEM).decode()
        for p in paths or ()
    )


def _unpin(values: list[str] | None) -> frozenset[str]:
    """Fingerprints to remove, given as certificate files or as the fingerprints themselves."""
    out = set()
    for value in values or ():
        path = Path(value)
        out.add(fingerprint(load_certificate(path)) if path.exists() else value.lower())
    return frozenset(out)


def _save(source: Path, before: Directory, authorities: list[Authority], what: str) -> None:
    directory = Directory.of(authorities, before.version + 1)
    for authority in directory.authorities.values():
        authority.check()
    save_directory(source, directory)
    print(f"{what}; {source} is now version {directory.version}")
    print(f"next: gateway pki directory publish --source {source} --out directory.xml ...")


def _cmd_add(args: argparse.Namespace) -> int:
    directory = load_directory(args.source)
    if directory.get(args.code) is not None:
        raise DirectoryError(f"{args.code} is already in {args.source}: use update")
    authority = Authority(
        code=args.code,
        member_state=args.code[:2],
        name=args.name,
        time_zone=args.time_zone,
        endpoint=args.endpoint,
        roles=frozenset(args.role or ROLES),
        tls_fingerprints=_pins(args.tls_cert, "tls"),
        signing_fingerprints=_pins(args.signing_cert, "signing"),
        health_encryption_certificates=_pems(args.health_cert),
    )
    _save(
        args.source,
        directory,
        [*directory.authorities.values(), authority],
        f"added {args.code}",
    )
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    directory = load_directory(args.source)
    current = directory.get(args.code)
    if current is None:
        raise DirectoryError(f"{args.code} is not in {args.source}: use add")
    health = [
        pem
        for pem in current.health_encryption_certificates
        if fingerprint(x509.load_pem_x509_certificate(pem.encode())) not in _unpin(args.unpin)
    ]
    updated = replace(
        current,
        name=args.name or current.name,
        time_zone=args.time_zone or current.time_zone,
        endpoint=args.endpoint or current.endpoint,
        roles=frozenset(args.role) if args.role else current.roles,
        tls_fingerprints=(current.tls_fingerprints | _pins(args.tls_cert, "tls"))
        - _unpin(args.unpin),
        signing_fingerprints=(current.signing_fingerprints | _pins(args.signing_cert, "signing"))
        - _unpin(args.unpin),
        health_encryption_certificates=tuple(dict.fromkeys([*health, *_pems(args.health_cert)])),
    )
    if updated == current:
        raise ValueError("nothing to change: give a certificate to pin, --unpin, or a field")
    others = [a for a in directory.authorities.values() if a.code != args.code]
    _save(args.source, directory, [*others, updated], f"updated {args.code}")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    directory = load_directory(args.source)
    if directory.get(args.code) is None:
        raise DirectoryError(f"{args.code} is not in {args.source}")
    others = [a for a in directory.authorities.values() if a.code != args.code]
    _save(args.source, directory, others, f"removed {args.code}")
    return 0


def add_edit_commands(directory_sub: Any) -> None:
    """`add`, `update` and `remove` under `gateway pki directory`."""
    add = directory_sub.add_parser("add", help="add an authority from its issued certificates")
    update = directory_sub.add_parser(
        "update", help="pin more certificates (a renewal), unpin old ones, change a field"
    )
    remove = directory_sub.add_parser("remove", help="remove an authority")
    for parser in (add, update, remove):
        parser.add_argument("--source", type=Path, required=True, help="the directory JSON")
        parser.add_argument("--code", required=True, help="the authority, e.g. NL-DU")
    for parser, required in ((add, True), (update, False)):
        parser.add_argument("--name", required=required, help="e.g. 'Dublin unit of ...'")
        parser.add_argument("--time-zone", required=required, help="IANA, e.g. Europe/Rome")
        parser.add_argument("--endpoint", required=required, help="https://host:port")
        parser.add_argument("--role", action="append", choices=ROLES, help="repeat; add: all")
        parser.add_argument("--tls-cert", type=Path, action="append", required=required)
        parser.add_argument("--signing-cert", type=Path, action="append", required=required)
        parser.add_argument("--health-cert", type=Path, action="append")
    update.add_argument(
        "--unpin", action="append", help="a certificate file or fingerprint to unpin (repeat)"
    )
    add.set_defaults(func=_cmd_add)
    update.set_defaults(func=_cmd_update)
    remove.set_defaults(func=_cmd_remove)
