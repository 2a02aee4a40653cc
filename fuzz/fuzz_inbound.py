"""Coverage-guided fuzzing (atheris/libFuzzer) of the inbound pipeline, as a peer's bytes go
through it: size and safe parse, schema, signature with the directory's pins, header from the
signed bytes, policy, attachments, form mapping. Any exception other than a `Rejection` (or a
form error the receiver turns into one) is a crash.

    python fuzz/fuzz_inbound.py CORPUS_DIR -max_total_time=300    # make soak
    python fuzz/fuzz_inbound.py --make-seeds CORPUS_DIR            # valid and hostile seeds

The seeds include a transmission signed by a pinned key, so mutations explore past the
signature check too (a mutated body fails the digest, but the schema, C14N and reference
checks before it run on near-valid input).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atheris

# Third-party libraries load uninstrumented (instrumenting them costs half a minute and
# their own fuzzing is their maintainers' business); our modules are instrumented.
import cryptography.x509  # noqa: F401
import lxml.etree  # noqa: F401
import xmlschema  # noqa: F401
import xmlsec  # noqa: F401

with atheris.instrument_imports(include=["gateway"]):
    from gateway.core.directory import Directory
    from gateway.core.policy import Rejection, check_inbound
    from gateway.pki.demo import create_demo_network
    from gateway.pki.directory_file import load_directory
    from gateway.xml.envelope import (
        check_attachments,
        read_attachments,
        read_form,
        read_header,
        validate_envelope,
    )
    from gateway.xml.forms import FormError, form_from_element
    from gateway.xml.parser import parse_untrusted
    from gateway.xml.signature import verify

MAX_BYTES = 1024 * 1024
DIRECTORY: Directory | None = None


def pipeline(data: bytes) -> None:
    assert DIRECTORY is not None
    directory = DIRECTORY

    def resolve(fingerprint: str) -> str | None:
        auth = directory.by_signing_fingerprint(fingerprint)
        return None if auth is None else auth.code

    try:
        root = parse_untrusted(data, max_bytes=MAX_BYTES, max_depth=64)
        validate_envelope(root)
        verified = verify(root, resolve)
        header = read_header(verified.root)
        check_inbound(
            header,
            local="NL-DU",
            peer=verified.signer_authority,
            directory=directory,
            now=datetime.now(UTC),
            max_skew=timedelta(days=3650),
        )
        form = read_form(verified.root)
        check_attachments(form, read_attachments(verified.root))
        form_from_element(form)
    except (Rejection, FormError):
        pass


def make_seeds(out: Path) -> None:
    """Seeds from a throw-away network: a valid transmission and a few hostile shapes."""
    from gateway.service.trust import load_signer_files
    from tests.integration.test_rejections import header, with_files

    out.mkdir(parents=True, exist_ok=True)
    net = create_demo_network(out / ".pki", ["BE-DU", "NL-DU"])
    files = net.authorities["BE-DU"]
    signer = load_signer_files(files.signing_cert, files.signing_key)
    valid = signer.sign(with_files(header()))
    (out / "valid.xml").write_bytes(valid)
    (out / "unsigned.xml").write_bytes(valid.split(b"<ds:Signature")[0] + b"</gw:Transmission>")
    (out / "doctype.xml").write_bytes(b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>')
    (out / "comment.xml").write_bytes(valid.replace(b"<gw:Sender>", b"<gw:Sender><!---->"))
    (out / "directory.path").write_text(str(net.directory_source))


def main() -> None:
    global DIRECTORY
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        make_seeds(Path(sys.argv[2]))
        return
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is None or not (corpus / "directory.path").exists():
        sys.exit("usage: fuzz_inbound.py CORPUS_DIR [libFuzzer options] (make seeds first)")
    DIRECTORY = load_directory(Path((corpus / "directory.path").read_text()))
    atheris.Setup(sys.argv, lambda data: pipeline(bytes(data)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
