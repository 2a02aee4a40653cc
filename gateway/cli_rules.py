"""`gateway deadline` and `gateway rules show`: the legal bases' time limits, from their rule
packs, for a Dublin unit to check a date or read the rules with their articles, verified
flags and sources."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.core.deadlines import DeadlineError, available_rule_sets, load_rule_set
from gateway.core.rule_docs import pack_json, pack_markdown

DEFAULT_BASIS = "2024-1351"
"""The law in force: Regulation (EU) 2024/1351 (since the cut-over of June 2026)."""


def _instant(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DeadlineError(f"--from {text!r} is not an ISO 8601 instant") from exc
    if start.tzinfo is None:
        raise DeadlineError(f"--from {text!r} has no UTC offset (e.g. +01:00 or Z)")
    return start


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DeadlineError(f"--tz {name!r} is not an IANA time zone") from exc


def cmd_deadline(args: argparse.Namespace) -> int:
    start = _instant(args.start)
    zone = _zone(args.tz)
    requested = None
    if args.requested is not None:
        try:
            requested = date.fromisoformat(args.requested)
        except ValueError as exc:
            raise DeadlineError(f"--requested {args.requested!r} is not a date") from exc
    rules = load_rule_set(args.legal_basis)
    deadline = rules.deadline(args.rule, start, zone, state=args.state, requested=requested)
    rule = rules.rule(args.rule)
    out: dict[str, object] = {
        "rule": deadline.rule,
        "legal_basis": rules.name,
        "article": rule.article,
        "due_date": deadline.due_date.isoformat(),
        "expires_at": deadline.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verified": rule.verified,
    }
    if deadline.requested_date is not None:
        out["requested_date"] = deadline.requested_date.isoformat()
    print(json.dumps(out))
    return 0


def cmd_rules_show(args: argparse.Namespace) -> int:
    rules = load_rule_set(args.legal_basis)
    if args.format == "json":
        print(json.dumps(pack_json(rules), indent=2, ensure_ascii=False))
    else:
        print(pack_markdown(rules), end="")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bases = ", ".join(available_rule_sets())
    deadline = sub.add_parser(
        "deadline",
        help="compute a time limit of a legal basis",
        description="When silence takes effect for one rule of a legal basis: prints "
        '{"rule", "legal_basis", "article", "due_date", "expires_at", "verified"} '
        '(and "requested_date" where an urgent request asked for a date).',
    )
    deadline.add_argument("rule", help="rule name, e.g. take_charge_reply")
    deadline.add_argument(
        "--from", dest="start", required=True, help="the event instant, ISO 8601 with offset"
    )
    deadline.add_argument("--tz", required=True, help="IANA zone of the authority that acts")
    deadline.add_argument(
        "--state",
        default=None,
        help="ISO 3166-1 alpha-2 code of the acting State whose official holidays count "
        "(GR for Greece; EL accepted); required where the basis rolls a limit over to the "
        "next working day",
    )
    deadline.add_argument("--requested", default=None, help="requested reply date (urgent)")
    deadline.add_argument(
        "--legal-basis", default=DEFAULT_BASIS, help=f"one of {bases} (default {DEFAULT_BASIS})"
    )
    deadline.set_defaults(func=cmd_deadline)

    rules = sub.add_parser("rules", help="the legal bases' rule packs")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    show = rules_sub.add_parser(
        "show", help="a legal basis's limits with articles, verified flags and sources"
    )
    show.add_argument(
        "--legal-basis", default=DEFAULT_BASIS, help=f"one of {bases} (default {DEFAULT_BASIS})"
    )
    show.add_argument("--format", choices=("md", "json"), default="md")
    show.set_defaults(func=cmd_rules_show)
