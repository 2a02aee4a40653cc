"""`gateway-folder-adapter` / `python -m adapters.folder`: run the folder adapter."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from adapters.folder.adapter import FolderAdapter, FolderConfig
from gateway.logs import configure_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway-folder-adapter",
        description="Exchange standard forms with a Dublin gateway through folders.",
    )
    p.add_argument("--api-url", required=True, help="the gateway's internal API, e.g. "
                   "http://127.0.0.1:8080")  # fmt: skip
    p.add_argument("--token-file", type=Path, required=True, help="file holding the API token")
    p.add_argument("--root", type=Path, required=True, help="folder holding outgoing/ etc.")
    p.add_argument("--role", default="case-officer", help="the token's role (documentation)")
    p.add_argument("--poll-seconds", type=float, default=1.0)
    p.add_argument("--signed-xml", action="store_true", help="also write each received "
                   "transmission as signed, incoming/<message id>.xml")  # fmt: skip
    p.add_argument("--once", action="store_true", help="one pass, then exit (e.g. from cron)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-json", action="store_true")
    return p


async def _run(args: argparse.Namespace, token: str) -> int:
    adapter = FolderAdapter(
        FolderConfig(
            args.api_url,
            token,
            args.root,
            args.role,
            args.poll_seconds,
            signed_xml=args.signed_xml,
        )
    )
    try:
        if args.once:
            result = await adapter.run_once()
            print(
                f"submitted {result.submitted}, refused {result.refused}, received "
                f"{result.received}, events {result.events}, results updated {result.updated}"
            )
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await adapter.run(stop)
        return 0
    finally:
        await adapter.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, json=True if args.log_json else None)
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"gateway-folder-adapter: error: cannot read {args.token_file}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not token:
        print(f"gateway-folder-adapter: error: {args.token_file} is empty", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, token))


if __name__ == "__main__":
    sys.exit(main())
