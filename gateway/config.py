"""Gateway configuration: one TOML file per gateway, read into the settings dataclasses below.

Each section of the file is a frozen dataclass whose fields *are* its settings: the field's
type is the setting's type, its default the default, and its metadata (`setting(...)`) the
TOML key where that differs from the field's name, the constraint the value must meet and
what the setting is for. Parsing, type checks, defaults and the set of known keys all come
from these fields, so adding a setting is adding one field, and nothing else knows its
default. A key that is no field stops the gateway, naming the key and the closest known one:
a typo such as `[tls] crl_file` used to be ignored and start a gateway that accepted revoked
peers. Relative paths resolve against the file's folder; every setting but the authority
code has a default; no error quotes a value (tokens are secrets)."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import tomllib
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from gateway.core.directory import AUTHORITY_CODE
from gateway.core.retry import RetryPolicy
from gateway.core.roles import ROLES

T = TypeVar("T")
SETTING = "gateway.setting"
"""The field-metadata key under which each setting's `Setting` is kept."""


class ConfigError(ValueError):
    """Configuration that cannot work; the message names the setting, never its value."""


@dataclass(frozen=True)
class Rule:
    """A constraint on one setting's value, said in words: "<setting> must be <words>"."""

    words: str
    holds: Callable[[Any], bool]


POSITIVE = Rule("positive", lambda v: v > 0)
PORT = Rule("between 0 and 65535", lambda v: 0 <= v <= 65535)


@dataclass(frozen=True)
class Setting:
    """What the loader knows of a field beyond its type and default."""

    doc: str
    key: str | None = None
    """The TOML key, where it differs from the field's name."""
    rule: Rule | None = None
    parse: Callable[[Any, str], Any] | None = None
    """Turns the TOML value into the field's value (or raises ConfigError naming the
    setting), for settings whose TOML shape is not the field's type."""


def setting(
    default: T,
    doc: str,
    *,
    key: str | None = None,
    rule: Rule | None = None,
    parse: Callable[[Any, str], Any] | None = None,
) -> T:
    """A settings field: its default, what it is for, and how the file may spell it."""
    meta = {SETTING: Setting(doc, key, rule, parse)}
    if isinstance(default, dict):
        copy = dict(default)
        return field(default_factory=lambda: dict(copy), metadata=meta)  # type: ignore[return-value]
    return field(default=default, metadata=meta)


def section(kind: Callable[[], T], doc: str) -> T:
    """A table of settings (a `[name]` section of the file)."""
    return field(default_factory=kind, metadata={SETTING: Setting(doc)})


@dataclass(frozen=True)
class Section:
    """Base of the settings dataclasses. `check` sees the whole section after each field
    passed its own type and rule: constraints between fields live there."""

    def check(self, name: str) -> None:
        """Raise ConfigError naming `name.<key>` when fields do not fit together."""


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
        raise ConfigError(f"{name} must be a table of role = token ({_got(value)})")
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


