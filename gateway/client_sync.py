"""A synchronous twin of `gateway.client.GatewayClient`, for scripts and shells: every method
of the async client, called without `await`, on an event loop of the twin's own.

    with SyncGatewayClient("http://127.0.0.1:8080", token) as api:
        sent = api.submit("take-charge-request", "NL-DU", form, case_number="2026-0042")
        api.wait_for_state(sent["message_id"], {"delivered"})

It is not for code already running in an event loop (use the async client there)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any

from gateway.client import GatewayClient


class SyncGatewayClient:
    def __init__(self, api_url: str, token: str, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = GatewayClient(api_url, token, **options)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        call.__doc__ = method.__doc__
        return call

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncGatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
