"""Hostile transport: old protocols and weak ciphers, certificates that are expired or of the
wrong kind, slow clients and stalled bodies that must time out without starving honest
peers, and replays. Only pinned, current identities of the directory exchange (Art. 41);
every refusal leaves a register entry (Art. 40(9))."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.pki.certs import load_certificate, load_private_key
from gateway.pki.demo import issue_certificate, write_certificate, write_private_key
from tests.integration.conftest import Harness, make_harness
from tests.integration.test_rejections import (
    assert_rejected,
    assert_tls_refusal_registered,
    header,
    nl,
    post,
    with_files,
)

pytestmark = pytest.mark.attack
__all__ = ["nl"]


def client_context(h: Harness, code: str = "BE-DU") -> ssl.SSLContext:
    files = h.net.pki.authorities[code]
    ctx = ssl.create_default_context(cafile=str(h.net.pki.ca_cert))
    ctx.load_cert_chain(str(files.tls_cert), str(files.tls_key))
    return ctx


async def raw_post(h: Harness, announced: int, sent: bytes) -> bytes:
    """A POST as BE-DU that announces `announced` bytes and sends only `sent`; the answer."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        h.net.gateways["NL-DU"].peer_port,
        ssl=client_context(h),
        server_hostname="localhost",
    )
    writer.write(
        b"POST /v1/transmissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
        + f"Content-Length: {announced}\r\n\r\n".encode()
        + sent
    )
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), timeout=5)
    finally:
        writer.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
async def test_tls_1_0_is_refused(nl: Harness) -> None:
    ctx = client_context(nl)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pytest.skip("this OpenSSL cannot even offer TLS 1.0")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        with pytest.raises(aiohttp.ClientError):
            await post(s, nl, b"<x/>")
    await assert_tls_refusal_registered(nl, "protocol")


async def test_tls_1_2_with_only_weak_ciphers_is_refused(nl: Harness) -> None:
    """CBC-mode suites without forward secrecy: no shared cipher with the gateway."""
    ctx = client_context(nl)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        with pytest.raises(aiohttp.ClientError):
            await post(s, nl, b"<x/>")
    await assert_tls_refusal_registered(nl, "cipher")


