"""The process catalogue as users see it: the processes visible to them, deploy, replace and undeploy
(Part 2) with who may deploy where, a deployed process's container image pulled before it runs and removed
when no process uses it any more."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.jobs.metrics import DEPLOYS, IMAGE_PULL_SECONDS, IMAGE_PULLS
from hpgc.jobs.parts import ServiceParts, log
from hpgc.jobs.submission import package_cluster
from hpgc.jobs.trust import check_deploy_target
from hpgc.models.run import Container
from hpgc.packages.registry import Process
from hpgc.packages.translate import build_run_spec


class Catalog(ServiceParts):
    async def processes_for(self, principal: Principal) -> list[Process]:
        return await self.db(self.registry.all_for, principal)

    async def process_for(self, principal: Principal, process_id: str) -> Process:
        """The process, if `principal` may see it (NoSuchProcess, 404, otherwise)."""
        return await self.db(self.registry.get_for, principal, process_id)

    async def deploy(self, principal: Principal, row: dict[str, Any]) -> Process:
        """Store a new deployed process (`registry.process_row`) and start getting its image."""
        process = await self.db(self.registry.deploy, principal, row)
        DEPLOYS.labels("deploy").inc()
        await self.prepare(process.id)
        return await self.db(self.registry.get, process.id)

    async def check_replace(self, principal: Principal, process_id: str) -> None:
        """Before reading a replacement: 404/403 unless `principal` owns the process and may deploy here."""
        await self.db(self.registry.check_owner, principal, process_id)
        self.check_deploy(principal)

    async def replace(self, principal: Principal, process_id: str, row: dict[str, Any]) -> None:
        old = await self.db(self.registry.get, process_id)
        await self.db(self.registry.replace, principal, process_id, row)
        DEPLOYS.labels("replace").inc()
        await self.prepare(process_id)
        await self._collect_image(old)

    async def undeploy(self, principal: Principal, process_id: str) -> None:
        old = await self.db(self.registry.get, process_id)
        await self.db(self.registry.undeploy, principal, process_id)
        DEPLOYS.labels("undeploy").inc()
        await self._collect_image(old)

    def _image_of(self, process: Process) -> tuple[Backend, Container, str | None] | None:
        """(backend, image, cluster) a command package's jobs run with; None for CWL or no container."""
        backend = self.backends.get(process.backend or self.default_backend)
        if process.kind != "command" or backend is None:
            return None
        container = build_run_spec(process, "deploy-check", {}, None).container
        return None if container is None else (backend, container, package_cluster(process))

    async def _collect_image(self, old: Process) -> None:
        """The image of a process that went (undeployed, or replaced by another package) leaves the cache once
        no process uses it; only what hpgc pulled, never the site's own file. A failure is only logged: the
        image is then one more file in the cache, nothing breaks."""
        image = self._image_of(old)
        if image is None or not image[1].source:
            return
        backend, container, cluster = image
        for process in await self.db(self.registry.all):
            other = self._image_of(process)
            if other is not None and other[0] is backend and other[2] == cluster and \
                    other[1].image == container.image:
                return
        try:
            await backend.remove_image(container, cluster)
        except (BackendError, OSError) as exc:
            log.warning("the image %s of process %s could not be removed: %s", container.image, old.id, exc)

    def check_deploy(self, principal: Principal, backend_name: str | None = None) -> None:
        """Before a deploy or replace: may `principal` put a package on the backend it would run on (a
        deployed package names none: the default backend)? NotAllowed (403) says why when not."""
        name = backend_name or self.default_backend
        check_deploy_target(principal, name, self.backends.get(name))

    async def prepare(self, process_id: str, bound_s: float = 2.0) -> None:
        """Get a deployed process's container image into the backend's cache (a pull can take minutes: after
        `bound_s` the process stays 'deploying' and the pull goes on in the background)."""
        image = self._image_of(await self.db(self.registry.get, process_id))
        if image is None:
            return
        backend, container, cluster = image  # the image goes where the jobs will run

        async def pull() -> None:
            started = time.monotonic()
            try:
                await backend.ensure_image(container, cluster)
                status = "ready"
            except Exception as exc:  # the reason is the process's status, for the user to see
                status = f"failed: the image {container.source or container.image} could not be pulled: {exc}"
            IMAGE_PULLS.labels(backend.name, "ok" if status == "ready" else "failed").inc()
            IMAGE_PULL_SECONDS.labels(backend.name).observe(time.monotonic() - started)
            await self.db(self.registry.set_status, process_id, status)

        await self.db(self.registry.set_status, process_id, "deploying")
        task = asyncio.create_task(pull())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), bound_s)
