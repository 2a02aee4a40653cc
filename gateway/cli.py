"""`gateway ...` commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import uvloop

from gateway.cli_init import add_parsers as add_init_parsers
from gateway.cli_outbox import add_parsers as add_outbox_parsers
from gateway.cli_rules import add_parsers as add_rule_parsers
from gateway.cli_users import add_parsers as add_user_parsers
from gateway.config import ConfigError, load_config
from gateway.core.directory import DirectoryError
from gateway.doctor import add_doctor_command
from gateway.logs import configure_logging
from gateway.pki.certs import CertificateError
from gateway.pki.commands import register_operator_commands
from gateway.pki.directory_edit import add_edit_commands


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.app import serve

    config = load_config(args.config)
    # uvloop: the same asyncio API on libuv, with less overhead per event and per socket
    # read and write (measured: 10-15% less CPU per message for the whole gateway).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config))
    return 0


def _cmd_pki_demo(args: argparse.Namespace) -> int:
    from gateway.pki.demo import create_demo_network
    from gateway.pki.operator import rehearsable

    codes = [c.strip() for c in args.authorities.split(",") if c.strip()]
    if not codes:
        raise ConfigError("--authorities needs at least one code, e.g. BE-DU,NL-DU")
    network = create_demo_network(args.out, codes)
    rehearsable(network)  # the operator's commands work on it (docs/operator.md)
    print(f"network CA: {network.ca_cert}")
    for code, files in network.authorities.items():
        print(f"{code}: TLS {files.tls_cert}, signing {files.signing_cert}")
    print(f"directory: {network.directory}")
    return 0


def _cmd_directory_publish(args: argparse.Namespace) -> int:
    """Sign the operator's directory JSON and publish it where gateways watch for it."""
    from datetime import UTC, datetime

    from gateway.pki.anchors import TrustAnchors
    from gateway.pki.directory_file import load_directory
    from gateway.pki.operator import read_passphrase
    from gateway.pki.signed_directory import load_signed_directory, publish_directory
    from gateway.service.trust import load_signer_files

    directory = load_directory(args.source)
    now = datetime.now(UTC)
    if args.out.exists() and args.ca:
        current = load_signed_directory(args.out, TrustAnchors.load(args.ca), now).version
        if directory.version <= current:
            raise DirectoryError(
                f"{args.source} has version {directory.version}, but {args.out} already "
                f"publishes version {current}; gateways refuse anything not newer: raise "
                "'version' in the source and publish again"
            )
    passphrase = read_passphrase(args.passphrase_file, args.passphrase_env, required=False)
    signer = load_signer_files(args.cert, args.key, passphrase)
    publish_directory(args.out, directory, signer, now)
    print(
        f"published directory version {directory.version} "
        f"({len(directory.authorities)} authorities) to {args.out}"
    )
    return 0


def _cmd_deletion_order(args: argparse.Namespace) -> int:
    """The operator's order to delete operational items that breach the rules, signed with
    the directory publisher's key; gateways apply it from their orders folder or an upload."""
    from datetime import UTC, datetime

    from gateway.pki.deletion_orders import sign_deletion_order
    from gateway.pki.directory_file import atomic_write
    from gateway.pki.operator import read_passphrase
    from gateway.service.trust import load_signer_files

    passphrase = read_passphrase(args.passphrase_file, args.passphrase_env, required=False)
    signer = load_signer_files(args.publisher_cert, args.publisher_key, passphrase)
    data = sign_deletion_order(args.item, args.reason, signer, datetime.now(UTC))
    atomic_write(args.out, data, mode=0o644)
    print(f"deletion order for {len(args.item)} item(s) written to {args.out}")
    return 0


