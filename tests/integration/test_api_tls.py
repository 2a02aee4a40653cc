"""The internal API beyond loopback (issue 17, item 6): only over TLS ([api.tls]), with
client certificates when `client_ca` is set; a real handshake on loopback with the demo
network's certificates (BE-DU's TLS certificate serves the API; NL-DU's is the client's)."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from gateway.client import GatewayClient
from gateway.config import ConfigError, load_config

from .conftest import Harness


def _with_api_tls(harness: Harness, *, client_ca: bool) -> None:
    files = harness.net.pki.authorities["BE-DU"]
    config = harness.net.gateways["BE-DU"].config
    lines = [
        "",
        "[api.tls]",
        f'cert = "{files.tls_cert}"',
        f'key = "{files.tls_key}"',
    ]
    if client_ca:
        lines.append(f'client_ca = "{harness.net.pki.ca_cert}"')
    config.write_text(config.read_text() + "\n".join(lines) + "\n")


def _client_context(harness: Harness, *, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(harness.net.pki.ca_cert))
    if with_certificate:
        nl = harness.net.pki.authorities["NL-DU"]
        context.load_cert_chain(str(nl.tls_cert), str(nl.tls_key))
    return context


async def test_the_api_over_tls_with_client_certificates(harness: Harness) -> None:
    _with_api_tls(harness, client_ca=True)
    await harness.start("BE-DU")
    gw = harness.net.gateways["BE-DU"]
    https = gw.api_url.replace("http://", "https://")
    client = GatewayClient(
        https,
        gw.tokens["administrator"],
        ssl_context=_client_context(harness, with_certificate=True),
    )
    try:
        assert (await client.health())["authority"] == "BE-DU"
    finally:
        await client.close()
    bare = _client_context(harness, with_certificate=False)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):  # no client certificate: no handshake
            async with session.get(https + "/livez", ssl=bare) as resp:
                await resp.read()
        with pytest.raises(aiohttp.ClientError):  # and nothing in clear
            async with session.get(gw.api_url + "/livez") as resp:
                await resp.read()


async def test_the_api_over_tls_without_client_certificates_still_needs_a_token(
    harness: Harness,
) -> None:
    _with_api_tls(harness, client_ca=False)
    await harness.start("BE-DU")
    https = harness.net.gateways["BE-DU"].api_url.replace("http://", "https://")
    context = _client_context(harness, with_certificate=False)
    async with aiohttp.ClientSession() as session:
        async with session.get(https + "/livez", ssl=context) as live:
            assert live.status == 200
        async with session.get(https + "/api/v1/health", ssl=context) as anonymous:
            assert anonymous.status == 401


def test_beyond_loopback_the_api_is_served_only_over_tls(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('authority = "BE-DU"\n[api]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=r"api\.host must be a loopback address unless"):
        load_config(config)
    config.write_text(
        'authority = "BE-DU"\n[api]\nhost = "0.0.0.0"\n[api.tls]\ncert = "api.pem"\n'
        'key = "api.key"\n'
    )
    assert load_config(config).api.tls.enabled
    config.write_text('authority = "BE-DU"\n[api.tls]\ncert = "api.pem"\n')
    with pytest.raises(ConfigError, match="set both, or neither"):
        load_config(config)
