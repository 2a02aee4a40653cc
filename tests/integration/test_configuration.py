"""A configuration mistake is found before the gateway runs, said in one line naming the
setting: a misspelt key (which used to be ignored, e.g. `[tls] crl_file` leaving revocation
checks off) stops `gateway serve` and fails `gateway doctor`; an address already taken by
another process is an error naming the setting, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.doctor import diagnose
from gateway.network import LocalGateway, build_local_network

pytestmark = pytest.mark.fault


def one_gateway(tmp_path: Path) -> LocalGateway:
    return build_local_network(tmp_path / "net", ["BE-DU", "NL-DU"]).gateways["BE-DU"]


def misspell(config: Path, right: str, wrong: str) -> None:
    text = config.read_text()
    assert f"\n{right} = " in text
    config.write_text(text.replace(f"\n{right} = ", f"\n{wrong} = ", 1))


def serve(config: Path) -> subprocess.CompletedProcess[str]:
    """`gateway serve` as its own process; it must stop by itself (the timeout is a bound,
    not an expectation)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def occupied(port: int) -> Iterator[None]:
    """Another process's listener on 127.0.0.1:port (a socket of this test process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_a_misspelt_crl_setting_stops_serve_naming_the_key_and_the_right_one(
    tmp_path: Path,
) -> None:
    gw = one_gateway(tmp_path)
    misspell(gw.config, "crl", "crl_file")
    done = serve(gw.config)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "gateway: error: tls.crl_file: unknown setting; did you mean tls.crl?"
    ]


async def test_doctor_fails_on_a_misspelt_key_naming_it(tmp_path: Path) -> None:
    gw = one_gateway(tmp_path)
    misspell(gw.config, "max_attempts", "max_attempt")
    findings = await diagnose(gw.config, peer_seconds=1)
    (finding,) = [f for f in findings if f.check == "configuration"]
    assert finding.status == "error"
    assert "delivery.max_attempt:" in finding.message
    assert "delivery.max_attempts" in finding.message


@pytest.mark.parametrize("listener", ["peer", "api"])
def test_a_port_already_in_use_is_one_line_naming_the_setting(
    tmp_path: Path, listener: str
) -> None:
    gw = one_gateway(tmp_path)
    port = gw.peer_port if listener == "peer" else gw.api_port
    with occupied(port):
        done = serve(gw.config)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"gateway: error: {listener}.port {port} on 127.0.0.1 is already in use"
    ]
