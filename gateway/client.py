"""A typed async client of the internal API, for adapters, the demo and tests."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypedDict, cast
from urllib.parse import quote

import aiohttp


class ApiError(Exception):
    """The gateway answered with a problem+json (or another error)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or "error"
        field = problem.get("field")
        super().__init__(f"HTTP {status}: {detail}" + (f" (field {field})" if field else ""))
        self.status = status
        self.problem = problem


class Submitted(TypedDict):
    """What POST /api/v1/messages answers: the message signed, stored and queued."""

    message_id: str
    reference: str
    digest: str
    state: str
    warnings: list[str]


class Page(TypedDict):
    """One page of a listing: pass `next_cursor` back for the next."""

    items: list[dict[str, Any]]
    next_cursor: str


class QueueAction(TypedDict):
    """What an administrator's retry or cancellation of a delivery did."""

    message_id: str
    state: str
    previous_state: str


class GatewayClient:
    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context`: for an `https://` API ([api.tls]): the CA that issued the API's
        certificate, and the client's own certificate when the API asks for one."""
        self.api_url = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
        return aiohttp.ClientSession(
            headers=self._headers, timeout=self._timeout, connector=connector
        )

    async def __aenter__(self) -> GatewayClient:
        self._session = self._new_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self._session is None:
            self._session = self._new_session()
        async with self._session.request(method, self.api_url + path, **kwargs) as resp:
            if resp.content_type in ("application/json", "application/problem+json"):
                body: Any = await resp.json(content_type=None)
            else:
                body = {"detail": (await resp.text())[:500]}
            if resp.status >= 400:
                raise ApiError(resp.status, body if isinstance(body, dict) else {})
            if not isinstance(body, dict):
                raise ApiError(resp.status, {"detail": "unexpected response shape"})
            return body

    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/health")

    async def messages(
        self,
        *,
        direction: str | None = None,
        state: str | None = None,
        message_type: str | None = None,
        cursor: str = "0",
        limit: int = 100,
    ) -> Page:
        """This gateway's messages, sent and received, oldest first (metadata only)."""
        params = {"cursor": cursor, "limit": str(limit)}
        for name, value in (("direction", direction), ("state", state), ("type", message_type)):
            if value is not None:
                params[name] = value
        return cast(Page, await self._request("GET", "/api/v1/messages", params=params))

    async def outbox(self, state: str = "queued", cursor: str = "0", limit: int = 100) -> Page:
        """Administrators: outbound messages `queued` or `undeliverable`, by cursor."""
        params = {"state": state, "cursor": cursor, "limit": str(limit)}
        return cast(Page, await self._request("GET", "/api/v1/admin/outbox", params=params))

    async def retry_delivery(self, message_id: str) -> QueueAction:
        """Administrators: deliver a queued or undeliverable message again (409 while a
        worker is delivering it)."""
        return cast(
            QueueAction, await self._request("POST", f"/api/v1/admin/outbox/{message_id}/retry")
        )

    async def cancel_delivery(self, message_id: str) -> QueueAction:
        """Administrators: stop delivering a queued message; it becomes undeliverable."""
        return cast(
            QueueAction, await self._request("POST", f"/api/v1/admin/outbox/{message_id}/cancel")
        )

    async def submit(
        self,
        message_type: str,
        receiver: str,
        form: dict[str, Any],
        *,
        case_number: str | None = None,
        in_reply_to: str | None = None,
        urgent: bool = False,
        eurodac_reference: str | None = None,
        case: str | None = None,
        attachments: list[dict[str, str]] | None = None,
        idempotency_key: str | None = None,
        legal_basis: str | None = None,
        priority: bool = False,
        extended_by_information: str | None = None,
    ) -> Submitted:
        """Submit a form; `attachments` are {fileName, mediaType, content (base64)}. With an
        `idempotency_key`, repeating the same submission returns the original message.
        `legal_basis` names the rule pack a new case runs under (default: the gateway's);
        `priority`: a new case under 2024/1351 involves minors (2025/2055 Art. 5(2));
        `extended_by_information`: the information case whose late reply extends a take
        charge request's Art. 39 limit (2024/1351 Art. 51(5))."""
        payload: dict[str, Any] = {"type": message_type, "receiver": receiver, "form": form}
        if case is not None:
            payload["case"] = case
        if attachments:
            payload["attachments"] = attachments
        if case_number is not None:
            payload["case_number"] = case_number
        if in_reply_to is not None:
            payload["in_reply_to"] = in_reply_to
        if urgent:
            payload["urgent"] = True
        if eurodac_reference is not None:
            payload["eurodac_reference"] = eurodac_reference
        if legal_basis is not None:
            payload["legal_basis"] = legal_basis
        if priority:
            payload["priority"] = True
        if extended_by_information is not None:
            payload["extended_by_information"] = extended_by_information
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return cast(
            Submitted,
            await self._request("POST", "/api/v1/messages", json=payload, headers=headers),
        )

    async def distribute(
        self,
        message_type: str,
        form: dict[str, Any],
        distribution: str | list[str] = "network",
        *,
        attachments: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """A liaison officer's early warning or liaison report, to its network ("network")
        or the authorities listed: {item_id, reference, transmissions: [{receiver,
        message_id, digest}]}."""
        payload: dict[str, Any] = {
            "type": message_type,
            "form": form,
            "distribution": distribution,
        }
        if attachments:
            payload["attachments"] = attachments
        return await self._request("POST", "/api/v1/messages", json=payload)

    async def item_message(
        self, message_type: str, form: dict[str, Any], receiver: str | None = None
    ) -> dict[str, Any]:
        """A withdrawal (to every receiver of the item), permission or forwarding (to
        `receiver`) of an item of the operational family."""
        payload: dict[str, Any] = {"type": message_type, "form": form}
        if receiver is not None:
            payload["receiver"] = receiver
        return await self._request("POST", "/api/v1/messages", json=payload)

    async def operational(self, cursor: str = "0", limit: int = 100, **filters: str) -> Page:
        """Items of the operational family (filters: category, country, since)."""
        params = {"cursor": cursor, "limit": str(limit), **filters}
        return cast(Page, await self._request("GET", "/api/v1/operational", params=params))

    async def item(self, item_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/operational/{quote(item_id, safe='')}")

    async def apply_deletion_order(self, order: bytes) -> dict[str, Any]:
        """Upload the network operator's signed deletion order (administrator)."""
        return await self._request(
            "POST",
            "/api/v1/admin/deletion-orders",
            data=order,
            headers={"Content-Type": "application/xml"},
        )

    async def case(self, reference: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/cases/{quote(reference, safe='')}")

    async def deadlines(self, **filters: str) -> Page:
        return cast(Page, await self._request("GET", "/api/v1/deadlines", params=filters))

    async def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Administrator, demonstration gateways only (clock.adjustable)."""
        return await self._request("POST", "/api/v1/admin/clock", json={"advance_seconds": seconds})

    async def admin_directory(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/admin/directory")

    async def admin_certificates(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/admin/certificates")

    async def admin_crl(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/admin/crl")

    async def reload_trust(self) -> dict[str, Any]:
        """Apply a new directory, CRL or own certificate now; ApiError 409 if refused."""
        return await self._request("POST", "/api/v1/admin/reload")

    async def metrics(self) -> str:
        if self._session is None:
            self._session = self._new_session()
        async with self._session.get(self.api_url + "/api/v1/metrics") as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, {"detail": text[:500]})
            return text

    async def message(self, message_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/messages/{message_id}")

    async def inbox(self, cursor: str = "0", limit: int = 50, state: str = "all") -> Page:
        """Received messages after `cursor`; `state="unconsumed"` lists what this role must
        still take over (see `consume`)."""
        params = {"cursor": cursor, "limit": str(limit)}
        if state != "all":
            params["state"] = state
        return cast(Page, await self._request("GET", "/api/v1/inbox", params=params))

    async def _bytes(self, path: str) -> bytes:
        if self._session is None:
            self._session = self._new_session()
        async with self._session.get(self.api_url + path) as resp:
            data = await resp.read()
            if resp.status >= 400:
                problem: Any = {}
                if resp.content_type == "application/problem+json":
                    problem = await resp.json(content_type=None)
                raise ApiError(resp.status, problem if isinstance(problem, dict) else {})
            return data

    async def transmission(self, message_id: str) -> bytes:
        """The transmission exactly as signed."""
        return await self._bytes(f"/api/v1/messages/{quote(message_id, safe='')}/transmission")

    async def attachment(self, message_id: str, file_name: str) -> bytes:
        """One attached file of a message."""
        return await self._bytes(
            f"/api/v1/messages/{quote(message_id, safe='')}/attachments/{quote(file_name, safe='')}"
        )

    async def consume(self, message_id: str) -> dict[str, Any]:
        """Say the case system has stored a received message; safe to repeat."""
        return await self._request("POST", f"/api/v1/inbox/{quote(message_id, safe='')}/consumed")

    async def events(self, cursor: str = "0", limit: int = 100, case: str | None = None) -> Page:
        """Acknowledgements, refusals, receipts, deadlines and their consequences, in
        register order; pass `next_cursor` back to resume."""
        params = {"cursor": cursor, "limit": str(limit)}
        if case is not None:
            params["case"] = case
        return cast(Page, await self._request("GET", "/api/v1/events", params=params))

    async def register_integrity(self) -> dict[str, Any]:
        """The whole register verified now (auditor): chain, checkpoints, held witnesses."""
        return await self._request("GET", "/api/v1/register/integrity")

    async def openapi(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/openapi.json")

    async def wait_for_state(
        self, message_id: str, states: Iterable[str], within: float = 30.0
    ) -> dict[str, Any]:
        wanted = frozenset(states)
        deadline = time.monotonic() + within
        while True:
            view = await self.message(message_id)
            if view["state"] in wanted:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"message {message_id} still {view['state']!r} after {within} s")
            await asyncio.sleep(0.05)

    async def wait_for_inbox(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            cursor = "0"
            while True:
                page = await self.inbox(cursor, 100)
                for item in page["items"]:
                    if predicate(item):
                        return dict(item)
                if not page["items"]:
                    break
                cursor = page["next_cursor"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching inbox message after {within} s")
            await asyncio.sleep(0.05)

    async def wait_until_up(self, within: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            try:
                return await self.health()
            except (aiohttp.ClientError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
