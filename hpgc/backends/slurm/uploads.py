"""Uploaded files on a cluster: WORK_ROOT/USER/uploads/<id>, written over the user's own SFTP session as the
bytes arrive (never whole in the server's memory or disk), as `<id>.part` renamed into place once complete, in
the user's private (0700) folder. The job script hard-links it into the job directory (a copy across file
systems), so the job keeps its input when the upload is deleted or expires."""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncssh

from hpgc.backends.base import BackendError
from hpgc.backends.slurm.jobdir import job_dir
from hpgc.backends.slurm.paths import SlurmPaths
from hpgc.models.run import UploadRef

if TYPE_CHECKING:
    from hpgc.backends.slurm.config import ClusterSettings
    from hpgc.backends.slurm.ssh import SSHClient, SSHPool

UPLOADS = "uploads"  # beside the job directories; job ids are UUIDs and never take this name


def upload_file(settings: ClusterSettings, upload: UploadRef) -> str:
    user_root = posixpath.dirname(job_dir(settings, upload.file_id, upload.unix_user))  # checks the names
    return f"{user_root}/{UPLOADS}/{upload.file_id}"


class SlurmUploads(SlurmPaths):
    pool: SSHPool

    def _cluster(self, name: str | None) -> tuple[str, ClusterSettings]: ...  # SlurmBackend's

    async def _private_root(self, client: SSHClient, jd: str) -> None: ...  # SlurmBackend's

    def upload_path(self, upload: UploadRef) -> str:
        return upload_file(self._cluster(upload.cluster)[1], upload)

    async def store_upload(self, upload: UploadRef, chunks: AsyncIterator[bytes]) -> None:
        name, settings = self._cluster(upload.cluster)
        target = upload_file(settings, upload)
        folder = posixpath.dirname(target)
        client = self.pool.client(name, upload.unix_user)  # as the user: their file, their quota
        await self._private_root(client, folder)  # WORK_ROOT/USER is theirs and 0700 before a byte is written
        part = f"{target}.part"
        async with client.sftp() as sftp:
            with contextlib.suppress(asyncssh.SFTPFailure):
                await sftp.mkdir(folder, asyncssh.SFTPAttrs(permissions=0o700))
            try:
                async with sftp.open(part, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as out:
                    async for chunk in chunks:
                        await out.write(chunk)
                await sftp.posix_rename(part, target)
            except BaseException:
                with contextlib.suppress(Exception):
                    await sftp.remove(part)
                raise

    async def remove_upload(self, upload: UploadRef) -> None:
        name, settings = self._cluster(upload.cluster)
        client = self.pool.client(name, upload.unix_user)
        async with client.sftp() as sftp:
            try:
                await sftp.remove(upload_file(settings, upload))
            except asyncssh.SFTPNoSuchFile:
                return
            except asyncssh.SFTPError as exc:
                raise BackendError(f"the uploaded file could not be deleted: {exc.reason}") from None
