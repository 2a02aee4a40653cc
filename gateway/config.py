"""Gateway configuration: one TOML file per gateway, read into the settings dataclasses below.

Each section of the file is a frozen dataclass whose fields *are* its settings: the field's
type is the setting's type, its default the default, and its metadata (`setting(...)`) the
TOML key where that differs from the field's name, the constraint the value must meet and
what the setting is for. Parsing, type checks, defaults and the set of known keys all come
from these fields, so adding a setting is adding one field, and nothing else knows its
default. A key that is no field stops the gateway, naming the key and the closest known one:
a typo such as `[tls] crl_file` used to be ignored and start a gateway that accepted revoked
peers. Relative paths resolve against the file's folder; every setting but the authority
code has a default; no error quotes a value (tokens are secrets). The machinery that reads
a table into such a dataclass is gateway/settings.py."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.core.directory import AUTHORITY_CODE
from gateway.core.retry import RetryPolicy
from gateway.core.roles import ROLES
from gateway.core.throttle import PeerLimits
from gateway.settings import (
    PORT,
    POSITIVE,
    SETTING,
    Paths,
    Rule,
    Section,
    Setting,
    got,
    read_table,
    refuse_unknown,
    section,
    setting,
)
from gateway.settings import ConfigError as ConfigError


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _hours(value: Any, name: str) -> tuple[timedelta, ...]:
    if not isinstance(value, list) or not all(
        isinstance(h, int | float) and not isinstance(h, bool) and math.isfinite(h) and h > 0
        for h in value
    ):
        raise ConfigError(f"{name} must be a list of positive numbers of hours")
    return tuple(timedelta(hours=h) for h in value)


def _tokens(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table of role = token ({got(value)})")
    refuse_unknown(value, ROLES, f"{name}.", "role")
    for role, token in value.items():
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigError(f"{name}.{role} must be a string of at least 16 characters")
    if len(set(value.values())) != len(value):
        raise ConfigError(f"{name}: each role needs its own token")
    return dict(value)


@dataclass(frozen=True)
class PeerSettings(Section):
    host: str = setting("127.0.0.1", "The address the mTLS listener other gateways call binds.")
    port: int = setting(8443, "Its port (0: any free port).", rule=PORT)
    max_body_bytes: int = setting(10 * 1024 * 1024, "Largest transmission.", rule=POSITIVE)
    max_depth: int = setting(64, "XML nesting limit.", rule=POSITIVE)
    max_clock_skew_seconds: int = setting(
        300,
        "How far a transmission's created time may be from our clock; an acknowledgement's "
        "receipt time may be this much before our transmission's creation or after our clock.",
        rule=POSITIVE,
    )
    body_timeout_seconds: float = setting(
        30.0, "Time for a peer to send a whole request body.", rule=POSITIVE
    )
    max_attachment_bytes: int = setting(4 * 1024 * 1024, "Largest attached file.", rule=POSITIVE)
    refusal_summary_seconds: float = setting(
        60.0,
        "A client whose certificate no authority pins gets a bare 403; its first refusal is "
        "recorded at once, the others of this interval as one register entry with their count.",
        rule=POSITIVE,
    )
    idle_timeout_seconds: float = setting(
        30.0,
        "A connection that completes no TLS handshake or no request within this time is "
        "closed (slow clients, slowloris); it also ends idle keep-alive connections.",
        rule=POSITIVE,
    )
    reuse_port: bool = setting(
        False,
        "Bind with SO_REUSEPORT, so that several gateway processes (nodes) of one authority "
        "sharing one PostgreSQL database listen on the same host and port.",
    )
    requests_per_second: float = setting(
        10.0,
        "Requests a peer may make per second on average; beyond its burst it is answered "
        "429 with Retry-After (the register keeps one entry per interval and limit).",
        rule=POSITIVE,
    )
    burst: int = setting(
        60, "Requests a peer may make at once before its rate counts.", rule=POSITIVE
    )
    max_concurrent_requests: int = setting(
        8, "Requests of one peer being answered at the same time.", rule=POSITIVE
    )
    max_bytes_in_flight: int = setting(
        16 * 1024 * 1024,
        "Bytes of request bodies of one peer being received or processed at the same time "
        "(a body of undeclared length counts as max_body_bytes); at least max_body_bytes.",
        rule=POSITIVE,
    )

    def check(self, name: str) -> None:
        if self.max_bytes_in_flight < self.max_body_bytes:
            raise ConfigError(
                f"{name}.max_bytes_in_flight must be at least {name}.max_body_bytes, "
                "or the largest transmission could never be received"
            )

    def limits(self) -> PeerLimits:
        return PeerLimits(
            self.requests_per_second,
            self.burst,
            self.max_concurrent_requests,
            self.max_bytes_in_flight,
        )


@dataclass(frozen=True)
class ApiTlsSettings(Section):
    cert: Path | None = setting(
        None, "The internal API's own TLS certificate (a certificate of your own PKI)."
    )
    key: Path | None = setting(None, "Its private key (unencrypted, mode 0600).")
    client_ca: Path | None = setting(
        None,
        "When set, every client presents a certificate issued by this CA bundle (the case "
        "systems' PKI), besides its bearer token.",
    )

    @property
    def enabled(self) -> bool:
        return self.cert is not None

    def check(self, name: str) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError(f"{name}.cert and {name}.key: set both, or neither")
        if self.client_ca is not None and self.cert is None:
            raise ConfigError(f"{name}.client_ca needs {name}.cert and {name}.key")


@dataclass(frozen=True)
class ApiSettings(Section):
    host: str = setting(
        "127.0.0.1",
        "The internal API's address: loopback, or any address once [api.tls] is set.",
    )
    port: int = setting(8080, "Its port (0: any free port).", rule=PORT)
    tokens_file: Path | None = setting(
        None,
        "The API's principals (named users), their roles and their tokens' hashes: a JSON "
        "file of mode 0600 written by `gateway users` (docs/users.md).",
    )
    tokens_reload_seconds: float = setting(
        5.0,
        "How often a request may check the tokens file for changes (SIGHUP and POST "
        "/api/v1/admin/reload read it at once).",
        rule=POSITIVE,
    )
    tokens: dict[str, str] = setting(
        {},
        "Deprecated (one release; a warning at start): role -> bearer token in clear, one "
        "principal per role named after it; use tokens_file.",
        parse=_tokens,
    )
    reuse_port: bool = setting(
        False, "Bind with SO_REUSEPORT (several nodes on one address, as for [peer])."
    )
    tls: ApiTlsSettings = section(
        ApiTlsSettings, "TLS for the internal API, so a case system on another host can call it."
    )

    def check(self, name: str) -> None:
        if not _loopback(self.host) and not self.tls.enabled:
            raise ConfigError(
                f"{name}.host must be a loopback address unless [{name}.tls] gives the API a "
                "certificate and key: the internal API is never served in clear beyond this "
                "machine"
            )


@dataclass(frozen=True)
class DeliverySettings(Section):
    initial_delay_seconds: float = setting(
        RetryPolicy.initial_delay,
        "First wait before a retry (then exponential, jittered).",
        rule=POSITIVE,
    )
    max_delay_seconds: float = setting(
        RetryPolicy.max_delay, "Longest wait between attempts.", rule=POSITIVE
    )
    multiplier: float = setting(
        RetryPolicy.multiplier,
        "Growth of the wait per attempt.",
        rule=Rule("at least 1", lambda v: v >= 1),
    )
    max_attempts: int = setting(
        RetryPolicy.max_attempts,
        "Attempts before a message is marked undeliverable.",
        rule=Rule("at least 1", lambda v: v >= 1),
    )
    connect_timeout_seconds: float = setting(10.0, "Time to connect to a peer.", rule=POSITIVE)
    request_timeout_seconds: float = setting(
        30.0, "Time for a peer to answer a delivery.", rule=POSITIVE
    )
    max_retry_after_seconds: float = setting(
        900.0,
        "A peer that answers 429 or 503 with Retry-After is not tried again before that time; "
        "a longer Retry-After is cut to this, so that no peer can park a message.",
        rule=POSITIVE,
    )
    poll_interval_seconds: float = setting(1.0, "How often the outbox is read.", rule=POSITIVE)
    concurrency: int = setting(8, "Deliveries in flight at once.", rule=POSITIVE)
    reconcile_interval_seconds: float = setting(
        300.0,
        "How often peers are asked whether they received a message we gave up on.",
        rule=POSITIVE,
    )
    reconcile_window_days: int = setting(
        30,
        "How long after its creation an undeliverable message is still asked about.",
        rule=POSITIVE,
    )
    lease_seconds: float = setting(
        0.0,
        "How long a claimed outbox row stays with the node that claimed it; then another "
        "node (or this one, restarted) delivers it. 0: twice the request timeout plus 30 "
        "seconds.",
    )

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial_delay=self.initial_delay_seconds,
            max_delay=self.max_delay_seconds,
            multiplier=self.multiplier,
            max_attempts=self.max_attempts,
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(
            seconds=self.lease_seconds or self.request_timeout_seconds * 2 + 30,
        )

    def check(self, name: str) -> None:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise ConfigError(
                f"{name}.max_delay_seconds must be at least {name}.initial_delay_seconds"
            )
        if self.lease_seconds and self.lease_seconds <= self.request_timeout_seconds:
            # A shorter lease hands a delivery still in flight to another node: sent twice.
            raise ConfigError(
                f"{name}.lease_seconds must be 0 (derived) or more than "
                f"{name}.request_timeout_seconds"
            )


@dataclass(frozen=True)
class DeadlineSettings(Section):
    legal_basis: str = setting(
        "2024-1351",
        "The rule pack new cases run under unless a submission names one (a file in "
        "gateway/core/rules): Regulation (EU) 2024/1351, the law in force.",
    )
    reminders: tuple[timedelta, ...] = setting(
        (timedelta(hours=72), timedelta(hours=24)),
        "Reminders before each expiry, in hours.",
        key="reminder_hours",
        parse=_hours,
    )


@dataclass(frozen=True)
class RegisterSettings(Section):
    checkpoint_every: int = setting(
        1000,
        "Sign a checkpoint of (sequence, head hash) every this many register entries.",
        rule=POSITIVE,
    )
    payload_retention_days: int = setting(
        0,
        "Erase payloads this many days after storing them (0: keep them).",
        rule=Rule("0 (keep) or more", lambda v: v >= 0),
    )


@dataclass(frozen=True)
class ClockSettings(Section):
    offset_seconds: float = setting(
        0.0, "Added to the system clock; for demonstrations and tests only."
    )
    adjustable: bool = setting(
        False, "Allow POST /api/v1/admin/clock to move the clock forward (demonstrations only)."
    )


@dataclass(frozen=True)
class TrustSettings(Section):
    reload_check_seconds: float = setting(
        5.0,
        "How often the directory, CRL and our own certificate files are checked for changes "
        "(SIGHUP and POST /api/v1/admin/reload apply them at once).",
        rule=POSITIVE,
    )
    expiry_warning_days: int = setting(
        30,
        "Certificates expiring within this many days are reported (logs, API, metrics).",
        rule=POSITIVE,
    )


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
class _KeyFiles(Section):
    """A certificate and its private key, possibly encrypted."""

    key_passphrase_file: Path | None = setting(
        None, "If the key is encrypted: the file holding its passphrase (first line)..."
    )
    key_passphrase_env: str = setting(
        "", "...or the environment variable holding it (never the passphrase itself)."
    )

    @property
    def passphrase(self) -> KeyPassphrase | None:
        if self.key_passphrase_file is None and not self.key_passphrase_env:
            return None
        return KeyPassphrase(self.key_passphrase_file, self.key_passphrase_env or None)

    def check(self, name: str) -> None:
        if self.key_passphrase_file is not None and self.key_passphrase_env:
            raise ConfigError(
                f"{name}.key_passphrase_file and {name}.key_passphrase_env: set one, not both"
            )


@dataclass(frozen=True)
class TlsSettings(_KeyFiles):
    ca: Path = setting(Path("ca.pem"), "The network CA bundle (issuing CA and root).")
    crl: Path | None = setting(
        None,
        "The network CA's certificate revocation list; when set, revoked peers are refused "
        "at TLS and at signature check.",
    )
    cert: Path = setting(Path("tls.pem"), "Our TLS certificate.")
    key: Path = setting(Path("tls.key"), "Its private key.")


@dataclass(frozen=True)
class SigningSettings(_KeyFiles):
    cert: Path = setting(Path("signing.pem"), "Our XML-signing certificate (not the TLS one).")
    key: Path = setting(Path("signing.key"), "Its private key.")


_DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def _patterns(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f"{name} must be a table of name = regular expression ({got(value)})")
    for key, pattern in value.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{name}.{key} is not a regular expression: {exc}") from exc
    return dict(value)


def _days_per_network(value: Any, name: str) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in value.items()
    ):
        raise ConfigError(f"{name} must be a table of network = days (0 or more)")
    return dict(value)


@dataclass(frozen=True)
class OperationalSettings(Section):
    personal_data_patterns: dict[str, str] = setting(
        {},
        "More personal-data patterns refused in the operational family's free text, as name = "
        "regular expression, beside the built-in ones (names with dates of birth, passport and "
        "identity document numbers, Eurodac references, e-mail addresses, telephone numbers, "
        "IBANs).",
        parse=_patterns,
    )
    archive_after_days: dict[str, int] = setting(
        {},
        "Per network (iconet = 90): items older than this many days become archived, read-only "
        "(0 or absent: never).",
        parse=_days_per_network,
    )
    erase_after_days: dict[str, int] = setting(
        {},
        "Per network: items older than this many days are erased; the register keeps their "
        "entries and digests (0 or absent: never).",
        parse=_days_per_network,
    )
    deletion_orders_dir: str = setting(
        "",
        "A folder where the network operator's signed deletion orders are dropped; each is "
        "applied once (empty: orders come only through POST /api/v1/admin/deletion-orders).",
    )


@dataclass(frozen=True)
class Config(Section):
    path: Path = field(metadata={SETTING: None})
    """The file itself (not a setting)."""
    authority: str = field(
        metadata={
            SETTING: Setting(
                "This gateway's code in the directory; the one setting without a default.",
                rule=Rule(
                    "this gateway's code, e.g. 'BE-DU'", lambda v: bool(AUTHORITY_CODE.match(v))
                ),
            )
        }
    )
    data_dir: Path = setting(Path("data"), "The SQLite database lives here by default.")
    database_url: str = setting(
        "",
        "Empty: SQLite in data_dir; else sqlite+aiosqlite://... or postgresql+asyncpg://...",
        rule=Rule(
            "empty or start with sqlite+aiosqlite:// or postgresql+asyncpg://",
            lambda v: not v or v.startswith(_DATABASE_SCHEMES),
        ),
    )
    directory: Path = setting(Path("directory.xml"), "The signed authority directory (Art. 41(2)).")
    peer: PeerSettings = section(PeerSettings, "The mTLS listener other gateways call.")
    api: ApiSettings = section(ApiSettings, "The internal API, loopback only.")
    tls: TlsSettings = section(TlsSettings, "TLS certificate, key, network CA and CRL.")
    signing: SigningSettings = section(SigningSettings, "The XML-signing certificate and key.")
    delivery: DeliverySettings = section(DeliverySettings, "Sending to peers.")
    deadlines: DeadlineSettings = section(DeadlineSettings, "Time limits (rule packs).")
    clock: ClockSettings = section(ClockSettings, "Demonstrations and tests only.")
    register: RegisterSettings = section(RegisterSettings, "The register (Art. 40(9)).")
    trust: TrustSettings = section(TrustSettings, "Reloading and reporting trust material.")
    operational: OperationalSettings = section(
        OperationalSettings,
        "The operational family (ICONET early warnings, liaison officers' reports).",
    )

    # The names the rest of the gateway reads the files by.
    @property
    def ca_cert(self) -> Path:
        return self.tls.ca

    @property
    def crl(self) -> Path | None:
        return self.tls.crl

    @property
    def tls_cert(self) -> Path:
        return self.tls.cert

    @property
    def tls_key(self) -> Path:
        return self.tls.key

    @property
    def signing_cert(self) -> Path:
        return self.signing.cert

    @property
    def signing_key(self) -> Path:
        return self.signing.key

    @property
    def tls_key_passphrase(self) -> KeyPassphrase | None:
        return self.tls.passphrase

    @property
    def signing_key_passphrase(self) -> KeyPassphrase | None:
        return self.signing.passphrase

    def tls_key_password(self) -> bytes | None:
        passphrase = self.tls.passphrase
        return None if passphrase is None else passphrase.read()

    def signing_key_password(self) -> bytes | None:
        passphrase = self.signing.passphrase
        return None if passphrase is None else passphrase.read()


# -- the loader: everything below reads the dataclasses above -------------------------------


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    config = read_table(Config, raw, "", Paths(path.resolve().parent), path=path.resolve())
    if not config.database_url:
        url = f"sqlite+aiosqlite:///{config.data_dir / 'gateway.db'}"
        config = dataclasses.replace(config, database_url=url)
    return config
