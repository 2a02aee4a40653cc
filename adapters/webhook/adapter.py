"""The webhook adapter: takes in what the gateway received (inbox) and what happened (events
feed) into a durable queue, then POSTs each item, signed, to the case system's URL.

Intake never loses nor duplicates: a message is committed to the queue before it is consumed
at the gateway (a crash in between shows it again, and its unique delivery id makes the
second insert a no-op); events are committed together with the advanced cursor.

Delivery is in order per case: only the oldest undelivered item of a case is ever in flight,
different cases proceed in parallel (bounded). A 2xx answer delivers; anything else is retried
with the delivery worker's backoff (`RetryPolicy`: exponential, equal jitter); after
`max_attempts` the item is a dead letter and its case waits until an administrator requeues
it. Delivery is at least once: a crash after the receiver answered but before the adapter
recorded it repeats that delivery, with the same X-Gateway-Delivery-Id and the identical body,
so receivers deduplicate on it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from gateway.client import ApiError, GatewayClient
from gateway.core.retry import RetryPolicy
from gateway.waits import wait_set

from .signing import signed_headers
from .store import Item, Queue

log = structlog.get_logger("webhook-adapter")

INBOX_PAGE = 50
EVENTS_PAGE = 100


@dataclass(frozen=True)
class AdapterConfig:
    api_url: str
    token: str
    target: str
    secret: bytes
    state_dir: Path
    role: str = "case-officer"
    poll_seconds: float = 1.0
    max_attempts: int = 20
    initial_delay: float = 1.0
    max_delay: float = 300.0
    concurrency: int = 4
    request_timeout: float = 30.0
    networks: tuple[str, ...] = ()
    """A liaison officer's subscription: items of these networks (operational family)
    instead of the Dublin inbox and events."""
    categories: tuple[str, ...] = ()
    """Only items of these categories (or report topics); empty: every one."""


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: the gateway's own
    `RetryPolicy` (exponential, between half and all of the step), capped at `maximum`."""
    policy = RetryPolicy(initial_delay=initial, max_delay=max(initial, maximum))
    return policy.delay(attempts, random.random())  # noqa: S311 - jitter, not cryptography


def body_of(delivery_id: str, kind: str, case: str, data: dict[str, Any]) -> str:
    """The JSON body of a delivery, built once at intake and stored: every retry sends these
    exact bytes."""
    envelope = {"delivery_id": delivery_id, "kind": kind, "case": case or None, kind: data}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def case_of(data: dict[str, Any]) -> str:
    reference = data.get("reference")
    return reference if isinstance(reference, str) else ""


