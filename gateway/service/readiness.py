"""Whether the trust a gateway holds still lets it exchange now: what the readiness probe
(`GET /readyz`) and the metric `gateway_own_certificate_status` report.

A trust state is checked through when it is loaded (gateway.service.trust.load_trust: our
certificates issued by the network CA, unrevoked and pinned for us; the directory signed by
the publisher and not older than before), and a reload that fails those checks is refused,
so the state in force passed them once. What changes afterwards is time: a certificate
expires, a CRL passes its next update. These checks are the ones time can break, read from
the same certificate report the administrator's API and metrics show
(`certificate_report`), so that the probe, `GET /api/v1/admin/certificates` and the metrics
never disagree."""

from __future__ import annotations

from datetime import datetime

from gateway.service.trust import CertificateStatus, TrustState, certificate_report

DATABASE = "database"
DIRECTORY = "directory"
CERTIFICATES = "certificates"
CRL = "crl"
CHECKS = (DATABASE, DIRECTORY, CERTIFICATES, CRL)
"""Every readiness check, in the order `failing` lists them."""

OWN_PURPOSES = ("tls", "signing")
USABLE = frozenset({"ok", "expiring"})
"""Statuses of a certificate that can be used now (expiring: within the warning window)."""


def own_certificates(report: list[CertificateStatus], authority: str) -> dict[str, bool]:
    """Our own TLS and signing certificates: whether each is valid now and not revoked."""
    return {
        c.purpose: c.status in USABLE
        for c in report
        if c.owner == authority and c.purpose in OWN_PURPOSES
    }


def trust_failures(state: TrustState, authority: str, now: datetime) -> list[str]:
    """The trust checks that fail at `now`, in the order of CHECKS:

    - directory: the signed directory in force names us and its publisher's certificate is
      valid now and not revoked (peers check the same signature);
    - certificates: our TLS and signing certificates are valid now and not revoked;
    - crl: where a CRL is configured, `now` is before its next update (after it, the CRL
      can no longer be reloaded, and peers refuse ours)."""
    report = certificate_report(state, authority, now, 0)
    failing: list[str] = []
    publisher = [c for c in report if c.owner == "operator" and c.purpose == "directory"]
    if state.directory.get(authority) is None or not all(c.status in USABLE for c in publisher):
        failing.append(DIRECTORY)
    own = own_certificates(report, authority)
    if set(own) != set(OWN_PURPOSES) or not all(own.values()):
        failing.append(CERTIFICATES)
    crl = state.revocations
    if crl is not None and crl.next_update is not None and now >= crl.next_update:
        failing.append(CRL)
    return failing
