"""Cluster paths as inputs (`file:///...`): checked by the job's own Unix account over its own SSH connection
(commands/check_path.py), never by the service account, so hpgc lets a job use in place exactly what its user
could read with `cat`. A server that runs a user's jobs as its service account refuses them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpgc.backends.base import BackendError, PathNotAllowed
from hpgc.backends.slurm.commands.check_path import check_path_command, checked_path, copied, copy_out_command
from hpgc.models.run import JobRef

if TYPE_CHECKING:
    from hpgc.backends.slurm.config import ClusterSettings
    from hpgc.backends.slurm.ssh import SSHClient, SSHPool


class SlurmPaths:
    pool: SSHPool

    def _cluster(self, name: str | None) -> tuple[str, ClusterSettings]: ...  # SlurmBackend's

    def _ref(self, job: JobRef) -> tuple[SSHClient, str, object]: ...  # SlurmBackend's

    def _parts(self, client: SSHClient, jd: str, path: str) -> list[str]: ...  # SlurmBackend's

    def _own_client(self, cluster: str | None, unix_user: str | None) -> tuple[str, SSHClient]:
        name, _ = self._cluster(cluster)
        if unix_user is None:
            raise PathNotAllowed("cluster paths are checked and written as your own Unix account, and this server "
                                 "has none for you (auth.identity)")
        client = self.pool.client(name, unix_user)
        if client.login != unix_user:
            raise PathNotAllowed(f"cluster {name} has no connection as {unix_user} (user_keys): cluster paths are "
                                 "never checked as the service account")
        return name, client

    async def check_folder(self, path: str, cluster: str | None, unix_user: str | None) -> None:
        name, client = self._own_client(cluster, unix_user)
        result = await client.run(copy_out_command("", path, "x"))
        if result.exit_status != 0:
            raise PathNotAllowed(f"{path} is not a folder your account ({unix_user}) owns and may write to on "
                                 f"cluster {name}")

    async def copy_out(self, job: JobRef, path: str, folder: str, name: str) -> tuple[int, str]:
        client, jd, _ = self._ref(job)
        src = "/".join([client.settings.work_root.rstrip("/"), *self._parts(client, jd, path)])  # inside the job
        result = await client.run(copy_out_command(src, folder, name))
        done = copied(result.exit_status, result.stdout)
        if done is None:
            raise BackendError(f"{folder}/{name}: {result.stderr.strip()[-300:] or 'the copy failed'}")
        return done

    async def check_path(self, path: str, cluster: str | None, unix_user: str | None) -> str:
        name, client = self._own_client(cluster, unix_user)
        result = await client.run(check_path_command(path))
        real = checked_path(result.exit_status, result.stdout)
        if real is None:
            raise PathNotAllowed(f"{path} is not a file your account ({unix_user}) can read on cluster {name}")
        return real
