"""A cluster's image cache: pull a package's image once, at deploy time, with the runtime's own pull on the
login node (compute nodes are often offline); delete an image hpgc pulled once no process uses it."""

from __future__ import annotations

from hpgc.backends.base import BackendError
from hpgc.backends.slurm.commands.pull_image import pull_image_command, remove_image_command
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh import SSHClient
from hpgc.models.run import Container

IMAGE_PULL_TIMEOUT_S = 3600.0


def _cache(client: SSHClient, settings: ClusterSettings, container: Container) -> tuple[str, str]:
    if not settings.container_runtime or not settings.image_cache:
        raise BackendError(f"cluster {client.cluster} has no container_runtime and image_cache configured")
    if any("/" in n or n.startswith(".") for n in container.candidates()):
        raise BackendError(f"image {container.image!r} must be a file name in the image cache")
    return settings.container_runtime, settings.image_cache


async def ensure_image(client: SSHClient, settings: ClusterSettings, container: Container) -> None:
    """An image already cached (the site's own file, or one pulled before) is kept."""
    runtime, cache = _cache(client, settings, container)
    result = await client.run(pull_image_command(runtime, cache, container), timeout=IMAGE_PULL_TIMEOUT_S)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip()[-1000:]
        raise BackendError(detail or f"the image {container.image} is not in {cache}")


async def remove_image(client: SSHClient, settings: ClusterSettings, container: Container) -> None:
    if not container.source or not settings.image_cache:
        return  # the site's own image, or no cache: nothing hpgc pulled
    _, cache = _cache(client, settings, container)
    result = await client.run(remove_image_command(cache, container.image))
    if not result.ok:
        raise BackendError(result.stderr.strip()[-500:] or f"rm exited {result.exit_status}")
