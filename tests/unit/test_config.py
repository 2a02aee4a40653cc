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


@pytest.mark.parametrize(
    ("raw", "key", "closest"),
    [
        ({"tls": {"crl_file": "crl.pem"}}, "tls.crl_file", "tls.crl"),
        ({"peer": {"max_body_byte": 1000}}, "peer.max_body_byte", "peer.max_body_bytes"),
        ({"api": {"prot": 8080}}, "api.prot", "api.port"),
        ({"api": {"tokens": {"auditr": "x" * 20}}}, "api.tokens.auditr", "auditor"),
        ({"signing": {"kye": "k.pem"}}, "signing.kye", "signing.key"),
        ({"delivery": {"max_attempt": 3}}, "delivery.max_attempt", "delivery.max_attempts"),
        ({"delivery": {"retry": {"max_attempts": 3}}}, "delivery.retry", "max_attempts"),
        (
            {"deadlines": {"reminder_hour": [1]}},
            "deadlines.reminder_hour",
            "deadlines.reminder_hours",
        ),
        ({"deadlines": {"reminders": [1]}}, "deadlines.reminders", "deadlines.reminder_hours"),
        ({"register": {"checkpoint_evry": 9}}, "register.checkpoint_evry", "checkpoint_every"),
        ({"trust": {"expiry_warning": 9}}, "trust.expiry_warning", "expiry_warning_days"),
        ({"clock": {"adjustible": True}}, "clock.adjustible", "clock.adjustable"),
        ({"data_dri": "d"}, "data_dri", "data_dir"),
        ({"pear": {"port": 1}}, "pear", "peer"),
    ],
)
def test_a_typo_in_any_section_stops_the_gateway_naming_the_closest_known_key(
    raw: dict[str, Any], key: str, closest: str
) -> None:
    """A misspelt key used to be ignored: `[tls] crl_file` started a gateway that accepted
    revoked peers, without a word."""
    with pytest.raises(ConfigError) as caught:
        cfg(**raw)
    assert key in str(caught.value)
    assert closest in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"peer": {"port": "8443"}}, "peer.port must be an integer"),
        ({"peer": {"max_depth": 6.5}}, "peer.max_depth must be an integer"),
        ({"peer": {"body_timeout_seconds": "30"}}, "peer.body_timeout_seconds must be a number"),
        ({"peer": {"reuse_port": "yes"}}, "peer.reuse_port must be true or false"),
        ({"peer": {"host": 127}}, "peer.host must be a string"),
        ({"tls": {"ca": ["ca.pem"]}}, "tls.ca must be a string"),
        ({"deadlines": {"reminder_hours": 72}}, "deadlines.reminder_hours must be a list"),
        ({"api": {"tokens": "secret-token-value"}}, "api.tokens must be a table"),
        ({"peer": 8443}, "peer must be a table"),
    ],
)
def test_a_wrong_type_is_named_in_words(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cfg(**raw)
    assert words in str(caught.value)
    assert "a int" not in str(caught.value) and "a float" not in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_number_setting_must_be_finite(value: float) -> None:
    """TOML spells nan and inf; neither is a timeout or a clock offset."""
    with pytest.raises(ConfigError, match=r"clock\.offset_seconds must be a finite number"):
        cfg(clock={"offset_seconds": value})


def test_a_wrong_value_never_echoes_the_value() -> None:
    """Configuration values include bearer tokens: an error names the setting, not what was
    written there."""
    secret = "s3cr3t-t0ken-that-must-not-leak"
    for raw in (
        {"api": {"tokens": {"auditor": secret, "administrator": secret}}},
        {"api": {"tokens": {"auditr": secret}}},
        {"tls": {"key_passphrase_env": secret, "key_passphrase_file": secret}},
        {"peer": {"port": secret}},
    ):
        with pytest.raises(ConfigError) as caught:
            cfg(**raw)
        assert secret not in str(caught.value)


def test_every_setting_comes_from_one_dataclass_field() -> None:
    """Defaults live in the settings dataclasses only: an empty file gives exactly the
    dataclasses' defaults, and every field says what it is for."""
    import dataclasses

    from gateway import config as config_module
    from gateway import settings as settings_module

    c = cfg()
    for section in ("peer", "api", "delivery", "deadlines", "clock", "register", "trust"):
        value = getattr(c, section)
        assert value == type(value)(), section
    for section in sorted(settings_module.known_keys(config_module.Config)):
        value = getattr(c, section)
        if not dataclasses.is_dataclass(value):
            continue
        for f in dataclasses.fields(value):
            assert f.metadata.get(settings_module.SETTING) is not None, f"{section}.{f.name}"
            assert f.metadata[settings_module.SETTING].doc, f"{section}.{f.name} has no doc"
