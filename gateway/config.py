"""Gateway configuration: one TOML file per gateway. Relative paths resolve against the
file's folder; every setting but the authority code has a default; a bad setting fails at
start with a message naming it."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.core.directory import AUTHORITY_CODE, ROLES
from gateway.core.retry import RetryPolicy


class ConfigError(ValueError):
    """Configuration that cannot work; the message names the setting."""


@dataclass(frozen=True)
class PeerSettings:
    host: str = "127.0.0.1"
    port: int = 8443
    max_body_bytes: int = 10 * 1024 * 1024
    max_depth: int = 64
    max_clock_skew_seconds: int = 300
    body_timeout_seconds: float = 30.0
    max_attachment_bytes: int = 4 * 1024 * 1024
    idle_timeout_seconds: float = 30.0
    """A connection that completes no request within this time is closed (slow clients,
    slowloris); it also ends idle keep-alive connections."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT, so that several gateway processes (nodes) of one authority
    sharing one PostgreSQL database listen on the same host and port."""


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    tokens: dict[str, str] = field(default_factory=dict)
    """role -> bearer token"""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT (several nodes on one address, as for [peer])."""


@dataclass(frozen=True)
class DeliverySettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    concurrency: int = 8
    reconcile_interval_seconds: float = 300.0
    """How often peers are asked whether they received a message we gave up on."""
    reconcile_window_days: int = 30
    """How long after its creation an undeliverable message is still asked about."""
    lease_seconds: float = 0.0
    """How long a claimed outbox row stays with the node that claimed it; then another node
    (or this one, restarted) delivers it. 0: twice the request timeout plus 30 seconds."""

    @property
    def lease(self) -> timedelta:
        return timedelta(
            seconds=self.lease_seconds or self.request_timeout_seconds * 2 + 30,
        )


@dataclass(frozen=True)
class DeadlineSettings:
    legal_basis: str = "com-2020-610"
    """The rule set new cases run under (a file in gateway/core/rules)."""
    reminders: tuple[timedelta, ...] = (timedelta(days=3), timedelta(days=1))


@dataclass(frozen=True)
class RegisterSettings:
    checkpoint_every: int = 1000
    """Sign a checkpoint of (sequence, head hash) every this many register entries."""
    payload_retention_days: int = 0
    """Erase payloads this many days after storing them (0: keep them)."""


@dataclass(frozen=True)
class ClockSettings:
    offset_seconds: float = 0.0
    """Added to the system clock; for demonstrations and tests only."""
    adjustable: bool = False
    """Allow POST /api/v1/admin/clock to move the clock forward (demonstrations only)."""


@dataclass(frozen=True)
class TrustSettings:
    reload_check_seconds: float = 5.0
    """How often the directory, CRL and our own certificate files are checked for changes
    (SIGHUP and POST /api/v1/admin/reload apply them at once)."""
    expiry_warning_days: int = 30
    """Certificates expiring within this many days are reported (logs, API, metrics)."""


@dataclass(frozen=True)
class KeyPassphrase:
    """Where the passphrase of an encrypted private key is read from: a file (first line)
    or an environment variable; read when the key is loaded, never stored in the config."""

    file: Path | None = None
    env: str | None = None

    def read(self) -> bytes:
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8").removesuffix("\n")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read passphrase file {self.file}: {exc.strerror}"
                ) from exc
        else:
            text = os.environ.get(self.env or "", "")
        if not text:
            raise ConfigError(f"the key passphrase ({self.file or self.env}) is empty or unset")
        return text.encode("utf-8")


