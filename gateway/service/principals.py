"""The principals a running gateway knows, and their tokens file on disk.

The file (see gateway/core/principals.py for its format) must be readable by its owner
only: a file others can read gives their tokens' hashes away and says the operator did not
mean it to be secret, so it is refused, not merely warned about. It is read again when it
changes, checked at most every `api.tokens_reload_seconds` (on the request that follows),
and at once on SIGHUP and on POST /api/v1/admin/reload, without a restart. A file that
became unusable (bad JSON, wrong mode) is refused and the principals known before stay in
force: an operator's typo must not lock every case system out."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import structlog

from gateway.config import Config, ConfigError
from gateway.core.principals import (
    Principal,
    TokensError,
    check_distinct,
    find,
    from_environment,
    from_role_tokens,
    parse_document,
    render_document,
)
from gateway.pki.directory_file import atomic_write

FILE_MODE = 0o600


def _signature(path: Path) -> tuple[int, int, int]:
    """What tells a changed file: modification time, size, inode (a rename replaces it)."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size, st.st_ino


def read_tokens_file(path: Path) -> tuple[Principal, ...]:
    """The principals of the tokens file; TokensError if it is missing, unreadable, readable
    or writable by group or others, or malformed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise TokensError(f"cannot read tokens file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise TokensError(
                f"tokens file {path} has mode {mode:04o}: it must be readable by its owner "
                f"only (chmod 600 {path})"
            )
        data = f.read()
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokensError(f"{path} is not valid JSON: {exc}") from exc
    return parse_document(document, str(path))


def write_tokens_file(path: Path, principals: tuple[Principal, ...]) -> None:
    """Replace the file atomically (readers see the old or the new one), mode 0600."""
    text = json.dumps(render_document(principals), indent=2) + "\n"
    atomic_write(path, text.encode("utf-8"), mode=FILE_MODE)


@contextlib.contextmanager
def editing(path: Path) -> Iterator[None]:
    """Hold the tokens file's folder locked while reading and replacing the file, so that two
    `gateway users` commands at once do not lose one's change (the gateway reads no lock:
    the rename is atomic)."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Principals:
    """Resolves bearer tokens to principals: those of the tokens file (re-read when it
    changes), of the environment (read at start) and of the deprecated `[api.tokens]`."""

    def __init__(
        self,
        fixed: tuple[Principal, ...],
        path: Path | None,
        interval: float,
        log: structlog.stdlib.BoundLogger,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = fixed
        self._path = path
        self._interval = interval
        self._log = log
        self._monotonic = monotonic
        self._from_file: tuple[Principal, ...] = ()
        self._seen: tuple[int, int, int] | None = None
        self._checked = monotonic()
        self.all: tuple[Principal, ...] = fixed

    @classmethod
    def from_config(
        cls,
        config: Config,
        log: structlog.stdlib.BoundLogger,
        environ: Mapping[str, str] = os.environ,
    ) -> Principals:
        """Everything a gateway starts with; ConfigError naming the setting if it cannot."""
        api = config.api
        try:
            fixed = from_role_tokens(api.tokens) + from_environment(environ)
            check_distinct(fixed, "api.tokens and GATEWAY_API_TOKEN_*")
            principals = cls(fixed, api.tokens_file, api.tokens_reload_seconds, log)
            if api.tokens_file is not None:
                principals._load(api.tokens_file)
        except TokensError as exc:
            raise ConfigError(f"api.tokens_file: {exc}") from exc
        if api.tokens:
            log.warning(
                "[api.tokens] is deprecated and will be removed in the next release: move "
                "the tokens to api.tokens_file with `gateway users add` (see docs/users.md)",
                setting="api.tokens",
                roles=sorted(api.tokens),
            )
        if not principals.all:
            log.warning("no API principals: set api.tokens_file (see docs/users.md)")
        return principals

    def _load(self, path: Path) -> None:
        seen = _signature(path)
        from_file = read_tokens_file(path)
        self.all = check_distinct(self._fixed + from_file, str(path))
        self._from_file, self._seen = from_file, seen

    def reload(self, trigger: str) -> bool:
        """Read the tokens file again if it changed; False if it was refused."""
        self._checked = self._monotonic()
        path = self._path
        if path is None:
            return True
        try:
            if _signature(path) == self._seen:
                return True
            before = {p.name for p in self._from_file}
            self._load(path)
        except (OSError, TokensError) as exc:
            self._log.error(
                "tokens file refused; the principals loaded before stay in force",
                trigger=trigger,
                error=str(exc),
            )
            try:  # not refused again (and logged) before it changes again
                self._seen = _signature(path)
            except OSError:
                pass
            return False
        after = {p.name for p in self._from_file}
        self._log.info(
            "tokens file reloaded",
            trigger=trigger,
            added=sorted(after - before),
            removed=sorted(before - after),
            principals=len(self.all),
        )
        return True

    def resolve(self, token: str) -> Principal | None:
        """The principal `token` proves, after a check of the file if one is due."""
        if self._path is not None and self._monotonic() - self._checked >= self._interval:
            self.reload("file-change")
        return find(self.all, token)
