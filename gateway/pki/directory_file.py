"""The authority directory on disk.

Every gateway reads the same `directory.json`, so a mistake in it must stop a gateway at
start-up with a message that names the file, and a writer must never leave a half-written
file behind for a gateway to load.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.core.directory import Directory, DirectoryError

# Fields of an authority entry that must be JSON lists of strings: a bare string would
# otherwise be taken character by character as a set of roles or fingerprints.
_LIST_FIELDS = (
    "roles",
    "tls_fingerprints",
    "signing_fingerprints",
    "health_encryption_certificates",
)


def load_directory(path: Path) -> Directory:
    """Read and validate a directory file; every failure is a `DirectoryError` naming `path`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DirectoryError(f"cannot read directory {path}: {exc.strerror or exc}") from exc
    return parse_directory_json(raw, f"directory {path}")


def parse_directory_json(raw: bytes, where: str) -> Directory:
    """The directory's JSON form; failures name `where` (a file, or a signed document)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DirectoryError(f"{where} is not UTF-8 text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise DirectoryError(
            f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    try:
        _check_shape(data)
        return Directory.from_dict(data)
    except DirectoryError as exc:
        raise DirectoryError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        # Anything the shape check did not foresee still must not escape as a bare TypeError.
        raise DirectoryError(f"{where}: invalid entry: {exc}") from exc


def save_directory(path: Path, directory: Directory) -> None:
    """Write `directory` so that a reader sees either the old file or the new one, never a mix."""
    text = json.dumps(directory.to_dict(), indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), mode=0o644)


def atomic_write(path: Path, data: bytes, *, mode: int, overwrite: bool = True) -> None:
    """Write `data` to `path` through a temporary file in the same folder, then rename it.

    The temporary file is created with `mode` already in place (O_EXCL, so it cannot be a
    file someone prepared for us), so a secret is never readable by others even for an
    instant; `fchmod` then makes the mode exact whatever the umask. A crash leaves at worst a
    stray `.tmp` file, never a truncated `path`. With `overwrite=False` an existing `path` is
    refused (atomically, by hard-linking instead of renaming), because silently replacing a
    private key would change an identity.
    """
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_folder(folder)


def _link_no_clobber(tmp: Path, path: Path) -> None:
    """Publish `tmp` as `path` only if `path` does not exist yet, without a check-then-act race."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
    except OSError:
        # A file system without hard links: fall back to a check, which is racy only against
        # another writer in the same folder at the same instant.
        if path.exists():
            raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some platforms cannot open a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_shape(data: Any) -> None:
    """Catch JSON of the wrong shape before the model does, with a message a person can act on."""
    if not isinstance(data, Mapping):
        raise DirectoryError("the top level must be a JSON object")
    version = data.get("version", 1)
    if isinstance(version, bool):
        raise DirectoryError("'version' must be a positive integer")
    entries = data.get("authorities")
    if not isinstance(entries, list):
        raise DirectoryError("must have an 'authorities' list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise DirectoryError(f"authorities[{index}] must be a JSON object")
        where = f"authorities[{index}] ({entry.get('code', 'no code')!s})"
        for name in _LIST_FIELDS:
            value = entry.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DirectoryError(f"{where}: {name!r} must be a list of strings")
        for name in ("code", "member_state", "name", "time_zone", "endpoint"):
            if name in entry and not isinstance(entry[name], str):
                raise DirectoryError(f"{where}: {name!r} must be a string")
