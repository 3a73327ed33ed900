"""File paths as inputs on the local backend (`file:///...`): a local job runs as the server's own account, which
may read far more than any one user should (the database, the issuer's keys, other jobs), so a path is taken only
inside the folders an administrator lists in `local.data_roots`, after every symlink is resolved, and only a
regular file the server can read. Every user of the server can then read every file there."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hpgc.backends.base import PathNotAllowed
from hpgc.backends.local.settings import LocalBackendSettings


class LocalPaths:
    settings: LocalBackendSettings

    async def check_path(self, path: str, cluster: str | None, unix_user: str | None) -> str:
        return await asyncio.to_thread(_checked, path, self.settings.data_roots)


def _checked(path: str, roots: list[Path]) -> str:
    if not roots:
        raise PathNotAllowed("file paths are not inputs on this server's local backend (local.data_roots is empty: "
                             "local jobs run as the server's own account)")
    real = os.path.realpath(path)  # every symlink resolved: a link inside a root to outside it is outside
    inside = any(os.path.commonpath([real, os.path.realpath(root)]) == os.path.realpath(root) for root in roots)
    if not inside or not os.path.isfile(real) or not os.access(real, os.R_OK):
        raise PathNotAllowed(f"{path} is not a readable file under the folders this server shares "
                             f"(local.data_roots: {', '.join(str(r) for r in roots)})")
    return real
