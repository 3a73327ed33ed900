"""Submission: a new job is checked, stored (within the owner's limits) and handed to its backend in the
background; after a restart, jobs that never reached their backend are handed to it again."""

from __future__ import annotations

import time
import uuid
from typing import Any

from hpgc.auth.grants import authorize_resources
from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.errors import (
    BackendUnavailable,
    InvalidParameterValue,
    InvalidRequest,
    LimitReached,
    NotAllowed,
    ProcessNotReady,
)
from hpgc.jobs.delivery import check_data
from hpgc.jobs.metrics import SUBMISSIONS, SUBMIT_SECONDS
from hpgc.jobs.parts import ServiceParts, log
from hpgc.jobs.paths import resolve_paths
from hpgc.jobs.uploads import resolve_uploads
from hpgc.logs import set_fields
from hpgc.models.ogc import Execute, JobControlOption, StatusCode
from hpgc.models.package import param
from hpgc.models.run import BackendStatus, JobRef, RunSpec
from hpgc.packages.inputs import FileRef, InputValue, validate_inputs
from hpgc.packages.registry import Process
from hpgc.packages.translate import build_run_spec


def package_cluster(process: Process) -> str | None:
    """A package may name its cluster with the additional parameter `cluster`."""
    value = param(process.description.additionalParameters, "cluster")
    return str(value) if value else None


def runs_async(options: list[JobControlOption], want_async: bool) -> bool:
    """OGC's rule for an execute: asynchronous when the client prefers it and the process allows it, or when
    the process cannot run synchronously."""
    return (want_async and JobControlOption.async_ in options) or JobControlOption.sync not in options


