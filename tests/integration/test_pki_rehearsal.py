"""A rehearsable PKI (issue 17, item 8): the demo network's CA has the operator's layout, so
the operator's own commands work on it: `gateway pki list` (serials in hexadecimal, as
`openssl` prints them), `revoke` by that serial, and a running gateway then refuses the
revoked certificate; a passphrase given for the demo CA's key in clear says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography import x509

from gateway.examples import attachments_for
from gateway.pki.certs import load_certificate

from .conftest import Harness, example
from .conftest import run_gateway as gateway


async def test_revoking_a_demo_certificate_with_the_operators_commands(
    harness: Harness, tmp_path: Path
) -> None:
    ca = harness.net.pki.ca_cert.parent
    nl_tls = load_certificate(harness.net.pki.authorities["NL-DU"].tls_cert)
    listed = await asyncio.to_thread(gateway, "pki", "list", "--ca", str(ca))
    assert listed.returncode == 0, listed.stderr
    serial = format(nl_tls.serial_number, "X")
    (row,) = [line for line in listed.stdout.splitlines() if serial in line]
    assert "NL-DU" in row and "tls" in row and "valid" in row

    await harness.start("BE-DU", "NL-DU")
    be = harness.api("BE-DU")
    form = example("take-charge-request.json")
    first = await be.submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="REHEARSE-1",
        attachments=attachments_for(form),
    )
    await be.wait_for_state(first["message_id"], {"delivered"}, within=20)

    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a passphrase of the demo\n")
    passphrase.chmod(0o600)
    wrong = await asyncio.to_thread(
        gateway, "pki", "revoke", "--ca", str(ca), "--serial", serial,
        "--passphrase-file", str(passphrase),
    )  # fmt: skip
    assert wrong.returncode == 2 and "is not encrypted" in wrong.stderr
    done = await asyncio.to_thread(
        gateway, "pki", "revoke", "--ca", str(ca), "--serial", serial,
        "--reason", "key_compromise",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"revoked serial {serial}" in done.stdout
    crl = x509.load_pem_x509_crl(harness.net.pki.crl.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(nl_tls.serial_number) is not None

    # BE-DU applies the new CRL by itself (trust.reload_check_seconds) and no longer
    # delivers to NL-DU, whose TLS certificate is revoked
    for _ in range(100):
        revocations = harness.ctx("BE-DU").trust.state.revocations
        if revocations is not None and revocations.is_revoked(nl_tls):
            break
        await asyncio.sleep(0.1)
    assert revocations is not None and revocations.is_revoked(nl_tls)
    second = await be.submit(
        "take-charge-request",
        "NL-DU",
        form,
        case_number="REHEARSE-2",
        attachments=attachments_for(form),
    )
    for _ in range(100):
        view = await be.message(second["message_id"])
        if (view.get("delivery") or {}).get("attempts", 0) >= 1:
            break
        await asyncio.sleep(0.1)
    assert view["state"] == "queued"
    relisted = await asyncio.to_thread(gateway, "pki", "list", "--ca", str(ca))
    (row,) = [line for line in relisted.stdout.splitlines() if serial in line]
    assert "revoked" in row
    bad = await asyncio.to_thread(gateway, "pki", "revoke", "--ca", str(ca), "--serial", "not-hex")
    assert bad.returncode == 2 and "hexadecimal" in bad.stderr