@dataclass(frozen=True)
class Config:
    path: Path
    authority: str
    data_dir: Path
    database_url: str
    directory: Path
    ca_cert: Path
    tls_cert: Path
    tls_key: Path
    signing_cert: Path
    signing_key: Path
    peer: PeerSettings
    api: ApiSettings
    delivery: DeliverySettings
    deadlines: DeadlineSettings = field(default_factory=DeadlineSettings)
    clock: ClockSettings = field(default_factory=ClockSettings)
    register: RegisterSettings = field(default_factory=RegisterSettings)
    crl: Path | None = None
    """The network CA's certificate revocation list; when set, revoked peers are refused at
    TLS and at signature check."""
    tls_key_passphrase: KeyPassphrase | None = None
    signing_key_passphrase: KeyPassphrase | None = None

    def tls_key_password(self) -> bytes | None:
        return None if self.tls_key_passphrase is None else self.tls_key_passphrase.read()

    def signing_key_password(self) -> bytes | None:
        return None if self.signing_key_passphrase is None else self.signing_key_passphrase.read()

    trust: TrustSettings = field(default_factory=TrustSettings)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _typed(table: dict[str, Any], prefix: str, key: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConfigError(f"{prefix}{key} must be a {kind.__name__}")
    return value


def _positive(value: float, name: str) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be positive")


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    base = path.resolve().parent

    def p(value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    known = {
        "authority",
        "data_dir",
        "database_url",
        "directory",
        "peer",
        "api",
        "tls",
        "signing",
        "delivery",
        "deadlines",
        "clock",
        "register",
        "trust",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    authority = raw.get("authority")
    if not isinstance(authority, str) or not AUTHORITY_CODE.match(authority):
        raise ConfigError("authority must be set to this gateway's code, e.g. 'BE-DU'")
    data_dir = p(_typed(raw, "", "data_dir", str, "data"))
    database_url = _typed(raw, "", "database_url", str, "")
    if not database_url:
        database_url = f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}"
    elif not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )

    peer_t = _section(raw, "peer")
    peer = PeerSettings(
        host=_typed(peer_t, "peer.", "host", str, PeerSettings.host),
        port=_typed(peer_t, "peer.", "port", int, PeerSettings.port),
        max_body_bytes=_typed(peer_t, "peer.", "max_body_bytes", int, PeerSettings.max_body_bytes),
        max_depth=_typed(peer_t, "peer.", "max_depth", int, PeerSettings.max_depth),
        max_clock_skew_seconds=_typed(
            peer_t, "peer.", "max_clock_skew_seconds", int, PeerSettings.max_clock_skew_seconds
        ),
        body_timeout_seconds=_typed(
            peer_t, "peer.", "body_timeout_seconds", float, PeerSettings.body_timeout_seconds
        ),
        max_attachment_bytes=_typed(
            peer_t, "peer.", "max_attachment_bytes", int, PeerSettings.max_attachment_bytes
        ),
        idle_timeout_seconds=_typed(
            peer_t, "peer.", "idle_timeout_seconds", float, PeerSettings.idle_timeout_seconds
        ),
        reuse_port=_typed(peer_t, "peer.", "reuse_port", bool, PeerSettings.reuse_port),
    )
    for name in (
        "max_body_bytes",
        "max_depth",
        "max_clock_skew_seconds",
        "body_timeout_seconds",
        "max_attachment_bytes",
        "idle_timeout_seconds",
    ):
        _positive(getattr(peer, name), f"peer.{name}")

    api_t = _section(raw, "api")
    tokens_t = api_t.get("tokens", {})
    if not isinstance(tokens_t, dict):
        raise ConfigError("[api.tokens] must be a table of role = token")
    tokens: dict[str, str] = {}
    for role, token in tokens_t.items():
        if role not in ROLES:
            raise ConfigError(
                f"api.tokens.{role}: unknown role (known: {', '.join(sorted(ROLES))})"
            )
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigError(f"api.tokens.{role} must be a string of at least 16 characters")
        tokens[role] = token
    if len(set(tokens.values())) != len(tokens):
        raise ConfigError("api.tokens: each role needs its own token")
    api = ApiSettings(
        host=_typed(api_t, "api.", "host", str, ApiSettings.host),
        port=_typed(api_t, "api.", "port", int, ApiSettings.port),
        tokens=tokens,
        reuse_port=_typed(api_t, "api.", "reuse_port", bool, ApiSettings.reuse_port),
    )
    try:
        loopback = ipaddress.ip_address(api.host).is_loopback
    except ValueError:
        loopback = api.host == "localhost"
    if not loopback:
        raise ConfigError("api.host must be a loopback address: the internal API is not public")
    for name, port in (("peer.port", peer.port), ("api.port", api.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name} must be between 0 and 65535")

    tls_t = _section(raw, "tls")
    signing_t = _section(raw, "signing")
    delivery_t = _section(raw, "delivery")
    d = DeliverySettings()
    try:
        retry = RetryPolicy(
            initial_delay=_typed(
                delivery_t, "delivery.", "initial_delay_seconds", float, d.retry.initial_delay
            ),
            max_delay=_typed(
                delivery_t, "delivery.", "max_delay_seconds", float, d.retry.max_delay
            ),
            multiplier=_typed(delivery_t, "delivery.", "multiplier", float, d.retry.multiplier),
            max_attempts=_typed(delivery_t, "delivery.", "max_attempts", int, d.retry.max_attempts),
        )
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"[delivery]: {exc}") from exc
    delivery = DeliverySettings(
        retry=retry,
        connect_timeout_seconds=_typed(
            delivery_t, "delivery.", "connect_timeout_seconds", float, d.connect_timeout_seconds
        ),
        request_timeout_seconds=_typed(
            delivery_t, "delivery.", "request_timeout_seconds", float, d.request_timeout_seconds
        ),
        poll_interval_seconds=_typed(
            delivery_t, "delivery.", "poll_interval_seconds", float, d.poll_interval_seconds
        ),
        concurrency=_typed(delivery_t, "delivery.", "concurrency", int, d.concurrency),
        reconcile_interval_seconds=_typed(
            delivery_t,
            "delivery.",
            "reconcile_interval_seconds",
            float,
            d.reconcile_interval_seconds,
        ),
        reconcile_window_days=_typed(
            delivery_t, "delivery.", "reconcile_window_days", int, d.reconcile_window_days
        ),
        lease_seconds=_typed(delivery_t, "delivery.", "lease_seconds", float, d.lease_seconds),
    )
    for name in (
        "connect_timeout_seconds",
        "request_timeout_seconds",
        "poll_interval_seconds",
        "concurrency",
        "reconcile_interval_seconds",
        "reconcile_window_days",
    ):
        _positive(getattr(delivery, name), f"delivery.{name}")
    if delivery.lease_seconds and delivery.lease_seconds <= delivery.request_timeout_seconds:
        # A shorter lease hands a delivery still in flight to another node: sent twice.
        raise ConfigError(
            "delivery.lease_seconds must be 0 (derived) or more than "
            "delivery.request_timeout_seconds"
        )

    deadlines_t = _section(raw, "deadlines")
    reminder_hours = deadlines_t.get("reminder_hours", [72, 24])
    if not isinstance(reminder_hours, list) or not all(
        isinstance(h, int | float) and not isinstance(h, bool) and h > 0 for h in reminder_hours
    ):
        raise ConfigError("deadlines.reminder_hours must be a list of positive numbers of hours")
    deadline_settings = DeadlineSettings(
        legal_basis=_typed(deadlines_t, "deadlines.", "legal_basis", str, "com-2020-610"),
        reminders=tuple(timedelta(hours=h) for h in reminder_hours),
    )
    clock_t = _section(raw, "clock")
    clock = ClockSettings(
        offset_seconds=_typed(clock_t, "clock.", "offset_seconds", float, 0.0),
        adjustable=_typed(clock_t, "clock.", "adjustable", bool, False),
    )

    register_t = _section(raw, "register")
    register = RegisterSettings(
        checkpoint_every=_typed(register_t, "register.", "checkpoint_every", int, 1000),
        payload_retention_days=_typed(register_t, "register.", "payload_retention_days", int, 0),
    )
    if register.payload_retention_days < 0:
        raise ConfigError("register.payload_retention_days must be 0 (keep) or more")
    _positive(register.checkpoint_every, "register.checkpoint_every")

    trust_t = _section(raw, "trust")
    trust = TrustSettings(
        reload_check_seconds=_typed(trust_t, "trust.", "reload_check_seconds", float, 5.0),
        expiry_warning_days=_typed(trust_t, "trust.", "expiry_warning_days", int, 30),
    )
    _positive(trust.reload_check_seconds, "trust.reload_check_seconds")
    _positive(trust.expiry_warning_days, "trust.expiry_warning_days")
    crl_setting = _typed(tls_t, "tls.", "crl", str, "")

    def passphrase(table: dict[str, Any], prefix: str) -> KeyPassphrase | None:
        file = _typed(table, prefix, "key_passphrase_file", str, "")
        env = _typed(table, prefix, "key_passphrase_env", str, "")
        if file and env:
            raise ConfigError(f"{prefix}key_passphrase_file and _env: set one, not both")
        if not file and not env:
            return None
        return KeyPassphrase(file=p(file) if file else None, env=env or None)

    return Config(
        path=path.resolve(),
        authority=authority,
        data_dir=data_dir,
        database_url=database_url,
        directory=p(_typed(raw, "", "directory", str, "directory.xml")),
        ca_cert=p(_typed(tls_t, "tls.", "ca", str, "ca.pem")),
        tls_cert=p(_typed(tls_t, "tls.", "cert", str, "tls.pem")),
        tls_key=p(_typed(tls_t, "tls.", "key", str, "tls.key")),
        signing_cert=p(_typed(signing_t, "signing.", "cert", str, "signing.pem")),
        signing_key=p(_typed(signing_t, "signing.", "key", str, "signing.key")),
        peer=peer,
        api=api,
        delivery=delivery,
        deadlines=deadline_settings,
        clock=clock,
        register=register,
        crl=p(crl_setting) if crl_setting else None,
        tls_key_passphrase=passphrase(tls_t, "tls."),
        signing_key_passphrase=passphrase(signing_t, "signing."),
        trust=trust,
    )
