"""Is a cluster reachable? /health/ready asks this of each configured cluster: its sshd answers a new TCP
connection with an SSH banner (so a stopped sshd shows at once, even while pooled connections live on), and
a no-op command runs over the pooled connection (the service identity's, else any user's already open)."""

from __future__ import annotations

import asyncio
import contextlib

from hpgc.backends.base import BackendError
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh import SSHClient, SSHPool

BANNER_BYTES = 255  # RFC 4253 §4.2: the identification line is at most 255 characters


async def sshd_answers(settings: ClusterSettings) -> bool:
    reader, writer = await asyncio.open_connection(settings.host, settings.port)
    try:
        banner = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return banner[:BANNER_BYTES].startswith(b"SSH-")


def pooled_client(pool: SSHPool, cluster: str) -> SSHClient | None:
    try:
        return pool.client(cluster, None)
    except BackendError:  # no service identity: a mapped user's connection, if one is open
        return next((c for c in pool.all() if c.cluster == cluster and c.is_connected), None)


async def cluster_healthy(pool: SSHPool, cluster: str, settings: ClusterSettings, timeout_s: float) -> bool:
    """Within `timeout_s`: the banner, then `true` over the pooled connection. Errors are not reported (the
    public /health body names checks only); the warnings the commands log already say why."""
    try:
        async with asyncio.timeout(timeout_s):
            if not await sshd_answers(settings):
                return False
            client = pooled_client(pool, cluster)
            return client is None or (await client.run("true", timeout=timeout_s, retry=False)).ok
    except (TimeoutError, OSError, BackendError):
        return False
