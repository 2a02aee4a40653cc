"""Waiting for an event with a time limit, without losing a cancellation.

Python 3.11's `asyncio.wait_for` returns normally when the task waiting in it is cancelled
at the moment the awaited event is set: the cancellation is lost. A background loop that
waits that way between passes (the delivery worker, the deadline scheduler) then never
stops, and `gateway serve` did not exit after SIGTERM (seen once in about 20 runs of the
end-to-end benchmark, whose delivery worker was woken as it was being cancelled).
`asyncio.timeout` counts cancellations and does not have that defect; `asyncio.wait_for` is
banned in the package by ruff (pyproject.toml, flake8-tidy-imports)."""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` have passed; whether it is set. A cancellation
    of the caller always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
