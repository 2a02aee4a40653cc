"""`gateway init --authority CODE --out DIR`: a production configuration skeleton (the file
layout with its modes, where each key and certificate goes, the next commands); `gateway
config check FILE`: whether the configuration and every file it names are usable, without
calling any peer (exit 0), or the list of what is missing or wrong (exit 1); `gateway backup
--config FILE --out FILE`: an online, consistent copy of a SQLite store."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, load_config
from gateway.core.directory import AUTHORITY_CODE
from gateway.doctor import diagnose

SKELETON = """\
# Gateway of {code}: production configuration, written by `gateway init`.
# Relative paths are relative to this file. Every setting is documented in the README
# ("Configuration"); `gateway config check {config}` says what is still missing.
#
# The file layout (owner: the service user, e.g. dublin-gateway):
#   {out}/gateway.toml        0640  this file
#   {out}/keys/               0700  private keys, never leave this machine:
#       tls.key, signing.key  0600  from `gateway pki request` (below)
#   {out}/certs/              0755  certificates, public:
#       ca.pem                      the network CA bundle (issuing CA and root), from the
#                                   network operator
#       crl.pem                     the CA's CRL, from the network operator (optional; set
#                                   [tls] crl when you have one)
#       tls.pem, signing.pem        ours, issued by the network operator from our requests
#   {out}/directory.xml       0644  the signed authority directory, from its publisher
#   {out}/tokens.json         0600  the internal API's named users (`gateway users`)
#   {out}/data/               0700  the SQLite database (unless database_url is set)
#
# Next steps:
#   1. gateway pki request --authority {code} --purpose tls --out {out}/keys --san <host name>
#      gateway pki request --authority {code} --purpose signing --out {out}/keys
#      and send keys/tls.csr and keys/signing.csr (never the keys) to the network operator;
#   2. install what comes back: certs/tls.pem, certs/signing.pem, certs/ca.pem (and
#      certs/crl.pem), and directory.xml;
#   3. gateway users add <name> --role administrator --tokens-file {out}/tokens.json
#      (and a case-officer, an auditor, a health-practitioner as needed);
#   4. gateway config check {config}    (exit 0: ready)
#      gateway doctor --config {config} (also calls every peer);
#   5. run it as a service: docs/deploy.md.

authority = "{code}"
data_dir = "data"
database_url = ""                  # or postgresql+asyncpg://user@host/db (several nodes)
directory = "directory.xml"

[peer]                             # the mTLS listener the other gateways call
host = "0.0.0.0"
port = 8443

[api]                              # the internal API of our case systems: loopback only
host = "127.0.0.1"
port = 8080
tokens_file = "tokens.json"

[tls]
ca = "certs/ca.pem"
crl = ""                           # "certs/crl.pem" once the operator publishes one
cert = "certs/tls.pem"
key = "keys/tls.key"

[signing]
cert = "certs/signing.pem"
key = "keys/signing.key"

[deadlines]
legal_basis = "2024-1351"
"""


def _cmd_init(args: argparse.Namespace) -> int:
    code: str = args.authority
    if not AUTHORITY_CODE.match(code):
        raise ConfigError(f"--authority: {code!r} is not an authority code such as BE-DU")
    out: Path = args.out
    config = out / "gateway.toml"
    if config.exists():
        raise FileExistsError(f"{config} exists: gateway init never overwrites a configuration")
    for folder, mode in ((out, 0o750), (out / "keys", 0o700), (out / "certs", 0o755)):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    (out / "data").mkdir(exist_ok=True)
    (out / "data").chmod(0o700)
    text = SKELETON.format(code=code, out=out, config=config)
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {config} (mode 0640) and the folders keys/ (0700), certs/, data/ (0700)")
    print("next steps are at the top of the file; then run:")
    print(f"  gateway config check {config}")
    return 0


_MARK = {"warning": "WARN", "error": "FAIL"}


def _cmd_check(args: argparse.Namespace) -> int:
    findings = asyncio.run(diagnose(args.file, call_peers=False))
    problems = [f for f in findings if f.status != "ok"]
    for f in problems:
        print(f"{_MARK[f.status]} {f.check}: {f.message}")
        if f.fix:
            print(f"     fix: {f.fix}")
    errors = sum(f.status == "error" for f in problems)
    if errors:
        print(f"\n{args.file}: {errors} problem(s) to fix before the gateway can start")
        return 1
    print(
        f"{args.file}: usable ({len(problems)} warning(s)); `gateway doctor` also calls the peers"
    )
    return 0


def _cmd_backup(args: argparse.Namespace) -> int:
    """SQLite's online backup API: a consistent copy while the gateway runs (a reader that
    copies the pages of one snapshot, WAL included), written beside the target and renamed
    into place, mode 0600 (it holds personal data). PostgreSQL is backed up with pg_dump."""
    config = load_config(args.config)
    url = config.database_url
    if not url.startswith("sqlite"):
        raise ConfigError(
            "the store is on PostgreSQL: back it up with pg_dump (docs/operator.md, 'Back up')"
        )
    source_path = Path(url.split(":///", 1)[1])
    if not source_path.exists():
        raise LookupError(f"no store at {source_path}: has the gateway ever started?")
    out: Path = args.out
    if out.exists():
        raise FileExistsError(f"{out} exists: choose a new file name")
    partial = out.with_name(out.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(descriptor)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    target = sqlite3.connect(partial)
    try:
        source.backup(target, pages=1024)
        check = target.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise ValueError(f"the copy fails SQLite's integrity check: {check}")
    finally:
        target.close()
        source.close()
    os.replace(partial, out)
    print(f"wrote a consistent copy of {source_path} to {out} (mode 0600)")
    print(f"check it any time with: gateway register verify --config <a config naming {out}>")
    return 0


def add_parsers(sub: Any) -> None:
    init = sub.add_parser("init", help="write a production configuration skeleton")
    init.add_argument("--authority", required=True, help="our authority code, e.g. BE-DU")
    init.add_argument("--out", type=Path, required=True, help="folder to create")
    init.set_defaults(func=_cmd_init)
    config = sub.add_parser("config", help="the configuration file")
    actions = config.add_subparsers(dest="config_command", required=True)
    check = actions.add_parser(
        "check", help="is the configuration, and every file it names, usable (no peer called)"
    )
    check.add_argument("file", type=Path, help="gateway TOML file")
    check.set_defaults(func=_cmd_check)
    backup = sub.add_parser("backup", help="an online, consistent copy of a SQLite store")
    backup.add_argument("--config", type=Path, required=True, help="gateway TOML file")
    backup.add_argument("--out", type=Path, required=True, help="the copy (a new file)")
    backup.set_defaults(func=_cmd_backup)
