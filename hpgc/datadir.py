"""The data dir's permissions: only the server's account may read the database, the keys or job files.

The server starts with umask 077 (hpgc/cli.py), so what it creates is private; this fixes what an older
version or another umask created (0755 folders, a 0644 database) and says so in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)
DB_FILE = "hpgc.sqlite"
PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_SECRET_DIRS = ("auth",)  # the development issuer's signing keys; its issuer URL beside them


def tighten(path: Path, mode: int) -> bool:
    """chmod `path` to `mode` when group or others have any access; True when it was changed. Symlinks
    are left alone (chmod would change their target)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return False
    path.chmod(mode)
    log.warning("tightened the permissions of %s from %04o to %04o (only the server's account may read it)",
                path, stat.S_IMODE(st.st_mode), mode)
    return True


def secure_data_dir(data_dir: Path) -> Path:
    """Create the data dir (0700) and an empty database file (0600) if missing, fix the modes of what is
    there; returns the database's path. SQLite gives its -wal and -shm files the database's mode."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tighten(data_dir, DIR_MODE)
    db = data_dir / DB_FILE
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        tighten(db.with_name(DB_FILE + suffix), FILE_MODE)
    for name in _SECRET_DIRS:
        folder = data_dir / name
        if folder.is_dir() and not folder.is_symlink():
            tighten(folder, DIR_MODE)
            for item in folder.iterdir():
                tighten(item, DIR_MODE if item.is_dir() else FILE_MODE)
    tighten(data_dir / "jobs", DIR_MODE)
    return db
