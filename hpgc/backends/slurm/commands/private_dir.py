"""Make WORK_ROOT/USER the account's own 0700 folder (or refuse), before anything is written in it."""

from __future__ import annotations

import shlex

from hpgc.backends.slurm.commands import program

NOT_PRIVATE = "is not a folder owned by this account; refusing to write job files there"
REFUSED = 3  # the exit status when the folder is not the account's


def private_function() -> str:
    """The shell function `private DIR` (private.sh), for programs that write job files."""
    return program("private.sh")


def private_dir_command(root: str, user: str) -> str:
    folder = shlex.quote(f"{root.rstrip('/')}/{user}")
    return (f"umask 077\n{private_function()}"
            f'private {folder} || {{ echo "hpgc: "{folder}" {NOT_PRIVATE}" >&2; exit {REFUSED}; }}\n')
