"""`gateway users add|remove|list`: the named users (principals) of a gateway's internal API,
in its tokens file (docs/users.md). A new user's token is printed once, by `add`, and stored
only as its hash; the file is replaced atomically and stays mode 0600, and a running gateway
picks the change up within `api.tokens_reload_seconds` (or at once on SIGHUP)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.core.principals import (
    Principal,
    TokensError,
    check_name,
    check_roles,
    hash_token,
    new_token,
)
from gateway.core.roles import ROLES
from gateway.service.principals import editing, read_tokens_file, write_tokens_file


def _read(path: Path, *, missing_ok: bool = False) -> tuple[Principal, ...]:
    if missing_ok and not path.exists():
        return ()
    return read_tokens_file(path)


def cmd_add(args: argparse.Namespace) -> int:
    path: Path = args.tokens_file
    name = check_name(args.name, "NAME")
    roles = check_roles(args.role, "--role")
    token = new_token()
    with editing(path):
        principals = _read(path, missing_ok=True)
        if any(p.name == name for p in principals):
            raise TokensError(f"{path}: the principal {name!r} exists; remove it first")
        write_tokens_file(path, (*principals, Principal(name, roles, hash_token(token), "file")))
    print(
        f"added {name} ({', '.join(roles)}) to {path}; its token, shown this once:",
        file=sys.stderr,
    )
    print(token)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path: Path = args.tokens_file
    with editing(path):
        principals = _read(path)
        kept = tuple(p for p in principals if p.name != args.name)
        if len(kept) == len(principals):
            raise TokensError(f"{path}: no principal named {args.name!r}")
        write_tokens_file(path, kept)
    print(f"removed {args.name} from {path}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    principals = sorted(_read(args.tokens_file), key=lambda p: p.name)
    if args.json:
        print(json.dumps([{"name": p.name, "roles": list(p.roles)} for p in principals]))
    else:
        for p in principals:
            print(f"{p.name}\t{','.join(p.roles)}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="named users of the internal API (tokens file)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    tokens_help = "the tokens file (api.tokens_file; created by the first add, mode 0600)"

    add = users_sub.add_parser(
        "add", help="add a user and print its new token (shown only this once)"
    )
    add.add_argument("name", metavar="NAME", help="lower-case name the register records")
    add.add_argument(
        "--role",
        action="append",
        required=True,
        choices=ROLES,
        help="a role the user holds (repeat for several)",
    )
    add.add_argument("--tokens-file", type=Path, required=True, help=tokens_help)
    add.set_defaults(func=cmd_add)

    remove = users_sub.add_parser("remove", help="remove a user (its token stops working)")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--tokens-file", type=Path, required=True, help=tokens_help)
    remove.set_defaults(func=cmd_remove)

    listing = users_sub.add_parser("list", help="the users and their roles (never tokens)")
    listing.add_argument("--tokens-file", type=Path, required=True, help=tokens_help)
    listing.add_argument("--json", action="store_true", help="a JSON list instead of lines")
    listing.set_defaults(func=cmd_list)
