"""A complete local network of gateways on loopback (PKI, directory, one configuration per
authority), as used by `gateway demo` and the integration tests."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.principals import Principal, hash_token, new_token
from gateway.core.roles import ROLES
from gateway.pki.demo import DemoNetwork, create_demo_network
from gateway.pki.directory_file import atomic_write
from gateway.pki.operator import rehearsable
from gateway.service.principals import write_tokens_file

DatabaseFor = Callable[[str], str]
"""Given an authority code, the `database_url` of its gateway ("": SQLite in its data_dir)."""

default_databases: DatabaseFor | None = None
"""The databases build_local_network gives gateways when its caller names none; None: SQLite.
A test suite sets it to run every local network on PostgreSQL (a fresh database each)."""

UNTHROTTLED_PEER: dict[str, Any] = {
    "requests_per_second": 1_000_000.0,
    "burst": 1_000_000,
    "max_concurrent_requests": 100_000,
    "max_bytes_in_flight": 1 << 40,
}
"""[peer] limits no single peer reaches: for the benchmarks and the soak runs, which measure
the gateway, not its admission limits (issue 14, item 6)."""


@dataclass(frozen=True)
class LocalGateway:
    code: str
    config: Path
    data_dir: Path
    peer_port: int
    api_port: int
    tokens: dict[str, str]

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass(frozen=True)
class LocalNetwork:
    root: Path
    pki: DemoNetwork
    gateways: dict[str, LocalGateway]

    def describe(self) -> dict[str, Any]:
        """The network.json shape: everything a script needs to talk to each gateway."""
        out: dict[str, Any] = {"ca_certificate": str(self.pki.ca_cert), "authorities": {}}
        for code, gw in self.gateways.items():
            files = self.pki.authorities[code]
            out["authorities"][code] = {
                "code": code,
                "peer_url": gw.peer_url,
                "api_url": gw.api_url,
                "api_tokens": dict(gw.tokens),
                "config": str(gw.config),
                "data_dir": str(gw.data_dir),
                "ca_cert": str(self.pki.ca_cert),
                "tls_cert": str(files.tls_cert),
                "tls_key": str(files.tls_key),
                "signing_cert": str(files.signing_cert),
                "signing_key": str(files.signing_key),
            }
        return out


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held together so that they are distinct."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_toml(path: Path, tables: dict[str, dict[str, Any]]) -> None:
    """Tiny TOML writer for our flat configuration (top-level keys under the "" table)."""
    lines: list[str] = []
    for name, table in tables.items():
        if name:
            lines.append(f"\n[{name}]")
        for key, value in table.items():
            lines.append(f"{json.dumps(key) if '-' in key else key} = {_toml_value(value)}")
    atomic_write(path, ("\n".join(lines).lstrip() + "\n").encode(), mode=0o600)


def build_local_network(
    root: Path,
    codes: Sequence[str],
    *,
    delivery: dict[str, Any] | None = None,
    peer: dict[str, Any] | None = None,
    api: dict[str, Any] | None = None,
    deadlines: dict[str, Any] | None = None,
    adjustable_clock: bool = False,
    databases: DatabaseFor | None = None,
    valid_days: int = 365,
) -> LocalNetwork:
    """Certificates, directory and one configuration per authority in `codes` under `root`;
    `delivery`, `peer`, `api` and `deadlines` override those settings; `databases` names each
    gateway's database (by default `default_databases`, else SQLite in its data folder);
    `valid_days`: how long the certificates are valid (a test that moves the clock years on
    needs more than the year of the default)."""
    root.mkdir(parents=True, exist_ok=True)
    database_for = databases or default_databases
    ports = free_ports(2 * len(codes))
    peer_ports = dict(zip(codes, ports[0::2], strict=True))
    api_ports = dict(zip(codes, ports[1::2], strict=True))
    pki = create_demo_network(
        root / "pki",
        codes,
        {c: f"https://127.0.0.1:{peer_ports[c]}" for c in codes},
        valid_days=valid_days,
    )
    rehearsable(pki)  # `gateway pki revoke/renew/list/crl --ca <root>/pki/ca` work on it
    gateways: dict[str, LocalGateway] = {}
    for code in codes:
        home = root / code
        home.mkdir(mode=0o700, exist_ok=True)
        files = pki.authorities[code]
        # One principal per role, named after it, in the gateway's tokens file (mode 0600).
        tokens = {role: new_token() for role in ROLES}
        tokens_file = home / "tokens.json"
        write_tokens_file(
            tokens_file,
            tuple(Principal(r, (r,), hash_token(t), "file") for r, t in tokens.items()),
        )
        config = home / "gateway.toml"
        tables: dict[str, dict[str, Any]] = {
            "": {
                "authority": code,
                "data_dir": str(home / "data"),
                "directory": str(pki.directory),
            }
            | ({"database_url": database_for(code)} if database_for else {}),
            "peer": {"host": "127.0.0.1", "port": peer_ports[code]} | (peer or {}),
            "api": {
                "host": "127.0.0.1",
                "port": api_ports[code],
                "tokens_file": str(tokens_file),
                "tokens_reload_seconds": 0.5,
            }
            | (api or {}),
            "tls": {
                "ca": str(pki.ca_cert),
                "crl": str(pki.crl),
                "cert": str(files.tls_cert),
                "key": str(files.tls_key),
            },
            "signing": {"cert": str(files.signing_cert), "key": str(files.signing_key)},
            "delivery": {
                "initial_delay_seconds": 0.2,
                "max_delay_seconds": 2.0,
                "poll_interval_seconds": 0.5,
                "max_attempts": 100,
            }
            | (delivery or {}),
            "clock": {"adjustable": adjustable_clock},
            "trust": {"reload_check_seconds": 0.5},
        }
        if deadlines:
            tables["deadlines"] = deadlines
        write_toml(config, tables)
        gateways[code] = LocalGateway(
            code, config, home / "data", peer_ports[code], api_ports[code], tokens
        )
    return LocalNetwork(root, pki, gateways)
