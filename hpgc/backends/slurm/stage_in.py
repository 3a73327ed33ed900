"""Server-side stage-in (`stage_in = "server"`): hpgc downloads a job's `href` inputs through its guarded
client and writes them into the job directory over SFTP, for clusters whose compute nodes cannot reach
the data. Runs before the submit command, which then finds the inputs in place."""

from __future__ import annotations

import posixpath

from hpgc.backends.files import Downloads
from hpgc.backends.slurm.ssh import SSHClient
from hpgc.models.run import RunSpec
from hpgc.net import GuardedClient


def needs_server_stage_in(spec: RunSpec) -> bool:
    return any(f.content is None and f.href for f in spec.files)


async def upload_hrefs(outbound: GuardedClient, client: SSHClient, spec: RunSpec, jd: str, max_bytes: int) -> None:
    downloads = Downloads(outbound)
    async with client.sftp() as sftp:
        for f in spec.files:
            if f.content is not None or not f.href:
                continue
            target = f"{jd}/{f.path}"
            await sftp.makedirs(posixpath.dirname(target), exist_ok=True)
            async with sftp.open(target, "wb") as out:
                async for chunk in downloads.fetch(f.href, max_bytes):
                    await out.write(chunk)