async def test_expired_client_certificate_is_refused_at_tls(nl: Harness, tmp_path: Path) -> None:
    pki = nl.net.pki
    key = ec.generate_private_key(ec.SECP256R1())
    old = load_certificate(pki.authorities["BE-DU"].tls_cert)
    now = datetime.now(UTC)
    cert = issue_certificate(
        load_certificate(pki.ca_cert),
        load_private_key(pki.ca_key),  # type: ignore[arg-type]
        key.public_key(),
        old.subject,
        purpose="tls",
        sans=[x509.DNSName("localhost")],
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    write_private_key(tmp_path / "k.pem", key)
    write_certificate(tmp_path / "c.pem", cert)
    async with nl.peer_session(tmp_path / "c.pem", tmp_path / "k.pem") as s:
        with pytest.raises(aiohttp.ClientError):
            await post(s, nl, b"<x/>")
    await assert_tls_refusal_registered(nl, "expired")


async def test_slow_clients_time_out_without_starving_honest_peers(tmp_path: Path) -> None:
    """Twenty connections trickle a request header byte by byte (slowloris): each is cut at
    the idle timeout, and meanwhile an honest transmission is answered at once."""
    h = await make_harness(tmp_path, peer={"idle_timeout_seconds": 1.0})
    try:
        await h.start("NL-DU")
        port = h.net.gateways["NL-DU"].peer_port
        ctx = client_context(h)
        slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
            )
            writer.write(b"POST /v1/transmissions HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            slow.append((reader, writer))

        async def trickle() -> None:
            for _ in range(40):
                for _, writer in slow:
                    if not writer.is_closing():
                        writer.write(b"X")
                await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = h.signer("BE-DU").sign(with_files(header()))
        async with h.session_as("BE-DU") as s:
            status, _ = await post(s, h, body)
        assert status == 200
        assert loop.time() - started < 2.0, "the honest peer was not kept waiting"
        closed = 0
        for reader, _ in slow:
            try:
                data = await asyncio.wait_for(reader.read(), timeout=5)
            except (ConnectionError, ssl.SSLError):
                data = b""
            closed += data == b"" or b"HTTP/1.1" in data
        trickling.cancel()
        for _, writer in slow:
            writer.close()
        assert closed == 20, "every slow connection was cut by the server"
    finally:
        await h.close()


async def test_stalled_body_times_out_with_a_register_entry(tmp_path: Path) -> None:
    h = await make_harness(tmp_path, peer={"body_timeout_seconds": 0.5})
    try:
        await h.start("NL-DU")
        answer = await raw_post(h, 5000, b"<gw:Transmission")
        assert answer.startswith(b"HTTP/1.1 422"), answer[:100]
        entries = await h.ctx("NL-DU").store.register.query(limit=1000)
        assert entries[-1].event == "rejected"
        assert "did not arrive in time" in entries[-1].details["text"]
        assert await h.ctx("NL-DU").store.messages.count() == 0
    finally:
        await h.close()


async def test_oversized_body_is_refused_from_its_announced_length(nl: Harness) -> None:
    """Refused on the Content-Length alone: the gateway never reads the 50 MB."""
    answer = await raw_post(nl, 52428800, b"<x>")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


async def test_replayed_transmission_returns_the_original_acknowledgement(nl: Harness) -> None:
    """A captured transmission sent again (by anyone who can reach us as BE-DU) creates
    nothing new: the same signed acknowledgement comes back."""
    body = nl.signer("BE-DU").sign(with_files(header()))
    async with nl.session_as("BE-DU") as s:
        first = await post(s, nl, body)
        second = await post(s, nl, body)
    assert first == second and first[0] == 200
    store = nl.ctx("NL-DU").store
    assert await store.messages.count() == 1
    received = await store.register.query(event="received")
    assert len(received) == 1


async def test_resigned_copy_with_new_id_but_reused_reference_is_refused(nl: Harness) -> None:
    """The same request re-signed under a fresh message id: the conversation rules see a
    second request for a case that exists, and refuse it."""
    first = header()
    async with nl.session_as("BE-DU") as s:
        status, _ = await post(s, nl, nl.signer("BE-DU").sign(with_files(first)))
        assert status == 200
        copy = header(reference=first.reference)
        status, ack = await post(s, nl, nl.signer("BE-DU").sign(with_files(copy)))
    assert status == 422
    assert b"conversation-rule" in ack
    assert await nl.ctx("NL-DU").store.messages.count() == 1


async def test_authority_a_sending_as_authority_b_is_refused(nl: Harness) -> None:
    """GR-DU, with its own valid TLS identity, relays a transmission BE-DU signed: the TLS
    peer, the signer and the header's sender must be one authority."""
    async with nl.session_as("GR-DU") as s:
        status, ack = await post(s, nl, nl.signer("BE-DU").sign(with_files(header())))
    await assert_rejected(nl, status, ack, 422, "signer-mismatch", sender="GR-DU")


async def test_acknowledgement_probe_answers_the_sender_only(nl: Harness) -> None:
    """GET /v1/acknowledgements/{id} gives a sender that lost our answer its proof of
    receipt; to anyone else a message we hold is simply not found."""
    head = header()
    url = nl.net.gateways["NL-DU"].peer_url + f"/v1/acknowledgements/{head.message_id}"
    async with nl.session_as("BE-DU") as be:
        status, ack = await post(be, nl, nl.signer("BE-DU").sign(with_files(head)))
        assert status == 200
        async with be.get(url) as resp:
            assert resp.status == 200 and await resp.read() == ack
        async with be.get(url.replace(head.message_id, "0" * 8)) as resp:
            assert resp.status == 404
    async with nl.session_as("GR-DU") as gr, gr.get(url) as resp:
        assert resp.status == 404


async def test_tls_handshakes_that_never_complete_are_cut_at_the_idle_timeout(
    tmp_path: Path,
) -> None:
    """Issue 14, item 11: twenty connections open TCP and never start the TLS handshake.
    Each is closed by the gateway at `peer.idle_timeout_seconds` (1 s here), not after
    asyncio's default 60 s, and meanwhile an honest peer is answered at once."""
    h = await make_harness(tmp_path, peer={"idle_timeout_seconds": 1.0})
    try:
        await h.start("NL-DU")
        port = h.net.gateways["NL-DU"].peer_port
        mute = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with h.session_as("BE-DU") as s:
            status, _ = await post(s, h, h.signer("BE-DU").sign(with_files(header())))
        assert status == 200

        async def closed_by_server(reader: asyncio.StreamReader) -> float:
            try:
                await asyncio.wait_for(reader.read(), timeout=10)
            except ConnectionError:
                pass
            except TimeoutError:
                return float("inf")
            return loop.time() - started

        waits = await asyncio.gather(*(closed_by_server(r) for r, _ in mute))
        for _, writer in mute:
            writer.close()
        assert max(waits) < 5, f"a mute connection was held {max(waits):.1f} s"
    finally:
        await h.close()


async def test_the_peer_listener_announces_no_software_version(nl: Harness) -> None:
    """Issue 14, item 14: no `Server: Python/3.x aiohttp/3.y` on any answer, the ones
    aiohttp writes itself for malformed HTTP included."""
    url = nl.net.gateways["NL-DU"].peer_url
    async with nl.session_as("BE-DU") as s:
        async with s.get(url + "/v1/health") as resp:
            assert resp.status == 200
            served = resp.headers.get("Server", "")
        async with s.get(url + "/no-such-route") as resp:
            assert resp.status == 404
            not_found = resp.headers.get("Server", "")
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        nl.net.gateways["NL-DU"].peer_port,
        ssl=client_context(nl),
        server_hostname="localhost",
    )
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    malformed = await asyncio.wait_for(reader.read(65536), timeout=5)
    writer.close()
    assert malformed.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), malformed[:60]
    for banner in (served, not_found, malformed.decode("latin-1")):
        assert "aiohttp" not in banner and "Python" not in banner, banner