class Submission(ServiceParts):
    async def create(
        self, principal: Principal, process: Process, execute: Execute, base_url: str | None = None,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        """A new job of `process` (as `registry.get_for(principal, ...)` gave it: visible to them)."""
        if not principal.can_execute:
            raise NotAllowed("your token does not allow executing processes")
        if process.status != "ready":
            raise ProcessNotReady(f"process '{process.id}' is not ready to run: {process.status}")
        if execute.sweep is not None:  # hpgc:sweep: one job of many tasks (jobs/sweeps.py)
            return await self.create_sweep(principal, process, execute, base_url, cluster)  # type: ignore[attr-defined]
        inputs = validate_inputs(process.description, execute.inputs, self.max_inputs)
        # the identity's account is written into the stored request, so a resubmission after a restart uses it
        execute.resources = authorize_resources(principal, execute.resources)
        if execute.outputs:
            unknown = sorted(set(execute.outputs) - set(process.description.outputs))
            if unknown:
                raise InvalidRequest(f"unknown output '{unknown[0]}'; process '{process.id}' has: "
                                     + ", ".join(sorted(process.description.outputs)))
        backend_name = process.backend or self.default_backend
        if backend_name not in self.backends:
            raise BackendUnavailable(f"backend '{backend_name}' is not configured on this server")
        cluster = self._cluster(backend_name, cluster or package_cluster(process))
        inputs, uploads = await resolve_uploads(self, principal.subject, inputs, backend_name, cluster)
        inputs = await resolve_paths(self, principal.unix_user, inputs, backend_name, cluster)
        self._check_hrefs(inputs, self.backends[backend_name], cluster)
        await check_data(self, inputs, execute, self.backends[backend_name], cluster, principal.unix_user)
        subscriber = execute.subscriber.model_dump(exclude_none=True) if execute.subscriber else None
        if subscriber and self.callbacks is not None:
            await self.callbacks.check(subscriber)
        job_id = str(uuid.uuid4())
        # built now, not in the background: a package that cannot run this request is the client's 400
        spec = build_run_spec(process, job_id, inputs, execute.outputs, execute.resources,
                              self.backends[backend_name].resource_limits(cluster))
        now = time.time()
        row = {
            "id": job_id, "process_id": process.id, "owner": principal.subject,
            "unix_user": principal.unix_user, "status": StatusCode.accepted.value, "message": "accepted",
            "progress": 0, "backend": backend_name, "external_id": None, "created": now, "started": None,
            "finished": None, "updated": now, "request": execute.model_dump(mode="json", exclude_none=True),
            "results": None, "error": None,
            "subscriber": subscriber, "exit_code": None, "base_url": base_url,
            "cluster": cluster, "resources": spec.resources.shown(),
        }
        limit = self.limits.active_jobs_per_user
        if not await self.db(self.store.insert_job, row, "job accepted", limit):
            raise LimitReached(f"you have {limit} jobs accepted or running, the most this server runs for one user "
                               "at once; wait for one to end or dismiss one", "active_jobs_per_user", limit,
                               self.limits.retry_after_s)
        if uploads:  # an upload a job was given is kept while the job is active, and expire_s after it
            await self.db(self.store.use_uploads, job_id, uploads, now + self.upload_settings.expire_s)
        self._notify(row)
        self._spawn(self._submit(row, spec))
        return row

    def _check_hrefs(self, inputs: dict[str, list[InputValue]], backend: Backend, cluster: str | None) -> None:
        """A 400 naming the input for an href the server will refuse to download (bad URL, a literal private
        address); names are resolved when the download connects. Not when the cluster's job downloads."""
        if self.outbound is None or not backend.stages_in_on_server(cluster):
            return
        for input_id, values in inputs.items():
            for value in values:
                if isinstance(value, FileRef) and not value.href.startswith("s3://"):  # checked by check_data
                    self.outbound.check_url(value.href, f"input '{input_id}'")

    async def _submit(self, row: dict[str, Any], spec: RunSpec | None = None) -> None:
        """Hand the job to its backend; `spec` is rebuilt from the stored request when not given (a job
        that never reached its backend before a restart)."""
        job_id = row["id"]
        backend = self.backends[row["backend"]]
        # this task's log records name the job (its own context: a copy of the request's, request id included)
        set_fields(job_id=job_id, process_id=row["process_id"], user=row["owner"], cluster=row.get("cluster"))
        started = time.monotonic()
        try:
            if spec is None:
                process = await self.db(self.registry.get, row["process_id"])
                execute = Execute.model_validate(row["request"])
                inputs = validate_inputs(process.description, execute.inputs, self.max_inputs)
                inputs, _ = await resolve_uploads(self, row["owner"], inputs, row["backend"], row.get("cluster"))
                inputs = await resolve_paths(self, row.get("unix_user"), inputs, row["backend"], row.get("cluster"))
                spec = build_run_spec(process, job_id, inputs, execute.outputs, execute.resources,
                                      backend.resource_limits(row.get("cluster")))
            spec.unix_user = row.get("unix_user")
            spec.cluster = row.get("cluster")
            external_id = await backend.submit(spec)
        except (BackendError, OSError) as exc:
            SUBMISSIONS.labels(backend.name, "failed").inc()
            await self.apply(job_id, BackendStatus(status=StatusCode.failed, message=f"submission failed: {exc}"))
            return
        except Exception as exc:
            SUBMISSIONS.labels(backend.name, "failed").inc()
            log.exception("submission of job %s failed", job_id)
            await self.apply(job_id, BackendStatus(status=StatusCode.failed,
                                                   message=f"submission failed: {type(exc).__name__}: {exc}"))
            return
        SUBMISSIONS.labels(backend.name, "ok").inc()
        log.info("job %s submitted to %s as %s", job_id, backend.name, external_id)
        SUBMIT_SECONDS.labels(backend.name).observe(time.monotonic() - started)
        if not await self._record_submitted(job_id, external_id, backend.name):
            # dismissed while its submission ran: nothing will ever poll or cancel it, so it is done now
            ref = JobRef(job_id=job_id, external_id=external_id, cluster=spec.cluster, unix_user=spec.unix_user)
            try:
                await backend.cancel(ref)
            except (BackendError, OSError) as exc:
                log.warning("job %s was dismissed during its submission and could not be cancelled: %s", job_id, exc)
            await self._remove(backend, ref)
            return
        self.on_submitted(backend.name)

    async def _record_submitted(self, job_id: str, external_id: str, backend_name: str) -> bool:
        """Store a job's backend id; False when the job ended meanwhile (dismissed). Jobs submitted together
        (one SSH command) come back together: they share one transaction (parts.py's GroupCommit)."""
        return await self._submitted.add((job_id, {"external_id": external_id},
                                          f"submitted to {backend_name} as {external_id}"))

    def _cluster(self, backend_name: str, wanted: str | None) -> str | None:
        """The cluster a job goes to: the one asked for, if the backend has it; None: its default."""
        if wanted is None:
            return None
        known = self.backends[backend_name].cluster_names
        if wanted not in known:
            offered = ", ".join(known) or "none: this backend runs jobs on the server itself"
            raise InvalidParameterValue(f"unknown cluster '{wanted}'; clusters: {offered}")
        return wanted

    async def recover(self) -> None:
        """After a restart: submit what never reached a backend; the monitors pick up the rest."""
        for row in await self.db(self.store.active_jobs):
            if row["backend"] not in self.backends:
                await self.apply(row["id"], BackendStatus(
                    status=StatusCode.failed,
                    message=f"backend '{row['backend']}' is no longer configured on this server"))
            elif not row.get("external_id"):
                log.info("resubmitting job %s (the server stopped before it reached the backend)", row["id"])
                sweep = row.get("tasks") is not None
                self._spawn(self._submit_sweep(row) if sweep else self._submit(row))  # type: ignore[attr-defined]
