"""Wires configuration, store, peer transport, internal API and the delivery worker into one
running gateway."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import gc
import hashlib
import signal
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web

from gateway.api.internal import api_app
from gateway.config import Config, ConfigError
from gateway.context import GatewayContext, open_context
from gateway.core.register import Event
from gateway.pki.tls import api_server_context
from gateway.service.deadline_keeper import DeadlineKeeper, rule_set
from gateway.service.retention import RetentionKeeper
from gateway.store.leader import lead
from gateway.transport.admission import TlsAudit
from gateway.transport.delivery import Deliverer
from gateway.transport.inbound import peer_app
from gateway.xml.forms import compile_schemas


@dataclass
class RunningGateway:
    ctx: GatewayContext
    peer_runner: web.AppRunner
    api_runner: web.AppRunner
    delivery_task: asyncio.Task[None]
    peer_port: int
    api_port: int
    keeper: DeadlineKeeper
    deadline_task: asyncio.Task[None]
    retention: RetentionKeeper
    retention_task: asyncio.Task[None]
    watch_task: asyncio.Task[None]
    deliverer: Deliverer
    tls_audit: TlsAudit

    async def stop(self) -> None:
        for task in (self.watch_task, self.delivery_task, self.deadline_task, self.retention_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.api_runner.cleanup()
        await self.peer_runner.cleanup()
        await self.tls_audit.close()
        await self.ctx.store.close()


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("site is not listening")


async def _record_configuration(ctx: GatewayContext) -> None:
    """An administrative register entry: what this gateway runs with, by digest."""
    config = ctx.config
    async with ctx.store.transaction() as tx:
        await tx.register.append(
            time=ctx.clock(),
            event=Event.CONFIGURATION_LOADED,
            direction="in",
            status="started",
            details={"config_sha256": hashlib.sha256(config.path.read_bytes()).hexdigest()}
            | ctx.trust.state.summary(),
        )


SERVER_NAME = "dublin-gateway"
"""What every answer says in its `Server` header: the product, never the versions of Python
and aiohttp a scanner would match against known vulnerabilities (issue 14, item 14)."""


class _Request(web.Request):
    """A request whose answers name no software version. aiohttp fills in its own `Server`
    header only when none is set, after this hook; the hook runs for every answer, the ones
    aiohttp writes itself for malformed HTTP included."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        response.headers[hdrs.SERVER] = SERVER_NAME
        await super()._prepare_hook(response)


def _name_no_version(runner: web.AppRunner) -> None:
    """Make the runner's server build `_Request`s (call after `setup()`, before listening)."""
    assert runner.server is not None
    runner.server.request_factory = functools.partial(runner.app._make_request, _cls=_Request)


class _Site(web.TCPSite):
    """A TCP site whose TLS handshakes must complete within `handshake_timeout` seconds
    (asyncio's default is 60 s: a peer opening connections and never finishing the handshake
    would hold them that long; issue 14, item 11). aiohttp's TCPSite has no such setting."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, *, handshake_timeout: float, **kw: Any
    ) -> None:
        super().__init__(runner, host, port, **kw)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


async def _listen(
    runner: web.AppRunner,
    setting: str,
    host: str,
    port: int,
    *,
    handshake_timeout: float = 60.0,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> None:
    """Start one listener; an address that cannot be bound (taken by another process, not on
    this machine, a privileged port) is a ConfigError naming the setting, not a traceback.
    A TLS handshake not complete after `handshake_timeout` seconds is cut."""
    _name_no_version(runner)
    try:
        await _Site(
            runner,
            host,
            port,
            handshake_timeout=handshake_timeout,
            ssl_context=ssl_context,
            reuse_port=reuse_port or None,
        ).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{setting} {port} on {host} is already in use") from exc
        why = exc.strerror or str(exc)
        raise ConfigError(f"{setting} {port} on {host}: cannot listen ({why})") from exc


async def start_gateway(config: Config) -> RunningGateway:
    ctx = await open_context(config)
    runners: list[web.AppRunner] = []
    try:
        keeper = DeadlineKeeper(ctx, rule_set(config.deadlines.legal_basis))
        peer_runner = web.AppRunner(
            peer_app(ctx, keeper),
            access_log=None,
            keepalive_timeout=config.peer.idle_timeout_seconds,
        )
        await peer_runner.setup()
        runners.append(peer_runner)
        audit = TlsAudit(ctx)
        await _listen(
            peer_runner,
            "peer.port",
            config.peer.host,
            config.peer.port,
            handshake_timeout=config.peer.idle_timeout_seconds,
            ssl_context=ctx.trust.base_server_context(audit.refused),
            reuse_port=config.peer.reuse_port,
        )
        api_runner = web.AppRunner(api_app(ctx, keeper), access_log=None)
        await api_runner.setup()
        runners.append(api_runner)
        try:
            api_tls = api_server_context(config)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"api.tls: the certificate or key cannot be used: {exc}") from exc
        await _listen(
            api_runner,
            "api.port",
            config.api.host,
            config.api.port,
            ssl_context=api_tls,
            reuse_port=config.api.reuse_port,
        )
    except BaseException:
        for runner in reversed(runners):
            await runner.cleanup()
        await ctx.store.close()
        raise
    deliverer = Deliverer(ctx, keeper)
    delivery_task = asyncio.create_task(deliverer.run(), name="delivery")
    # Expiries missed while the gateway was down are applied now, once each.
    # With several nodes on one PostgreSQL database, one of them (the leader) runs these.
    deadline_task = asyncio.create_task(
        lead(ctx.store, "deadlines", keeper.run, ctx.log), name="deadlines"
    )
    retention = RetentionKeeper(ctx)
    retention_task = asyncio.create_task(
        lead(ctx.store, "retention", retention.run, ctx.log), name="retention"
    )
    watch_task = asyncio.create_task(ctx.trust.watch(), name="trust-watch")
    running = RunningGateway(
        ctx,
        peer_runner,
        api_runner,
        delivery_task,
        _bound_port(peer_runner),
        _bound_port(api_runner),
        keeper,
        deadline_task,
        retention,
        retention_task,
        watch_task,
        deliverer,
        audit,
    )
    await _record_configuration(ctx)
    ctx.log.info(
        "gateway started",
        authority=config.authority,
        peer_port=running.peer_port,
        api_port=running.api_port,
    )
    return running


M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter (malloc.h)."""


def map_large_buffers(threshold: int = 128 * 1024) -> bool:
    """Have glibc's malloc map each buffer of `threshold` bytes or more on its own and unmap it
    when freed (128 KiB is glibc's initial threshold; setting it stops glibc from raising it
    after the first large buffer is freed). A transmission of megabytes leaves several
    buffers of its size (the body, its canonical form, the database row); with the raised
    threshold glibc served such sizes from the heap, which the next bodies fragmented, and the
    process kept tens of MB it no longer used. Measured by benchmarks/bodies.py (issue 14,
    item 6). True when applied (glibc); elsewhere nothing changes."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


async def serve(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly (in-flight deliveries resume on restart
    from the outbox)."""
    compile_schemas()  # before listening: no request waits for a schema compilation
    map_large_buffers()
    running = await start_gateway(config)
    # What start-up built (schemas, certificates, modules) lives as long as the process: out
    # of the collector's sight, so that full collections scan only what requests create
    # (they paused the gateway for ~100 ms each).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running.ctx.trust.install_sighup(loop, running.ctx.principals.reload)
    try:
        await stop.wait()
    finally:
        running.ctx.log.info("gateway stopping", authority=config.authority)
        await running.stop()
