"""Bad configuration fails at start with a message naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load_config, parse_config


def cfg(**raw: Any) -> Any:
    return parse_config({"authority": "BE-DU", **raw}, Path("/etc/gw/gateway.toml"))


def test_defaults_resolve_relative_to_the_config_file() -> None:
    c = cfg()
    assert c.data_dir == Path("/etc/gw/data")
    assert c.database_url == "sqlite+aiosqlite:////etc/gw/data/gateway.db"
    assert c.tls_cert == Path("/etc/gw/tls.pem")
    assert c.delivery.retry.max_attempts == 20


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"authority": "be"}, "authority"),
        ({"colour": "blue"}, "colour"),
        ({"peer": {"port": "x"}}, "peer.port"),
        ({"peer": {"port": 70000}}, "peer.port"),
        ({"peer": {"max_depth": 0}}, "peer.max_depth"),
        ({"api": {"host": "0.0.0.0"}}, "api.host"),
        ({"api": {"tokens": {"king": "x" * 20}}}, "api.tokens.king"),
        ({"api": {"tokens": {"auditor": "short"}}}, "api.tokens.auditor"),
        ({"api": {"tokens": {"auditor": "x" * 20, "case-officer": "x" * 20}}}, "own token"),
        ({"delivery": {"max_attempts": 0}}, "delivery"),
        ({"delivery": {"concurrency": 0}}, "delivery.concurrency"),
        ({"database_url": "mysql://x"}, "database_url"),
        ({"peer": {"reuse_port": "yes"}}, "peer.reuse_port"),
        ({"api": {"reuse_port": 1}}, "api.reuse_port"),
        ({"delivery": {"lease_seconds": "x"}}, "delivery.lease_seconds"),
        ({"delivery": {"lease_seconds": -1}}, "delivery.lease_seconds"),
        (
            {"delivery": {"lease_seconds": 10, "request_timeout_seconds": 10}},
            "delivery.lease_seconds",
        ),
    ],
)
def test_bad_setting_is_named(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        cfg(**raw)


def test_unreadable_or_invalid_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("authority = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_shared_address_and_lease_settings() -> None:
    """Several nodes of one authority: SO_REUSEPORT off unless asked; the outbox lease is
    derived from the request timeout unless set."""
    c = cfg()
    assert (c.peer.reuse_port, c.api.reuse_port) == (False, False)
    assert c.delivery.lease.total_seconds() == 30 * 2 + 30
    c = cfg(
        peer={"reuse_port": True},
        api={"reuse_port": True},
        delivery={"request_timeout_seconds": 2, "lease_seconds": 5},
    )
    assert (c.peer.reuse_port, c.api.reuse_port) == (True, True)
    assert c.delivery.lease.total_seconds() == 5
