"""A small TCP proxy on loopback for fault tests: forwards, partitions (drops every
connection), or lets requests through while swallowing the answers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["forward", "partition", "drop-responses"]
# A client's TLS handshake messages stay well under this; a transmission is larger.
REQUEST_STARTED = 4096


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode: Mode = "forward"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set(self, mode: Mode) -> None:
        """Change the mode; a partition also cuts every connection open now."""
        self.mode = mode
        if mode != "forward":
            for writer in list(self._writers):
                writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "partition":
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        sent_up = [0]
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, sent_up, upstream=True),
                self._pipe(up_reader, writer, sent_up, upstream=False),
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sent_up: list[int],
        *,
        upstream: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.mode == "partition":
                    break
                if upstream:
                    sent_up[0] += len(data)
                elif self.mode == "drop-responses" and sent_up[0] > REQUEST_STARTED:
                    # The TLS handshake went through; the request is on its way: swallow the
                    # answer and hang up, so the sender never sees its acknowledgement.
                    writer.close()
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()