def _cmd_directory_show(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from gateway.pki.anchors import Revocations, TrustAnchors
    from gateway.pki.certs import fingerprint
    from gateway.pki.signed_directory import load_signed_directory

    anchors = TrustAnchors.load(args.ca)
    now = datetime.now(UTC)
    crl = Revocations.load(args.crl, anchors, now) if args.crl else None
    signed = load_signed_directory(args.directory, anchors, now, crl)
    print(
        json.dumps(
            {
                "verified": True,
                "version": signed.version,
                "published": signed.published.isoformat(),
                "publisher": fingerprint(signed.publisher),
                "sha256": signed.sha256,
            }
            | signed.directory.to_dict(),
            indent=2,
        )
    )
    return 0


def _cmd_health_open(args: argparse.Namespace) -> int:
    from gateway.service.health import open_transmission, print_opened

    form = open_transmission(args.transmission.read_bytes(), args.cert, args.key)
    if args.out is None:
        print(print_opened(form))
        return 0
    from gateway.pki.directory_file import atomic_write

    # Health data (Art. 39): the practitioner's alone, whatever the umask; a shell
    # redirection would create the file with the umask's mode.
    atomic_write(args.out, (print_opened(form) + "\n").encode("utf-8"), mode=0o600)
    print(f"wrote the opened health certificate to {args.out} (mode 0600)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    def say(line: str) -> None:
        print(line, flush=True)

    return asyncio.run(
        run_demo(args.workdir, args.keep_running, say, time_travel=not args.no_time_travel)
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from gateway.pki.directory_file import atomic_write
    from gateway.store.store import Store

    config = load_config(args.config)

    async def fetch() -> bytes | None:
        store = await Store.open(config.database_url)
        try:
            msg = await store.messages.get(args.message_id)
        finally:
            await store.close()
        if msg is None:
            raise LookupError(f"no message {args.message_id} in {config.authority}'s store")
        return msg.signed_xml

    data = asyncio.run(fetch())
    if data is None:
        raise LookupError(f"the payload of {args.message_id} has been erased")
    out: Path = args.out
    atomic_write(out, data, mode=0o600)  # personal data: the form and its attachments
    print(f"wrote {len(data)} bytes to {out} (exactly as signed)")
    return 0


def _cmd_register_verify(args: argparse.Namespace) -> int:
    """Chain, head, signed checkpoints and every peer witness; the peers' bundles that count
    are kept, so the gateway holds their witnesses (the auditor page checks them too)."""
    from datetime import UTC, datetime

    from gateway.core.pins import PinHistory
    from gateway.core.register import RegisterChainError
    from gateway.pki.anchors import Revocations, TrustAnchors
    from gateway.pki.signed_directory import directory_pins
    from gateway.service.audit import Signers, held_witnesses, overdue_checkpoint, verify_store
    from gateway.service.bundles import BundleError, witnesses_in_bundle
    from gateway.store.store import Store

    config = load_config(args.config)
    now = datetime.now(UTC)
    anchors = TrustAnchors.load(config.ca_cert)
    revocations = None if config.crl is None else Revocations.load(config.crl, anchors, now)
    current = directory_pins(config.directory, anchors)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            width = 30
            filled = width * done // max(total, 1)
            print(
                f"\rverifying [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    async def run() -> int:
        store = await Store.open(config.database_url)
        try:
            pins = PinHistory([*await store.trust.pin_history(), current])
            signers = Signers(anchors, pins, revocations)
            for bundle in args.witnesses:
                try:
                    data = bundle.read_bytes()
                except OSError as exc:
                    raise LookupError(f"cannot read {bundle}: {exc.strerror}") from exc
                try:
                    bundled, found = witnesses_in_bundle(data, signers, config.authority)
                except BundleError as exc:
                    print(f"witness bundle {bundle}: does not count: {exc}")
                    continue
                async with store.transaction() as tx:
                    await tx.register.record_witnesses([w.to_row(now) for w in found])
                print(
                    f"witness bundle {bundle}: {bundled.authority}'s register (signed "
                    f"{bundled.exported.isoformat()}), {len(found)} heads of ours"
                )
            witnesses = await held_witnesses(store)
            report = await verify_store(
                store,
                config.authority,
                list(anchors.certificates),
                progress,
                witnesses,
                pins=pins,
                revocations=revocations,
            )
        except RegisterChainError as exc:
            if tty:
                print(file=sys.stderr)
            print(
                f"register of {config.authority}: NOT intact: sequence {exc.sequence}: {exc.reason}"
            )
            return 1
        finally:
            await store.close()
        if tty:
            print(file=sys.stderr)
        print(
            f"register of {config.authority}: intact: {report.entries:,} entries, head "
            f"#{report.head_sequence} {report.head_hash}, {report.checkpoints} signed "
            f"checkpoints, {report.witnesses} peer witnesses\ncovered: {report.coverage()}"
        )
        overdue = overdue_checkpoint(report, config.register.checkpoint_every)
        if overdue is not None:
            print(f"warning: {overdue}")
        return 0

    return asyncio.run(run())


def _cmd_register_query(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime

    from gateway.core.register import RegisterEntry
    from gateway.service.audit import entries_csv
    from gateway.store.store import Store

    config = load_config(args.config)

    def instant(text: str | None, name: str) -> datetime | None:
        if text is None:
            return None
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"--{name} needs a UTC offset")
        return moment

    async def fetch() -> list[RegisterEntry]:
        store = await Store.open(config.database_url)
        try:
            return await store.register.query(
                reference=args.reference,
                message_id=args.message_id,
                peer=args.peer,
                message_type=args.type,
                direction=args.direction,
                status=args.status,
                event=args.event,
                since=instant(args.since, "since"),
                until=instant(args.until, "until"),
                limit=args.limit,
            )
        finally:
            await store.close()

    entries = asyncio.run(fetch())
    if args.format == "json":
        print(json.dumps([e.to_dict() for e in entries], indent=2))
    elif args.format == "csv":
        sys.stdout.write(entries_csv(entries))
    else:
        shown = [
            "sequence",
            "time",
            "event",
            "direction",
            "peer",
            "message_type",
            "reference",
            "status",
            "reason",
        ]
        cells = [[str(e.to_dict().get(c) or "") for c in shown] for e in entries]
        widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(shown)]
        print("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)))
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
    return 0


def _cmd_register_export(args: argparse.Namespace) -> int:
    from gateway.context import load_signer
    from gateway.pki.directory_file import atomic_write
    from gateway.service.bundles import export_bundle
    from gateway.store.store import Store

    config = load_config(args.config)
    signer = load_signer(config)

    async def run() -> bytes:
        store = await Store.open(config.database_url)
        try:
            return await export_bundle(store, config.authority, signer, args.first, args.last)
        finally:
            await store.close()

    data = asyncio.run(run())
    atomic_write(args.out, data, mode=0o600)  # who exchanged what with whom, by reference
    print(f"wrote register bundle {args.out} ({len(data):,} bytes)")
    return 0


def _cmd_register_verify_bundle(args: argparse.Namespace) -> int:
    from gateway.core.pins import PinHistory
    from gateway.pki.anchors import TrustAnchors
    from gateway.pki.signed_directory import directory_pins
    from gateway.service.audit import Signers
    from gateway.service.bundles import BundleError, verify_bundle

    try:
        data = args.bundle.read_bytes()
    except OSError as exc:
        raise LookupError(f"cannot read {args.bundle}: {exc.strerror}") from exc
    anchors = TrustAnchors.load(args.ca)
    pins = PinHistory(directory_pins(path, anchors) for path in args.directory)
    try:
        report = verify_bundle(data, Signers(anchors, pins))
    except BundleError as exc:
        print(f"bundle {args.bundle}: NOT valid: {exc}")
        return 1
    print(
        f"bundle {args.bundle}: valid: register of {report.authority}, entries "
        f"{report.first}-{report.last}, {report.checkpoints} signed checkpoints; signed "
        f"{report.exported.isoformat()} by {report.authority}'s pinned signing certificate "
        f"{report.signer}"
    )
    if report.case is not None:
        print(
            f"case {report.case}: {len(report.marked)} of the entries are filed under it: "
            + ", ".join(str(n) for n in report.marked)
        )
    return 0


def _version() -> str:
    """The installed distribution's version: pyproject.toml is the one place it is written."""
    try:
        return metadata.version("dublin-gateway")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Secure messaging gateway of a Dublin unit (signed forms over mutual TLS).",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-json", action="store_true", help="JSON logs even on a terminal")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a gateway")
    serve.add_argument("--config", type=Path, required=True, help="gateway TOML file")
    serve.set_defaults(func=_cmd_serve)

    pki = sub.add_parser("pki", help="certificates and the authority directory")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    demo_pki = pki_sub.add_parser("demo", help="create a demo network CA, certificates, directory")
    demo_pki.add_argument("--out", type=Path, required=True, help="folder to create")
    demo_pki.add_argument(
        "--authorities", default="BE-DU,NL-DU,GR-DU", help="comma-separated authority codes"
    )
    demo_pki.set_defaults(func=_cmd_pki_demo)
    register_operator_commands(pki_sub)
    directory = pki_sub.add_parser("directory", help="publish or check the signed directory")
    directory_sub = directory.add_subparsers(dest="directory_command", required=True)
    publish = directory_sub.add_parser(
        "publish", help="sign the directory JSON with the publisher key (Art. 41)"
    )
    publish.add_argument("--source", type=Path, required=True, help="the directory JSON")
    publish.add_argument("--cert", type=Path, required=True, help="publisher certificate")
    publish.add_argument("--key", type=Path, required=True, help="publisher private key")
    publish.add_argument("--out", type=Path, required=True, help="signed file gateways load")
    publish.add_argument(
        "--ca", type=Path, default=None, help="CA bundle: refuse to publish an older version"
    )
    publish.add_argument("--passphrase-file", type=Path, default=None)
    publish.add_argument("--passphrase-env", default=None)
    publish.set_defaults(func=_cmd_directory_publish)
    show = directory_sub.add_parser("show", help="verify a signed directory and print it")
    show.add_argument("directory", type=Path)
    show.add_argument("--ca", type=Path, required=True, help="network CA bundle")
    show.add_argument("--crl", type=Path, default=None)
    show.set_defaults(func=_cmd_directory_show)
    add_edit_commands(directory_sub)
    order = pki_sub.add_parser(
        "deletion-order", help="sign an order to delete operational items (the operator)"
    )
    order.add_argument("--item", action="append", required=True, help="an item id (repeat)")
    order.add_argument("--reason", required=True, help="why the items breach the rules")
    order.add_argument("--publisher-cert", type=Path, required=True, help="publisher cert")
    order.add_argument("--publisher-key", type=Path, required=True, help="publisher key")
    order.add_argument("--out", type=Path, required=True, help="the signed order file")
    order.add_argument("--passphrase-file", type=Path, default=None)
    order.add_argument("--passphrase-env", default=None)
    order.set_defaults(func=_cmd_deletion_order)

    health = sub.add_parser("health", help="health practitioners: open a health certificate")
    health_sub = health.add_subparsers(dest="health_command", required=True)
    open_cmd = health_sub.add_parser(
        "open", help="decrypt a sealed Art. 39 health certificate with the practitioner's key"
    )
    open_cmd.add_argument("transmission", type=Path, help="the transmission (gateway export)")
    open_cmd.add_argument("--cert", type=Path, required=True, help="encryption certificate")
    open_cmd.add_argument("--key", type=Path, required=True, help="the practitioner's key")
    open_cmd.add_argument(
        "--out", type=Path, default=None, help="write it to this file (mode 0600), not stdout"
    )
    open_cmd.set_defaults(func=_cmd_health_open)

    demo = sub.add_parser("demo", help="run three gateways and a take charge exchange")
    demo.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    demo.add_argument(
        "--keep-running", action="store_true", help="stay up after the exchange (Ctrl-C stops)"
    )
    demo.add_argument(
        "--no-time-travel",
        action="store_true",
        help="skip the deemed acceptance, which moves two gateways' clocks 40 days ahead",
    )
    demo.set_defaults(func=_cmd_demo)

    add_rule_parsers(sub)

    register = sub.add_parser("register", help="the transmission register (Art. 40(9))")
    register_sub = register.add_subparsers(dest="register_command", required=True)
    verify = register_sub.add_parser("verify", help="check chain, head and signed checkpoints")
    verify.add_argument("--config", type=Path, required=True)
    verify.add_argument(
        "--witnesses",
        type=Path,
        nargs="*",
        default=[],
        help="peers' register bundles: the heads of ours they witnessed must be in our chain "
        "(the bundles that count are kept: the auditor page checks them too)",
    )
    verify.set_defaults(func=_cmd_register_verify)
    query = register_sub.add_parser("query", help="list register entries")
    query.add_argument("--config", type=Path, required=True)
    for name in (
        "reference",
        "message-id",
        "peer",
        "type",
        "direction",
        "status",
        "event",
        "since",
        "until",
    ):
        query.add_argument(f"--{name}", default=None)
    query.add_argument("--limit", type=int, default=1000)
    query.add_argument("--format", choices=["table", "json", "csv"], default="table")
    query.set_defaults(func=_cmd_register_query)
    export_bundle = register_sub.add_parser("export", help="write a signed offline bundle")
    export_bundle.add_argument("--config", type=Path, required=True)
    export_bundle.add_argument("--out", type=Path, required=True)
    export_bundle.add_argument("--from", dest="first", type=int, default=1)
    export_bundle.add_argument("--to", dest="last", type=int, default=None)
    export_bundle.set_defaults(func=_cmd_register_export)
    verify_bundle = register_sub.add_parser("verify-bundle", help="check a bundle offline")
    verify_bundle.add_argument("bundle", type=Path)
    verify_bundle.add_argument("--ca", type=Path, required=True, help="network CA certificate")
    verify_bundle.add_argument(
        "--directory",
        type=Path,
        nargs="+",
        required=True,
        help="signed directory files (every version since the bundle was signed): which "
        "signing certificates were pinned for which authority when",
    )
    verify_bundle.set_defaults(func=_cmd_register_verify_bundle)

    add_doctor_command(sub)
    add_outbox_parsers(sub)
    add_init_parsers(sub)
    add_user_parsers(sub)

    export = sub.add_parser("export", help="write a stored transmission exactly as signed")
    export.add_argument("--config", type=Path, required=True)
    export.add_argument("--message-id", required=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=_cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json=True if args.log_json else None)
    try:
        result: int = args.func(args)
        return result
    except (
        ConfigError,
        DirectoryError,
        CertificateError,
        LookupError,
        FileExistsError,
        ValueError,
    ) as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
