"""`gateway outbox list|retry|cancel --config FILE`: queue administration from the shell, on
the gateway's own store (a running gateway's delivery worker picks a retried message up at its
next poll). Each action is a register entry naming the operating-system user who acted."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.service.outbox_admin import STATES, cancel, list_outbox, retry
from gateway.store.store import Store


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _cmd_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> list[dict[str, Any]]:
        store = await Store.open(config.database_url)
        try:
            items: list[dict[str, Any]] = []
            cursor = 0
            while True:  # every page: an operator wants the whole queue, not its first 1000
                page = await list_outbox(store, args.state, cursor, 1000)
                items += page.items
                if len(page.items) < 1000:
                    return items
                cursor = int(page.next_cursor)
        finally:
            await store.close()

    items = asyncio.run(run())
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    print(f"{len(items)} {args.state} message(s)")
    for item in items:
        print(
            f"{item['message_id']}  {item['peer']}  {item['type']}  {item['reference']}  "
            f"created {item['created']}"
            + (f"  attempts {item['attempts']}" if item["attempts"] is not None else "")
            + (f"  last error: {item['last_error']}" if item["last_error"] else "")
        )
    return 0


def _cmd_act(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    do = retry if args.action == "retry" else cancel

    async def run() -> dict[str, Any]:
        store = await Store.open(config.database_url)
        try:
            return await do(store, args.message_id, _actor(), datetime.now(UTC))
        finally:
            await store.close()

    done = asyncio.run(run())
    print(f"{done['message_id']}: {done['previous_state']} -> {done['state']}")
    return 0


def add_parsers(sub: Any) -> None:
    outbox = sub.add_parser("outbox", help="the outbound queue: list, retry, cancel")
    actions = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = actions.add_parser("list", help="queued or undeliverable messages")
    listing.add_argument("--config", type=Path, required=True, help="gateway TOML file")
    listing.add_argument("--state", choices=STATES, default="queued")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(func=_cmd_list)
    for action, text in (
        ("retry", "deliver a queued or undeliverable message again"),
        ("cancel", "stop delivering a queued message (it becomes undeliverable)"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("message_id")
        command.add_argument("--config", type=Path, required=True, help="gateway TOML file")
        command.set_defaults(func=_cmd_act, action=action)
