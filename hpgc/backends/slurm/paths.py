"""Cluster paths as inputs (`file:///...`): checked by the job's own Unix account over its own SSH connection
(commands/check_path.py), never by the service account, so hpgc lets a job use in place exactly what its user
could read with `cat`. A server that runs a user's jobs as its service account refuses them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpgc.backends.base import PathNotAllowed
from hpgc.backends.slurm.commands.check_path import check_path_command, checked_path

if TYPE_CHECKING:
    from hpgc.backends.slurm.config import ClusterSettings
    from hpgc.backends.slurm.ssh import SSHPool


class SlurmPaths:
    pool: SSHPool

    def _cluster(self, name: str | None) -> tuple[str, ClusterSettings]: ...  # SlurmBackend's

    async def check_path(self, path: str, cluster: str | None, unix_user: str | None) -> str:
        name, _ = self._cluster(cluster)
        if unix_user is None:
            raise PathNotAllowed("cluster paths are checked and read as your own Unix account, and this server has "
                                 "none for you (auth.identity): they are not inputs here")
        client = self.pool.client(name, unix_user)
        if client.login != unix_user:
            raise PathNotAllowed(f"cluster {name} has no connection as {unix_user} (user_keys): cluster paths are "
                                 "never checked as the service account")
        result = await client.run(check_path_command(path))
        real = checked_path(result.exit_status, result.stdout)
        if real is None:
            raise PathNotAllowed(f"{path} is not a file your account ({unix_user}) can read on cluster {name}")
        return real
