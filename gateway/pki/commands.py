"""`gateway pki init | request | issue | renew | revoke | crl | list`: the network operator's
CA and the authorities' key requests (docs/operator.md walks through them)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pki.certs import fingerprint, load_certificate
from gateway.pki.demo import write_certificate
from gateway.pki.operator import (
    REASONS,
    create_request,
    init_ca,
    issue_from_csr,
    issued,
    load_ca,
    load_csr,
    parse_serial,
    publish_crl,
    read_passphrase,
    renew,
    revoke,
    serial_hex,
)
from gateway.pki.purposes import PURPOSES


def _serial(text: str) -> int:
    try:
        return parse_serial(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _passphrase_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--passphrase-file", type=Path, default=None, help="key passphrase file")
    parser.add_argument("--passphrase-env", default=None, help="environment variable holding it")


def _passphrase(args: argparse.Namespace, *, required: bool = True) -> bytes | None:
    return read_passphrase(args.passphrase_file, args.passphrase_env, required=required)


def _cmd_init(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args)
    assert passphrase is not None
    paths = init_ca(
        args.out,
        passphrase,
        name=args.name,
        root_years=args.root_years,
        issuing_years=args.issuing_years,
    )
    print(f"root CA:    {paths.root_cert} (move {paths.root_cert.parent} offline now)")
    print(f"issuing CA: {paths.issuing_cert}")
    print(f"trust bundle for gateways (tls.ca): {paths.bundle}")
    print(f"CRL for gateways (tls.crl): {paths.crl}")
    return 0


def _cmd_request(args: argparse.Namespace) -> int:
    key, csr = create_request(
        args.out,
        args.authority,
        args.purpose,
        sans=args.san,
        passphrase=_passphrase(args, required=False),
    )
    print(f"private key (keep it here, never send it): {key}")
    print(f"certificate signing request (send it to the operator): {csr}")
    return 0


def _written(cert_path: Path, cert: Any) -> None:
    write_certificate(cert_path, cert)
    print(f"certificate: {cert_path}")
    print(f"serial:      {serial_hex(cert.serial_number)}")
    print(f"fingerprint: {fingerprint(cert)}  (pin this in the directory)")
    print(f"valid until: {cert.not_valid_after_utc.isoformat()}")


def _cmd_issue(args: argparse.Namespace) -> int:
    ca = load_ca(args.ca, _passphrase(args, required=False))
    cert = issue_from_csr(
        ca,
        load_csr(args.csr),
        args.purpose,
        args.authority,
        sans=args.san or None,
        days=args.days,
    )
    _written(args.out, cert)
    return 0


def _cmd_renew(args: argparse.Namespace) -> int:
    ca = load_ca(args.ca, _passphrase(args, required=False))
    old = load_certificate(args.replaces)
    cert = renew(ca, load_csr(args.csr), old, days=args.days)
    _written(args.out, cert)
    print(
        f"replaces:    {fingerprint(old)}; publish a directory pinning BOTH until every "
        "gateway runs the new one, then revoke the old (`gateway pki revoke`)"
    )
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    ca = load_ca(args.ca, _passphrase(args, required=False))
    serial = args.serial if args.serial is not None else load_certificate(args.cert).serial_number
    crl = revoke(ca, serial, args.reason)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    print(
        f"revoked serial {serial_hex(serial)} ({args.reason}); CRL {ca.paths.crl} "
        f"republished (#{number})"
    )
    return 0


def _cmd_crl(args: argparse.Namespace) -> int:
    ca = load_ca(args.ca, _passphrase(args, required=False))
    crl = publish_crl(ca, days=args.days, out=args.out)
    out = args.out or ca.paths.crl
    revoked = sum(1 for _ in crl)
    pem = crl.public_bytes(serialization.Encoding.PEM)
    print(f"CRL written to {out}: {revoked} revoked, next update {crl.next_update_utc}")
    print(f"({len(pem)} bytes; gateways pick it up on their next check or on SIGHUP)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    records = issued(args.ca)
    if args.format == "json":
        print(json.dumps([r | {"serial": serial_hex(r["serial"])} for r in records], indent=2))
        return 0
    print(f"{'serial':>40}  {'authority':10} {'purpose':18} {'state':8} {'days':>5}  fingerprint")
    for r in records:
        print(
            f"{serial_hex(r['serial']):>40}  {r['authority'] or '-':10} {r['purpose']:18} "
            f"{r['state']:8} {r['days_left']:>5}  {r['fingerprint'][:16]}..."
        )
    return 0


def register_operator_commands(pki_sub: Any) -> None:
    """Add the operator's commands under `gateway pki`."""
    init = pki_sub.add_parser("init", help="create the network root and issuing CAs")
    init.add_argument("--out", type=Path, required=True, help="CA folder to create")
    init.add_argument("--name", default="Dublin network")
    init.add_argument("--root-years", type=int, default=20)
    init.add_argument("--issuing-years", type=int, default=5)
    _passphrase_options(init)
    init.set_defaults(func=_cmd_init)

    request = pki_sub.add_parser(
        "request", help="(authority side) create a key and a certificate signing request"
    )
    request.add_argument("--authority", default=None, help="e.g. BE-DU")
    request.add_argument("--purpose", choices=PURPOSES, required=True)
    request.add_argument("--out", type=Path, required=True, help="folder for key and CSR")
    request.add_argument("--san", action="append", default=[], help="TLS name or IP (repeat)")
    _passphrase_options(request)
    request.set_defaults(func=_cmd_request)

    issue = pki_sub.add_parser("issue", help="issue a certificate from an authority's CSR")
    issue.add_argument("--ca", type=Path, required=True)
    issue.add_argument("--csr", type=Path, required=True)
    issue.add_argument("--purpose", choices=PURPOSES, required=True)
    issue.add_argument("--authority", default=None)
    issue.add_argument("--san", action="append", default=[])
    issue.add_argument("--days", type=int, default=365)
    issue.add_argument("--out", type=Path, required=True)
    _passphrase_options(issue)
    issue.set_defaults(func=_cmd_issue)

    renew_p = pki_sub.add_parser("renew", help="issue the successor of a certificate (new key)")
    renew_p.add_argument("--ca", type=Path, required=True)
    renew_p.add_argument("--csr", type=Path, required=True, help="request for the NEW key")
    renew_p.add_argument("--replaces", type=Path, required=True, help="the old certificate")
    renew_p.add_argument("--days", type=int, default=365)
    renew_p.add_argument("--out", type=Path, required=True)
    _passphrase_options(renew_p)
    renew_p.set_defaults(func=_cmd_renew)

    revoke_p = pki_sub.add_parser("revoke", help="revoke a certificate and republish the CRL")
    revoke_p.add_argument("--ca", type=Path, required=True)
    which = revoke_p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--serial", type=_serial, help="in hexadecimal, as `gateway pki list` shows it"
    )
    which.add_argument("--cert", type=Path)
    revoke_p.add_argument("--reason", choices=sorted(REASONS), default="unspecified")
    _passphrase_options(revoke_p)
    revoke_p.set_defaults(func=_cmd_revoke)

    crl = pki_sub.add_parser("crl", help="publish a fresh CRL")
    crl.add_argument("--ca", type=Path, required=True)
    crl.add_argument("--days", type=int, default=7, help="until the next update")
    crl.add_argument("--out", type=Path, default=None)
    _passphrase_options(crl)
    crl.set_defaults(func=_cmd_crl)

    listing = pki_sub.add_parser("list", help="certificates issued, with their state")
    listing.add_argument("--ca", type=Path, required=True)
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(func=_cmd_list)
