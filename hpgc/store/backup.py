"""A consistent copy of the database while the server runs, with SQLite's online backup API.

The copy is taken in one step through a connection of its own: in WAL mode that is one read transaction,
a snapshot of a single moment, and writers are not held up meanwhile. The copy is checked
(`PRAGMA integrity_check`) before it is kept, and is readable by the server's account only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

COPY_MODE = 0o600


class BackupError(Exception):
    """The backup could not be taken; the message says why."""


def backup_database(source: Path, target: Path) -> int:
    """Copy `source` to `target` (which must not exist); → the number of jobs in the copy."""
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    if target.exists() or target.is_symlink():
        raise BackupError(f"{target} exists already; a backup never overwrites a file")
    partial = target.with_name(f".{target.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, COPY_MODE)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)  # all pages in one step: one snapshot
            verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"the copy failed its integrity check: {verdict}")
            jobs = int(dst.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        os.link(partial, target)  # never replaces a file that appeared meanwhile
    except FileExistsError:
        raise BackupError(f"{target} exists already; a backup never overwrites a file") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return jobs
