"""The operator's and the practitioners' commands around the directory (Art. 41) and the
health certificate (Art. 39): publish, verify, refuse going back, open with the right key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.pki.demo import DemoNetwork, create_demo_network


@pytest.fixture
def pki(tmp_path: Path) -> DemoNetwork:
    return create_demo_network(tmp_path / "pki", ["BE-DU", "NL-DU"])


def test_art41_publish_then_show_verifies_and_older_versions_are_refused(
    pki: DemoNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    source = json.loads(pki.directory_source.read_text())
    source["version"] = 2
    pki.directory_source.write_text(json.dumps(source))
    publish = [
        "pki",
        "directory",
        "publish",
        "--source",
        str(pki.directory_source),
        "--cert",
        str(pki.publisher_cert),
        "--key",
        str(pki.publisher_key),
        "--out",
        str(pki.directory),
        "--ca",
        str(pki.ca_cert),
    ]
    assert main(publish) == 0
    assert "published directory version 2 (2 authorities)" in capsys.readouterr().out
    assert main(["pki", "directory", "show", str(pki.directory), "--ca", str(pki.ca_cert)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["verified"] and shown["version"] == 2
    assert [a["code"] for a in shown["authorities"]] == ["BE-DU", "NL-DU"]

    assert main(publish) == 2, "the same version again is refused"
    assert "raise 'version' in the source" in capsys.readouterr().err

    pki.directory.write_bytes(pki.directory.read_bytes().replace(b"BE-DU", b"BE-DX", 1))
    assert main(["pki", "directory", "show", str(pki.directory), "--ca", str(pki.ca_cert)]) == 2
    assert "gateway: error:" in capsys.readouterr().err


def test_art41_a_key_that_is_not_the_publishers_cannot_publish(
    pki: DemoNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    be = pki.authorities["BE-DU"]
    code = main(
        [
            "pki",
            "directory",
            "publish",
            "--source",
            str(pki.directory_source),
            "--cert",
            str(pki.publisher_cert),
            "--key",
            str(be.signing_key),
            "--out",
            str(pki.directory.with_name("other.xml")),
        ]
    )
    assert code == 2
    assert "does not belong to the key" in capsys.readouterr().err
