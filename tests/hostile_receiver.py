"""A hostile receiving gateway on loopback: it holds a member's real TLS and signing keys,
listens where the directory says that member is, takes transmissions like an honest gateway
and answers with validly signed acknowledgements that say what it likes (a receipt time of
its choosing, another receiver, a reason code no gateway knows). `answer` switches between
lies and the truth while a sender is talking to it."""

from __future__ import annotations

import hashlib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web

from gateway.pki.demo import DemoNetwork
from gateway.service.trust import load_signer_files
from gateway.xml.envelope import Acknowledgement, build_acknowledgement, read_header
from gateway.xml.parser import parse_untrusted

Answer = Literal[
    "honest",
    "five-years-ahead",
    "a-year-ago",
    "before-creation",
    "other-receiver",
    "unknown-reason",
]
LIES: tuple[Answer, ...] = (
    "five-years-ahead",
    "a-year-ago",
    "before-creation",
    "other-receiver",
    "unknown-reason",
)


@dataclass
class _Received:
    sender: str
    digest: str
    created: datetime
    receipt: datetime
    """When it first arrived: the truth."""


@dataclass
class HostileReceiver:
    pki: DemoNetwork
    code: str
    port: int
    skew: timedelta = timedelta(seconds=300)
    answer: Answer = "honest"
    received: dict[str, _Received] = field(default_factory=dict)
    answered: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        files = self.pki.authorities[self.code]
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(files.tls_cert), str(files.tls_key))
        tls.load_verify_locations(cafile=str(self.pki.ca_cert))
        tls.verify_mode = ssl.CERT_REQUIRED
        self._signer = load_signer_files(files.signing_cert, files.signing_key)
        app = web.Application()
        app.router.add_post("/v1/transmissions", self._transmission)
        app.router.add_get("/v1/acknowledgements/{message_id}", self._probe)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=tls).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _transmission(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = read_header(parse_untrusted(body))
        got = self.received.setdefault(
            header.message_id,
            _Received(
                header.sender, hashlib.sha256(body).hexdigest(), header.created, datetime.now(UTC)
            ),
        )
        return self._ack(header.message_id, got)

    async def _probe(self, request: web.Request) -> web.Response:
        message_id = request.match_info["message_id"]
        got = self.received.get(message_id)
        if got is None:
            return web.Response(status=404)
        return self._ack(message_id, got)

    def _ack(self, message_id: str, got: _Received) -> web.Response:
        receipt, receiver, status, code = got.receipt, got.sender, "accepted", None
        if self.answer == "five-years-ahead":
            receipt = datetime.now(UTC) + timedelta(days=5 * 365)
        elif self.answer == "a-year-ago":
            receipt = datetime.now(UTC) - timedelta(days=365)
        elif self.answer == "before-creation":
            receipt = got.created - self.skew - timedelta(seconds=1)
        elif self.answer == "other-receiver":
            receiver = next(c for c in self.pki.authorities if c not in (self.code, got.sender))
        elif self.answer == "unknown-reason":
            status, code = "rejected", "deadline-suspended"
        ack = Acknowledgement(
            acknowledgement_id=str(uuid.uuid4()),
            message_id=message_id,
            sender=self.code,
            receiver=receiver,
            digest=got.digest,
            receipt_time=receipt,
            status=status,
            reason_code=code,
            reason_text=None if code is None else "Fictitious reason.",
            head_sequence=1,
            head_hash="0" * 64,
        )
        self.answered += 1
        return web.Response(
            body=self._signer.sign(build_acknowledgement(ack)), content_type="application/xml"
        )
