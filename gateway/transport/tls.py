"""TLS contexts for the peer network: TLS 1.2+ only, client certificates required, modern
AEAD suites. Being signed by the network CA admits a connection; only a fingerprint pinned in
the directory identifies a peer."""

from __future__ import annotations

import ssl
from typing import Any

from gateway.config import Config
from gateway.pki.certs import fingerprint_der

_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!RC4:!3DES"


def server_context(config: Config) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    ctx.load_verify_locations(cafile=str(config.ca_cert))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def client_context(config: Config) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    ctx.load_verify_locations(cafile=str(config.ca_cert))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_fingerprint(transport: Any) -> str | None:
    """SHA-256 fingerprint of the certificate the other end presented, or None."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return None if der is None else fingerprint_der(der)
