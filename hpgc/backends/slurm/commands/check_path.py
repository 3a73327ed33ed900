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
