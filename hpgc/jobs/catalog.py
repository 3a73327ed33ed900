"""The process catalogue as users see it: the processes visible to them, deploy, replace and undeploy
(Part 2) with who may deploy where, and a deployed process's container image pulled before it runs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hpgc.auth.principal import Principal
from hpgc.jobs.parts import ServiceParts
from hpgc.jobs.submission import package_cluster
from hpgc.jobs.trust import check_deploy_target
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
        await self.prepare(process.id)
        return await self.db(self.registry.get, process.id)

    async def check_replace(self, principal: Principal, process_id: str) -> None:
        """Before reading a replacement: 404/403 unless `principal` owns the process and may deploy here."""
        await self.db(self.registry.check_owner, principal, process_id)
        self.check_deploy(principal)

    async def replace(self, principal: Principal, process_id: str, row: dict[str, Any]) -> None:
        await self.db(self.registry.replace, principal, process_id, row)
        await self.prepare(process_id)

    async def undeploy(self, principal: Principal, process_id: str) -> None:
        await self.db(self.registry.undeploy, principal, process_id)

    def check_deploy(self, principal: Principal, backend_name: str | None = None) -> None:
        """Before a deploy or replace: may `principal` put a package on the backend it would run on (a
        deployed package names none: the default backend)? NotAllowed (403) says why when not."""
        name = backend_name or self.default_backend
        check_deploy_target(principal, name, self.backends.get(name))

    async def prepare(self, process_id: str, bound_s: float = 2.0) -> None:
        """Get a deployed process's container image into the backend's cache (a pull can take minutes: after
        `bound_s` the process stays 'deploying' and the pull goes on in the background)."""
        process = await self.db(self.registry.get, process_id)
        if process.kind != "command":
            return
        backend = self.backends.get(process.backend or self.default_backend)
        if backend is None:
            return
        spec = build_run_spec(process, "deploy-check", {}, None)
        if spec.container is None:
            return
        container, cluster = spec.container, package_cluster(process)  # the image goes where the jobs will run

        async def pull() -> None:
            try:
                await backend.ensure_image(container, cluster)
                status = "ready"
            except Exception as exc:  # the reason is the process's status, for the user to see
                status = f"failed: the image {container.source or container.image} could not be pulled: {exc}"
            await self.db(self.registry.set_status, process_id, status)

        await self.db(self.registry.set_status, process_id, "deploying")
        task = asyncio.create_task(pull())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), bound_s)
