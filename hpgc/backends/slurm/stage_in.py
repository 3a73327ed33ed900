"""Server-side stage-in (`stage_in = "server"`): hpgc downloads a job's `href` inputs through its guarded
client and writes them into the job directory over SFTP, for clusters whose compute nodes cannot reach
the data. Runs before the submit command, which then finds the inputs in place."""

from __future__ import annotations

import posixpath

from hpgc.backends.base import BackendError
from hpgc.backends.files import Downloads
from hpgc.backends.slurm.ssh import SSHClient
from hpgc.models.run import RunSpec
from hpgc.net import GuardedClient
from hpgc.storage import ObjectStores, StorageError


def needs_server_stage_in(spec: RunSpec) -> bool:
    return any(f.content is None and f.href for f in spec.files)


async def upload_hrefs(outbound: GuardedClient, client: SSHClient, spec: RunSpec, jd: str, max_bytes: int,
                       storage: ObjectStores | None = None) -> None:
    downloads = Downloads(outbound, storage, spec.unix_user)
    async with client.sftp() as sftp:
        for f in spec.files:
            if f.content is not None or not f.href:
                continue
            target = f"{jd}/{f.path}"
            await sftp.makedirs(posixpath.dirname(target), exist_ok=True)
            async with sftp.open(target, "wb") as out:
                async for chunk in downloads.fetch(f.href, max_bytes):
                    await out.write(chunk)


async def sign_s3_inputs(spec: RunSpec, storage: ObjectStores | None) -> RunSpec:
    """`stage_in = "job"`: each s3:// input becomes a presigned GET URL the job downloads with curl, so the job
    needs no credentials (the URL grants reading that one object, for `presign_s`)."""
    if not any(f.href and f.href.startswith("s3://") for f in spec.files):
        return spec
    if storage is None:
        raise BackendError("s3:// inputs are not configured on this server (storage.s3)")
    files = []
    for f in spec.files:
        if f.href and f.href.startswith("s3://"):
            try:
                f = f.model_copy(update={"href": await storage.signed_get(f.href, spec.unix_user)})
            except StorageError as exc:
                raise BackendError(f"input {f.href[:200]}: {exc}") from None
        files.append(f)
    return spec.model_copy(update={"files": files})
