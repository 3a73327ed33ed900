"""Check a cluster path a request names, as the job's own account: the OS decides what that user may read, so a
file of another user, a folder they may not enter, or a symlink to either is refused exactly as their own `cat`
would be. The output is the physical path the job uses (no symlink left to swap)."""

from __future__ import annotations

import shlex

from hpgc.backends.slurm.commands import fill

NOT_READABLE = 3


def check_path_command(path: str) -> str:
    return fill("check_path.sh", FILE=shlex.quote(path))


def checked_path(exit_status: int | None, stdout: str) -> str | None:
    """The physical path, or None when the account cannot read a regular file there."""
    lines = stdout.strip().splitlines()
    if exit_status != 0 or len(lines) != 1 or not lines[0].startswith("/"):
        return None
    return lines[0]


def copy_out_command(src: str, folder: str, name: str) -> str:
    """Copy SRC to FOLDER/NAME as the job's user (an empty SRC: only check FOLDER is theirs and writable)."""
    return fill("copy_out.sh", SRC=shlex.quote(src), DIR=shlex.quote(folder), NAME=shlex.quote(name))


def copied(exit_status: int | None, stdout: str) -> tuple[int, str] | None:
    """(size, sha256) the copy printed, or None."""
    words = stdout.split()
    if exit_status != 0 or len(words) != 2 or len(words[0]) != 64 or not words[1].isdigit():
        return None
    return int(words[1]), words[0]
