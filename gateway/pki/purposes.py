"""What a certificate of the Dublin network may be used for: one purpose per key.

Each purpose is bound to its extended key usage, so a key issued for one use is refused by
the checks of every other: a TLS key cannot sign forms, a form-signing key cannot publish
the directory, and the health practitioners' encryption key does nothing but receive
health certificates.
"""

from __future__ import annotations

from typing import Literal

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

# id-kp-documentSigning (RFC 9336): not in cryptography's ExtendedKeyUsageOID list.
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

# Publishing the authority directory. No registered arc exists for this network, so the OID
# is a UUID-derived one (ITU-T X.667, "2.25.<uuid as integer>"), unique without registration.
DIRECTORY_SIGNING = ObjectIdentifier("2.25.83813124309854261602530419651638621261")

# Receiving Art. 39 health certificates, encrypted (CMS EnvelopedData) for the health
# practitioners of an authority: the usual S/MIME purpose.
HEALTH_ENCRYPTION = ExtendedKeyUsageOID.EMAIL_PROTECTION

Purpose = Literal["tls", "signing", "directory", "health-encryption"]
PURPOSES: tuple[Purpose, ...] = ("tls", "signing", "directory", "health-encryption")