class WebhookAdapter:
    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.queue: Queue | None = None
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then abandon in-flight attempts (they are not recorded and
        are repeated at the next start) and return."""
        cfg = self.config
        queue = await asyncio.to_thread(Queue.open, cfg.state_dir, create=True)
        self.queue = queue
        try:
            await asyncio.to_thread(queue.bind, api_url=cfg.api_url.rstrip("/"), role=cfg.role)
            timeout = aiohttp.ClientTimeout(total=cfg.request_timeout)
            async with (
                GatewayClient(cfg.api_url, cfg.token, timeout=cfg.request_timeout) as client,
                aiohttp.ClientSession(timeout=timeout) as session,
            ):
                log.info(
                    "webhook-adapter-started",
                    api_url=cfg.api_url,
                    role=cfg.role,
                    target=cfg.target,
                    state=str(cfg.state_dir),
                )
                tasks = [
                    asyncio.create_task(self._intake_loop(client, stop), name="intake"),
                    asyncio.create_task(self._delivery_loop(session, stop), name="delivery"),
                ]
                try:
                    await stop.wait()
                finally:
                    for task in [*tasks, *self._in_flight.values()]:
                        task.cancel()
                    await asyncio.gather(*tasks, *self._in_flight.values(), return_exceptions=True)
                    self._in_flight.clear()
            log.info("webhook-adapter-stopped")
        finally:
            await asyncio.to_thread(queue.close)

    # -- intake ------------------------------------------------------------------------------

    async def _intake_loop(self, client: GatewayClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.intake_once(client)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("intake-failed", error=str(exc)[:300])
            except Exception:
                log.exception("intake-error")
            await wait_set(stop, self.config.poll_seconds)

    async def intake_once(self, client: GatewayClient) -> int:
        """One pass over the unconsumed inbox and the new events (or, for a subscription to
        networks, the new items); the number queued."""
        assert self.queue is not None
        if self.config.networks:
            return await self.intake_items(client)
        queue = self.queue
        added = 0
        cursor = "0"
        while True:
            page = await client.inbox(cursor, INBOX_PAGE, state="unconsumed")
            for message in page["items"]:
                message_id = str(message["message_id"])
                delivery_id = "message:" + message_id
                case = case_of(message)
                body = body_of(delivery_id, "message", case, message)
                # Store first (committed), consume second.
                if await asyncio.to_thread(queue.add_message, delivery_id, case, body):
                    added += 1
                    log.info("queued", delivery_id=delivery_id, case=case, kind="message")
                    self._wake.set()
                await client.consume(message_id)
            if not page["items"] or page["next_cursor"] == cursor:
                break
            cursor = str(page["next_cursor"])

        cursor = await asyncio.to_thread(queue.events_cursor)
        while True:
            page = await client.events(cursor, EVENTS_PAGE)
            next_cursor = str(page["next_cursor"])
            items = []
            for event in page["items"]:
                delivery_id = "event:" + str(event["cursor"])
                case = case_of(event)
                items.append((delivery_id, case, body_of(delivery_id, "event", case, event)))
            if next_cursor == cursor and not items:
                break
            added += await asyncio.to_thread(queue.add_events, items, next_cursor)
            if items:
                log.info("queued-events", count=len(items), cursor=next_cursor)
                self._wake.set()
            if next_cursor == cursor:
                break
            cursor = next_cursor
        return added

    async def intake_items(self, client: GatewayClient) -> int:
        """The items of the subscribed networks and categories received since the cursor,
        each queued once (delivery id `item:<item_id>`), the cursor advanced with them."""
        assert self.queue is not None
        queue, cfg = self.queue, self.config
        added = 0
        cursor = await asyncio.to_thread(queue.events_cursor, "items_cursor")
        while True:
            page = await client.operational(cursor, EVENTS_PAGE)
            next_cursor = str(page["next_cursor"])
            items = []
            for item in page["items"]:
                wanted = item["network"] in cfg.networks and (
                    not cfg.categories or item["category"] in cfg.categories
                )
                if not wanted or item["direction"] != "in":
                    continue
                delivery_id = "item:" + str(item["item_id"])
                case = str(item["reference"])
                items.append((delivery_id, case, body_of(delivery_id, "item", case, item)))
            if next_cursor == cursor and not items:
                break
            added += await asyncio.to_thread(
                queue.add_events, items, next_cursor, cursor_name="items_cursor"
            )
            if items:
                log.info("queued-items", count=len(items), cursor=next_cursor)
                self._wake.set()
            if next_cursor == cursor:
                break
            cursor = next_cursor
        return added

    # -- delivery ----------------------------------------------------------------------------

    async def _delivery_loop(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        assert self.queue is not None
        queue = self.queue
        cfg = self.config
        while not stop.is_set():
            self._wake.clear()
            wait = cfg.poll_seconds
            try:
                free = cfg.concurrency - len(self._in_flight)
                if free > 0:
                    due = await asyncio.to_thread(
                        queue.due, time.time(), free, list(self._in_flight)
                    )
                    for item in due:
                        self._start(session, item)
                if len(self._in_flight) < cfg.concurrency:
                    # Otherwise a completion wakes us up.
                    next_due = await asyncio.to_thread(queue.next_due_at, list(self._in_flight))
                    if next_due is not None:
                        wait = min(wait, max(0.0, next_due - time.time()))
            except Exception:
                log.exception("delivery-scheduling-error")
            if wait > 0:
                await wait_set(self._wake, wait)
            else:
                await asyncio.sleep(0)

    def _start(self, session: aiohttp.ClientSession, item: Item) -> None:
        task = asyncio.create_task(self._attempt(session, item), name=item.delivery_id)
        self._in_flight[item.case_reference] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._in_flight.get(item.case_reference) is task:
                del self._in_flight[item.case_reference]
            self._wake.set()

        task.add_done_callback(done)

    async def _attempt(self, session: aiohttp.ClientSession, item: Item) -> None:
        assert self.queue is not None
        cfg = self.config
        body = item.payload.encode("utf-8")
        headers = signed_headers(cfg.secret, item.delivery_id, body)
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            async with session.post(
                cfg.target, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                await resp.content.read(65536)  # the answer is not used; keep it small
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempts = item.attempts + 1
        fields = {
            "delivery_id": item.delivery_id,
            "case": item.case_reference,
            "kind": item.kind,
            "attempt": attempts,
            "status": status,
            "elapsed_ms": round((time.monotonic() - started) * 1000),
        }
        try:
            if error is None:
                await asyncio.to_thread(
                    self.queue.record_attempt,
                    item.id,
                    attempts=attempts,
                    state="delivered",
                    status=status,
                    error=None,
                    next_attempt_at=time.time(),
                )
                log.info("delivered", **fields)
            elif attempts >= cfg.max_attempts:
                await asyncio.to_thread(
                    self.queue.record_attempt,
                    item.id,
                    attempts=attempts,
                    state="dead",
                    status=status,
                    error=error,
                    next_attempt_at=time.time(),
                )
                log.error("dead-letter", error=error, **fields)
            else:
                delay = backoff(attempts, cfg.initial_delay, cfg.max_delay)
                await asyncio.to_thread(
                    self.queue.record_attempt,
                    item.id,
                    attempts=attempts,
                    state="pending",
                    status=status,
                    error=error,
                    next_attempt_at=time.time() + delay,
                )
                log.warning("retry", error=error, retry_in=round(delay, 3), **fields)
        except Exception:
            # The attempt is not recorded: the item stays due and is tried again.
            log.exception("recording-failed", **fields)
            await asyncio.sleep(self.config.poll_seconds)
