"""A background loop's wait between passes never swallows the cancellation that stops it
(the gateway did not exit after SIGTERM when Python 3.11's asyncio.wait_for lost it)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.waits import wait_set


async def test_a_cancellation_arriving_as_the_event_is_set_stops_the_loop() -> None:
    wake = asyncio.Event()
    passes = 0

    async def worker() -> None:
        nonlocal passes
        while True:
            await wait_set(wake, 60)
            wake.clear()
            passes += 1

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)  # the worker waits
    wake.set()  # what a delivery ending does...
    task.cancel()  # ...in the same turn as the stop
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert task.cancelled()


async def test_reports_whether_the_event_was_set() -> None:
    wake = asyncio.Event()
    assert await wait_set(wake, 0.01) is False
    wake.set()
    assert await wait_set(wake, 5) is True