@dataclass(frozen=True)
class ApiSettings(Section):
    host: str = setting(
        "127.0.0.1",
        "The internal API's address; loopback only.",
        rule=Rule("a loopback address: the internal API is not public", _loopback),
    )
    port: int = setting(8080, "Its port (0: any free port).", rule=PORT)
    tokens: dict[str, str] = setting(
        {}, "role -> bearer token ([api.tokens]; one per role, >= 16 characters).", parse=_tokens
    )
    reuse_port: bool = setting(
        False, "Bind with SO_REUSEPORT (several nodes on one address, as for [peer])."
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
        "com-2020-610", "The rule set new cases run under (a file in gateway/core/rules)."
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
    config = _read_table(Config, raw, "", _Paths(path.resolve().parent), path=path.resolve())
    if not config.database_url:
        url = f"sqlite+aiosqlite:///{config.data_dir / 'gateway.db'}"
        config = dataclasses.replace(config, database_url=url)
    return config


def refuse_unknown(
    table: Mapping[str, Any], known: Collection[str], prefix: str, what: str
) -> None:
    """Every key of `table` must be one of `known`: a misspelt key is not ignored. The
    error names the key and the closest known one (or lists them all)."""
    for key in table:
        if key not in known:
            close = closest(key, known)
            hint = (
                f"did you mean {prefix}{close}?" if close else f"known: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"{prefix}{key}: unknown {what}; {hint}")


def closest(key: str, known: Collection[str]) -> str | None:
    """The known key `key` most probably meant: one it extends or shortens (`crl_file`,
    `max_body_byte`), else the most similar one, if any is similar enough."""
    ratio = {k: difflib.SequenceMatcher(None, key, k).ratio() for k in known}
    stems = [
        k for k in known if min(len(k), len(key)) >= 3 and (k.startswith(key) or key.startswith(k))
    ]
    if stems:
        return max(stems, key=ratio.__getitem__)
    similar = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return similar[0] if similar else None


@dataclass(frozen=True)
class _Paths:
    base: Path

    def resolve(self, value: Path) -> Path:
        candidate = value.expanduser()
        return candidate if candidate.is_absolute() else self.base / candidate


def _fields(kind: type[Any]) -> tuple[tuple[str, dataclasses.Field[Any], Any, Setting], ...]:
    """(TOML key, field, resolved type, Setting) of each setting of a settings class."""
    hints = get_type_hints(kind)
    out = []
    for f in dataclasses.fields(kind):
        if SETTING not in f.metadata:  # a plain field would be a setting no file can set
            raise TypeError(f"{kind.__name__}.{f.name} must be declared with setting(...)")
        meta = f.metadata[SETTING]
        if meta is None:  # Config.path: not read from the file
            continue
        hint = hints[f.name]
        if meta.parse is None and not dataclasses.is_dataclass(hint) and _scalar(hint) is None:
            raise TypeError(f"{kind.__name__}.{f.name}: a {hint} setting needs a parse function")
        out.append((meta.key or f.name, f, hint, meta))
    return tuple(out)


def _scalar(hint: Any) -> type | None:
    """The scalar type of a field typed `X` or `X | None` (X in _SCALARS), else None."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 and type(None) in get_args(hint) else None
    return hint if hint in _SCALARS else None


def known_keys(kind: type[Any]) -> frozenset[str]:
    """The keys a section (or the top level, for Config) accepts."""
    return frozenset(key for key, *_ in _fields(kind))


def _read_table(
    kind: type[T], table: Mapping[str, Any], prefix: str, paths: _Paths, **given: Any
) -> T:
    refuse_unknown(table, known_keys(kind), prefix, "setting")
    values = dict(given)
    for key, f, hint, meta in _fields(kind):
        name = prefix + key
        if dataclasses.is_dataclass(hint):
            sub = table.get(key, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{name} must be a table ({_got(sub)})")
            values[f.name] = _read_table(hint, sub, f"{name}.", paths)  # type: ignore[arg-type]
            continue
        if key not in table:
            values[f.name] = _default(f, name, meta, paths)
            continue
        value = meta.parse(table[key], name) if meta.parse else _typed(table[key], hint, name)
        if meta.rule is not None and not meta.rule.holds(value):
            raise ConfigError(f"{name} must be {meta.rule.words}")
        values[f.name] = paths.resolve(value) if isinstance(value, Path) else value
    result = kind(**values)
    if isinstance(result, Section):
        result.check(prefix.removesuffix("."))
    return result


def _default(f: dataclasses.Field[Any], name: str, meta: Setting, paths: _Paths) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    if f.default is dataclasses.MISSING:
        raise ConfigError(f"{name} must be set: {meta.rule.words if meta.rule else meta.doc}")
    return paths.resolve(f.default) if isinstance(f.default, Path) else f.default


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true or false"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a table"),
)
_WORDS = dict(_KINDS)
_SCALARS = (str, int, float, bool, Path)


def _got(value: Any) -> str:
    """What was given, by kind only: a value is never quoted (it may be a token)."""
    return "got " + next((words for kind, words in _KINDS if isinstance(value, kind)), "a date")


def _typed(value: Any, hint: Any, name: str) -> Any:
    """The TOML value as the field's type: str, int, float, bool or Path (from a string);
    `X | None` takes "" for None."""
    optional = get_origin(hint) in (Union, types.UnionType)
    kind = _scalar(hint)
    assert kind is not None  # _fields refuses any other type
    wanted = str if kind is Path else kind
    ok = isinstance(value, wanted) and isinstance(value, bool) == (wanted is bool)
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{name} must be {_WORDS[wanted]} ({_got(value)})")
    if wanted is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number")
    if kind is Path:
        return Path(value) if value or not optional else None
    return value
