"""Art. 41(1)-(2): only notified authorities exchange, as the operator's signed directory and
CRL say *now*. Revocation, directory updates and certificate rotation apply to running
gateways, without a restart, and nothing in flight is lost or duplicated."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.client import ApiError
from gateway.config import load_config
from gateway.context import open_context
from gateway.core.register import verify_chain
from gateway.pki.certs import fingerprint, load_certificate
from gateway.service.trust import TrustError
from gateway.xml.envelope import read_acknowledgement
from gateway.xml.parser import parse_untrusted
from gateway.xml.signature import Signer, verify
from tests.integration.conftest import Harness, answered_request, send_request
from tests.integration.test_rejections import header, with_files
from tests.pki_helpers import publish, renew, revoke

pytestmark = pytest.mark.asyncio


def transmission(signer: Signer, reference: str) -> tuple[str, bytes]:
    """A well-formed take charge request from BE-DU to NL-DU, signed by `signer`."""
    head = header(reference=reference)
    return head.message_id, signer.sign(with_files(head))


async def events(h: Harness, code: str, event: str) -> list[Any]:
    return await h.ctx(code).store.register.query(event=event, limit=1000)


async def wait_until(predicate: Any, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_art41_revoked_authority_is_refused_after_reload_without_restart(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be_files = h.net.pki.authorities["BE-DU"]
    sent = await send_request(h.api("BE-DU"), case_number="REV-1")
    await h.api("BE-DU").wait_for_state(sent["message_id"], {"delivered"}, within=20)

    async with h.session_as("BE-DU") as kept_alive:
        # A connection opened before the revocation, kept alive across it.
        url = h.net.gateways["NL-DU"].peer_url
        async with kept_alive.get(url + "/v1/health") as resp:
            assert resp.status == 200
        number = revoke(h.net.pki, load_certificate(be_files.tls_cert))
        result = await h.api("NL-DU", "administrator").reload_trust()
        assert result["applied"] and f"CRL number 1 -> {number}" in result["changes"]

        # The kept-alive connection is refused per request, with a signed reason.
        message_id, body = transmission(h.signer("BE-DU"), "BE01REV-2")
        async with kept_alive.post(
            url + "/v1/transmissions", data=body, headers={"Content-Type": "application/xml"}
        ) as resp:
            assert resp.status == 403
            ack = read_acknowledgement(
                verify(parse_untrusted(await resp.read()), h.ctx("NL-DU").signer_authority).root
            )
        assert ack.status == "rejected" and ack.reason_code == "certificate-revoked"

    # A new connection fails at the TLS handshake (OpenSSL's CRL check), and says so.
    async with h.session_as("BE-DU") as fresh:
        with pytest.raises(aiohttp.ClientError):
            async with fresh.get(url + "/v1/health") as resp:
                await resp.read()
    await wait_until(lambda: _has_tls_refusal(h, "NL-DU"))
    reloads = await events(h, "NL-DU", "trust-reloaded")
    assert reloads[-1].details["actor"] == "administrator"
    assert reloads[-1].details["crl_number"] == number
    assert await h.ctx("NL-DU").store.messages.get(message_id) is None


async def _has_tls_refusal(h: Harness, code: str) -> bool:
    rows = await h.ctx(code).store.register.query(reason="tls-refused", limit=10)
    return any("revoked" in r.details.get("text", "") for r in rows)


async def test_art41_revoked_signing_certificate_is_refused_at_signature_check(
    harness: Harness,
) -> None:
    h = harness
    await h.start("NL-DU")
    revoke(h.net.pki, h.signer("BE-DU").certificate)
    await h.api("NL-DU", "administrator").reload_trust()
    _, body = transmission(h.signer("BE-DU"), "BE01REV-3")
    status, ack = await h.post_signed("BE-DU", "NL-DU", body)
    assert status == 403
    assert ack.reason_code == "certificate-revoked"
    rejected = await events(h, "NL-DU", "rejected")
    assert rejected[-1].reason == "certificate-revoked"


async def test_art41_new_directory_applies_on_file_change_and_is_recorded(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU")

    def rename(data: dict[str, Any]) -> None:
        for entry in data["authorities"]:
            if entry["code"] == "GR-DU":
                entry["name"] = "Dublin unit of Greece (Asylum Service)"

    publish(h.net.pki, rename)
    admin = h.api("BE-DU", "administrator")

    async def applied() -> bool:
        return (await admin.admin_directory())["version"] == 2

    await wait_until(applied)
    view = await admin.admin_directory()
    gr = next(a for a in view["authorities"] if a["code"] == "GR-DU")
    assert gr["name"] == "Dublin unit of Greece (Asylum Service)"
    reload = (await events(h, "BE-DU", "trust-reloaded"))[-1]
    assert reload.details["trigger"] == "file-change"
    assert reload.details["changes"] == ["directory version 1 -> 2"]


async def test_art41_stale_tampered_or_wrongly_signed_directory_is_refused(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("NL-DU")
    admin = h.api("NL-DU", "administrator")
    pki = h.net.pki
    version_one = pki.directory.read_bytes()
    publish(pki, lambda data: None)
    assert (await admin.reload_trust())["state"]["directory_version"] == 2
    version_two = pki.directory.read_bytes()

    async def refused_because(data: bytes, words: str) -> None:
        pki.directory.write_bytes(data)
        with pytest.raises(ApiError) as caught:
            await admin.reload_trust()
        assert caught.value.status == 409
        assert words in caught.value.problem["detail"], caught.value.problem["detail"]
        assert (await admin.admin_directory())["version"] == 2
        last = (await events(h, "NL-DU", "trust-reload-refused"))[-1]
        assert words in last.details["text"]

    await refused_because(version_one, "older than version 2")
    await refused_because(version_two.replace(b"Dublin unit of", b"Dublin unit 0f"), "signature")
    # Signed by an authority's form-signing key: issued by the network CA, wrong purpose.
    from gateway.core.directory import Directory
    from gateway.pki.signed_directory import sign_directory
    from tests.pki_helpers import read_source

    pki.directory.write_bytes(version_two)
    data = read_source(pki).to_dict() | {"version": 3}
    forged = sign_directory(Directory.from_dict(data), h.signer("BE-DU"), _now())
    await refused_because(forged, "not issued for this purpose")

    # The mark survives a restart: the gateway does not start on an older directory.
    await h.stop("NL-DU")
    pki.directory.write_bytes(version_one)
    with pytest.raises(TrustError, match="older than version 2"):
        await open_context(load_config(h.net.gateways["NL-DU"].config))
    pki.directory.write_bytes(version_two)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_art41_rotation_under_traffic_loses_and_duplicates_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    """NL-DU renews its TLS and signing certificates while BE-DU keeps sending: the
    directory pins old and new during the overlap, then only the new ones."""
    h = harness
    await h.start("BE-DU", "NL-DU")
    be, nl = h.api("BE-DU"), h.api("NL-DU")
    pki = h.net.pki
    files = pki.authorities["NL-DU"]
    sent: list[str] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        n = 0
        while not stop.is_set() and n < 60:
            n += 1
            result = await send_request(be, case_number=f"ROT-{n}")
            sent.append(result["message_id"])
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(traffic())
    old_tls, old_signing = load_certificate(files.tls_cert), load_certificate(files.signing_cert)
    tls_key, tls_cert, new_tls = renew(pki, "NL-DU", "tls", tmp_path / "renewed")
    sig_key, sig_cert, new_signing = renew(pki, "NL-DU", "signing", tmp_path / "renewed")

    def pin_new(data: dict[str, Any]) -> None:
        nl_entry = next(a for a in data["authorities"] if a["code"] == "NL-DU")
        nl_entry["tls_fingerprints"].append(fingerprint(new_tls))
        nl_entry["signing_fingerprints"].append(fingerprint(new_signing))

    publish(pki, pin_new)
    await _both_at_version(h, 2)
    # NL-DU installs its renewed certificates (key first, then certificate, each atomic).
    for key, cert, key_target, cert_target in (
        (tls_key, tls_cert, files.tls_key, files.tls_cert),
        (sig_key, sig_cert, files.signing_key, files.signing_cert),
    ):
        os.replace(key, key_target)
        os.replace(cert, cert_target)

    async def nl_renewed() -> bool:
        state = h.ctx("NL-DU").trust.state
        return fingerprint(state.tls_certificate) == fingerprint(new_tls) and fingerprint(
            state.signer.certificate
        ) == fingerprint(new_signing)

    await wait_until(nl_renewed, within=20)
    sent_before_unpin = len(sent)

    def unpin_old(data: dict[str, Any]) -> None:
        nl_entry = next(a for a in data["authorities"] if a["code"] == "NL-DU")
        nl_entry["tls_fingerprints"].remove(fingerprint(old_tls))
        nl_entry["signing_fingerprints"].remove(fingerprint(old_signing))

    publish(pki, unpin_old)
    await _both_at_version(h, 3)
    await asyncio.sleep(0.5)
    stop.set()
    await sender
    assert len(sent) > sent_before_unpin, "traffic flowed after the old pins were removed"
    changes = [c for e in await events(h, "NL-DU", "trust-reloaded") for c in e.details["changes"]]
    assert "own TLS certificate renewed" in changes
    assert "own signing certificate renewed" in changes
    # NL-DU answers one of them with its new signing key; BE-DU accepts the reply.
    reply = await nl.submit(
        "take-charge-reply",
        "BE-DU",
        _example("take-charge-reply-acceptance"),
        in_reply_to=sent[-1],
    )
    await nl.wait_for_state(reply["message_id"], {"delivered"}, within=20)
    for message_id in sent:
        await be.wait_for_state(message_id, {"delivered"}, within=30)
    received = [m for m in await _all_inbox(nl) if m["type"] == "take-charge-request"]
    ids = [m["message_id"] for m in received]
    assert sorted(ids) == sorted(sent), "every message arrived"
    assert len(ids) == len(set(ids)), "none twice"
    for code in ("BE-DU", "NL-DU"):
        rows = await h.ctx(code).store.register.query(limit=1000)
        verify_chain(rows)
    assert len(sent) >= 5


async def _both_at_version(h: Harness, version: int) -> None:
    async def both() -> bool:
        return all(
            h.ctx(code).trust.state.directory.version == version for code in ("BE-DU", "NL-DU")
        )

    await wait_until(both, within=20)


def _example(name: str) -> dict[str, Any]:
    from tests.integration.conftest import example

    return example(name)


async def _all_inbox(client: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        page = await client.inbox(cursor=cursor, limit=100)
        out += page["items"]
        if not page["items"]:
            return out
        cursor = page["next_cursor"]


async def test_admin_endpoints_are_for_administrators_and_report_expiry(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU")
    for role in ("case-officer", "health-practitioner", "auditor"):
        client = h.api("BE-DU", role)
        for call in (client.admin_directory, client.admin_certificates, client.reload_trust):
            with pytest.raises(ApiError) as caught:
                await call()
            assert caught.value.status == 403
    admin = h.api("BE-DU", "administrator")
    report = await admin.admin_certificates()
    own = {(c["owner"], c["purpose"]): c for c in report["certificates"]}
    assert own[("BE-DU", "tls")]["status"] == "ok"
    assert own[("BE-DU", "signing")]["fingerprint"] == fingerprint(h.signer("BE-DU").certificate)
    assert {("NL-DU", "health-encryption"), ("network", "ca"), ("operator", "directory")} <= set(
        own
    )
    crl = await admin.admin_crl()
    assert crl["configured"] and crl["number"] == 1 and crl["revoked_serials"] == []
    metrics = await admin.metrics()
    assert "gateway_certificate_expiry_seconds{" in metrics
    assert "gateway_directory_version 1.0" in metrics
    assert "gateway_crl_next_update_seconds" in metrics


async def test_certificates_within_the_warning_window_are_flagged(tmp_path: Path) -> None:
    """Demo certificates live a year; a 400-day window makes every one of them "expiring"."""
    from tests.integration.conftest import make_harness

    h = await make_harness(tmp_path)
    config = h.net.gateways["BE-DU"].config
    config.write_text(config.read_text() + "expiry_warning_days = 400\n")
    try:
        await h.start("BE-DU")
        admin = h.api("BE-DU", "administrator")
        report = await admin.admin_certificates()
        assert report["attention"] == len(report["certificates"])
        assert {c["status"] for c in report["certificates"]} == {"expiring"}
        metrics = await admin.metrics()
        assert 'gateway_certificate_attention{fingerprint="' in metrics
        assert "} 1.0" in metrics
    finally:
        await h.close()


async def test_clock_moves_and_reloads_are_admin_actions_in_the_register(
    harness: Harness,
) -> None:
    h = harness
    await h.start("BE-DU")
    admin = h.api("BE-DU", "administrator")
    await admin.advance_clock(60)
    await admin.reload_trust()
    actions = await events(h, "BE-DU", "admin-action")
    assert actions[-1].details["action"] == "clock-advanced"
    assert actions[-1].details["actor"] == "administrator"
    reloads = await events(h, "BE-DU", "trust-reloaded")
    assert reloads[-1].details["trigger"] == "admin-api"
    assert reloads[-1].details["changes"] == []


async def test_answered_request_still_works_after_a_reload(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    await h.api("BE-DU", "administrator").reload_trust()
    await h.api("NL-DU", "administrator").reload_trust()
    await answered_request(h, "AFTER-RELOAD")


async def test_gateway_keys_encrypted_at_rest_load_with_their_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An authority may keep its gateway's TLS and signing keys encrypted; the passphrase
    comes from a file or the environment, never from the configuration itself."""
    from cryptography.hazmat.primitives import serialization

    from gateway.pki.certs import load_private_key
    from tests.integration.conftest import make_harness

    h = await make_harness(tmp_path)
    files = h.net.pki.authorities["BE-DU"]
    secret = tmp_path / "passphrase"
    secret.write_text("a long enough passphrase\n")
    monkeypatch.setenv("BE_SIGNING_PASSPHRASE", "another long passphrase")
    for path, password in (
        (files.tls_key, b"a long enough passphrase"),
        (files.signing_key, b"another long passphrase"),
    ):
        key = load_private_key(path)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
        )
    config = h.net.gateways["BE-DU"].config
    text = config.read_text()
    text = text.replace("[signing]\n", '[signing]\nkey_passphrase_env = "BE_SIGNING_PASSPHRASE"\n')
    text = text.replace("[tls]\n", f'[tls]\nkey_passphrase_file = "{secret}"\n')
    config.write_text(text)
    try:
        await h.start("BE-DU", "NL-DU")
        await answered_request(h, "ENCRYPTED-KEYS")
        monkeypatch.setenv("BE_SIGNING_PASSPHRASE", "")
        with pytest.raises(ApiError) as caught:
            await h.api("BE-DU", "administrator").reload_trust()
        assert caught.value.status == 409
        assert "passphrase" in caught.value.problem["detail"]
    finally:
        await h.close()
