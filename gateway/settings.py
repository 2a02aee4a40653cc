"""The machinery behind gateway/config.py: a section of settings is a frozen dataclass whose
fields are declared with `setting(...)` (type, default, constraint and purpose in one place),
and `read_table` turns a TOML table into such a dataclass, refusing unknown keys (naming the
closest known one), wrong types (in words) and broken constraints, never quoting a value."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

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
class Paths:
    """Resolves relative paths against the configuration file's folder."""

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


def read_table(
    kind: type[T], table: Mapping[str, Any], prefix: str, paths: Paths, **given: Any
) -> T:
    refuse_unknown(table, known_keys(kind), prefix, "setting")
    values = dict(given)
    for key, f, hint, meta in _fields(kind):
        name = prefix + key
        if dataclasses.is_dataclass(hint):
            sub = table.get(key, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{name} must be a table ({got(sub)})")
            values[f.name] = read_table(hint, sub, f"{name}.", paths)  # type: ignore[arg-type]
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


def _default(f: dataclasses.Field[Any], name: str, meta: Setting, paths: Paths) -> Any:
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


def got(value: Any) -> str:
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
        raise ConfigError(f"{name} must be {_WORDS[wanted]} ({got(value)})")
    if wanted is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number")
    if kind is Path:
        return Path(value) if value or not optional else None
    return value
