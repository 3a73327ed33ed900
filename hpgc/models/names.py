"""Names that leave hpgc for an operating system: one rule each, shared by every layer that checks them.

A Unix user name is decided once, when a token is mapped to an account (hpgc/auth.py), and used much later,
by the Slurm backend, in SSH logins, job directory paths and #SBATCH lines (hpgc/backends/slurm). Both check
it with this rule, so that a name accepted at request time can never be refused when the job is submitted.
"""

from __future__ import annotations

import re

UNIX_USER_MAX = 32
# Linux useradd's default rule (lowercase, a letter or '_' first), with '.' as directory-backed sites use
# (jane.doe), and without useradd's trailing '$' of Samba machine accounts: '$' is a shell character that
# #SBATCH lines refuse. 32 is useradd's limit. Uppercase is refused: useradd refuses it, and tools that fold
# case (LDAP, e-mail) would make Alice and alice two hpgc users but one account.
UNIX_USER = re.compile(rf"[a-z_][a-z0-9_.-]{{0,{UNIX_USER_MAX - 1}}}")
UNIX_USER_RULE = (f"lowercase letters, digits, '_', '.' and '-', starting with a letter or '_', at most "
                  f"{UNIX_USER_MAX} characters")


def unix_user_error(name: object) -> str | None:
    """Why `name` cannot be a Unix/Slurm user name here (a sentence for the client), or None if it can."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > UNIX_USER_MAX:
        return f"it is longer than {UNIX_USER_MAX} characters"
    if UNIX_USER.fullmatch(name) is None:
        return f"a Unix user name here has only {UNIX_USER_RULE}"
    return None
