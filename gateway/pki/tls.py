"""TLS contexts for the peer network: TLS 1.2+ only, client certificates required, modern
AEAD suites. Being signed by the network CA admits a connection; only a fingerprint pinned in
the directory identifies a peer (the transport checks that: `gateway.transport.tls`)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

from gateway.config import Config

_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!RC4:!3DES"


def _audited_sslobject(on_failure: Callable[[str], None]) -> type[ssl.SSLObject]:
    """An SSLObject that reports failed handshakes: a refused TLS connection never reaches
    the HTTP layer, yet it must leave a trace in the register."""

    class AuditedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
                on_failure(str(detail))
                raise

    return AuditedSSLObject


def server_context(
    config: Config, on_handshake_failure: Callable[[str], None] | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if on_handshake_failure is not None:
        ctx.sslobject_class = _audited_sslobject(on_handshake_failure)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.load_cert_chain(
        str(config.tls_cert), str(config.tls_key), password=config.tls_key_password()
    )
    _trust(ctx, config)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def client_context(config: Config) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.load_cert_chain(
        str(config.tls_cert), str(config.tls_key), password=config.tls_key_password()
    )
    _trust(ctx, config)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _trust(ctx: ssl.SSLContext, config: Config) -> None:
    """The network CA bundle, and its CRL when one is configured: then a revoked peer
    certificate fails the handshake (OpenSSL's CRL check of the leaf)."""
    ctx.load_verify_locations(cafile=str(config.ca_cert))
    if config.crl is not None:
        ctx.load_verify_locations(cafile=str(config.crl))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def api_server_context(config: Config) -> ssl.SSLContext | None:
    """The internal API's TLS context ([api.tls]), or None when it is served in clear on
    loopback: TLS 1.2+, the same AEAD suites, and client certificates from `client_ca`
    required when one is set (a bearer token is still needed)."""
    settings = config.api.tls
    if settings.cert is None or settings.key is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.load_cert_chain(str(settings.cert), str(settings.key))
    if settings.client_ca is not None:
        ctx.load_verify_locations(cafile=str(settings.client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx
