"""The SQLite database on disk holds personal data (forms, attachments, the register), so
its folder and files are the gateway user's alone, whatever the umask: they used to follow
it (a 0755 folder, a 0644 database readable by every local user)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600
# SQLite creates these next to the database, with the database file's own mode.
COMPANIONS = ("-wal", "-shm", "-journal")


def private_database(path: Path) -> None:
    """Create the database's folder (0700) and file (0600) before SQLite opens it, so that
    SQLite gives its -wal and -shm files 0600 too; tighten files an older version left
    readable. A folder that already exists is not changed: it may be shared (e.g. /var/lib),
    and the files in it are private anyway."""
    folder = path.parent
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another node created it meanwhile
            folder.mkdir(mode=FOLDER_MODE)
            os.chmod(folder, FOLDER_MODE)  # exact, whatever the umask
    fd = os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), FILE_MODE)
