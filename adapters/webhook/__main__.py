"""`gateway-webhook-adapter` (or `python -m adapters.webhook`): run the adapter, list its dead
letters, requeue them."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from gateway.logs import configure_logging

from .adapter import AdapterConfig, WebhookAdapter
from .store import Queue, StateError


def _read_secret_file(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StateError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    if not text:
        raise StateError(f"the {what} file {path} is empty")
    return text


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway-webhook-adapter",
        description="Push received messages and events of a Dublin gateway to a case-system "
        "URL as signed JSON webhooks, durably, in order per case.",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines (default off a tty)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="take in and deliver until SIGINT or SIGTERM")
    run.add_argument("--api-url", required=True, help="the gateway's internal API URL")
    run.add_argument("--token-file", type=Path, required=True, help="file holding the token")
    run.add_argument("--target", required=True, help="the case system's webhook URL")
    run.add_argument(
        "--secret-file", type=Path, required=True, help="file holding the HMAC signing secret"
    )
    run.add_argument("--state", type=Path, required=True, help="directory of the durable queue")
    run.add_argument(
        "--role",
        default="case-officer",
        help="the role of the token (its unconsumed inbox is what the adapter takes over)",
    )
    run.add_argument(
        "--network",
        action="append",
        default=[],
        help="subscribe to the items of this network of the operational family (iconet, "
        "ilo-network; repeat for several) with a liaison-officer token, instead of the inbox",
    )
    run.add_argument(
        "--category",
        action="append",
        default=[],
        help="with --network: only items of this category or report topic (repeatable)",
    )
    run.add_argument("--poll-seconds", type=_positive_float, default=1.0)
    run.add_argument("--max-attempts", type=_positive_int, default=20)
    run.add_argument("--initial-delay", type=_positive_float, default=1.0)
    run.add_argument("--max-delay", type=_positive_float, default=300.0)
    run.add_argument(
        "--concurrency", type=_positive_int, default=4, help="cases delivered in parallel"
    )
    run.add_argument(
        "--request-timeout", type=_positive_float, default=30.0, help="seconds per attempt"
    )

    dead = sub.add_parser("dead-letters", help="list the deliveries that gave up")
    dead.add_argument("--state", type=Path, required=True)
    dead.add_argument("--json", action="store_true", help="one JSON document")

    requeue = sub.add_parser("requeue", help="retry dead letters (attempts start again)")
    requeue.add_argument("--state", type=Path, required=True)
    requeue.add_argument("ids", nargs="*", metavar="ID", help="queue id or delivery id")
    requeue.add_argument("--all", action="store_true", help="every dead letter")
    return parser


async def _run(config: AdapterConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await WebhookAdapter(config).run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _cmd_run(args: argparse.Namespace) -> int:
    config = AdapterConfig(
        api_url=args.api_url,
        token=_read_secret_file(args.token_file, "token"),
        target=args.target,
        secret=_read_secret_file(args.secret_file, "secret").encode("utf-8"),
        state_dir=args.state,
        role=args.role,
        poll_seconds=args.poll_seconds,
        max_attempts=args.max_attempts,
        initial_delay=args.initial_delay,
        max_delay=max(args.max_delay, args.initial_delay),
        concurrency=args.concurrency,
        request_timeout=args.request_timeout,
        networks=tuple(args.network),
        categories=tuple(args.category),
    )
    if config.categories and not config.networks:
        raise StateError("--category filters a subscription: name its --network too")
    asyncio.run(_run(config))
    return 0


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cmd_dead_letters(args: argparse.Namespace) -> int:
    queue = Queue.open(args.state, create=False)
    try:
        dead = queue.dead_letters()
    finally:
        queue.close()
    rows = [
        item.summary()
        | {
            "created_at": _when(item.created_at),
            "updated_at": _when(item.updated_at),
            "blocked_behind": blocked,
        }
        for item, blocked in dead
    ]
    if args.json:
        print(json.dumps({"dead_letters": rows}, indent=2))
        return 0
    if not rows:
        print("no dead letters")
        return 0
    print(f"{'ID':>6}  {'DELIVERY ID':<48}  {'CASE':<20}  {'TRIES':>5}  {'WAITING':>7}  LAST ERROR")
    for row in rows:
        print(
            f"{row['id']:>6}  {row['delivery_id']:<48}  {row['case'] or '-':<20}  "
            f"{row['attempts']:>5}  {row['blocked_behind']:>7}  {row['last_error'] or ''}"
        )
    print(
        f"{len(rows)} dead letter(s); requeue with: gateway-webhook-adapter requeue --state "
        f"{args.state} ID... (or --all)"
    )
    return 0


def _cmd_requeue(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all):
        print("requeue: name the dead letters (ID...) or pass --all, not both", file=sys.stderr)
        return 2
    queue = Queue.open(args.state, create=False)
    try:
        done, missing = queue.requeue(None if args.all else list(args.ids))
    finally:
        queue.close()
    for delivery_id in done:
        print(f"requeued {delivery_id}")
    for ident in missing:
        print(f"no dead letter {ident}", file=sys.stderr)
    if not done and not missing:
        print("no dead letters")
    return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        configure_logging(args.log_level, args.log_json)
    commands = {"run": _cmd_run, "dead-letters": _cmd_dead_letters, "requeue": _cmd_requeue}
    try:
        return commands[args.command](args)
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
