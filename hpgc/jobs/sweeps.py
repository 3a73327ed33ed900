"""Sweeps (hpgc:sweep): one OGC job of N tasks. Submission checks every task's inputs before anything is
stored, stores the job with its tasks in one transaction and hands all the tasks to the backend in one call
(Slurm: one job array); the monitor polls the tasks not final yet with the other jobs, and each report
updates the tasks, the job's counts (`hpgc:tasks`), its progress (the fraction of tasks finished) and, once
every task ended, its status: successful when every task is, failed otherwise (the indices in the message).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

from hpgc.auth.grants import authorize_resources
from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.errors import BackendUnavailable, InvalidRequest, LimitReached
from hpgc.jobs.lifecycle import Lifecycle
from hpgc.jobs.metrics import SUBMISSIONS
from hpgc.jobs.parts import log
from hpgc.jobs.submission import Submission, package_cluster
from hpgc.jobs.uploads import upload_id_of
from hpgc.logs import set_fields
from hpgc.models.ogc import Execute, StatusCode
from hpgc.models.run import BackendStatus, JobRef, RunSpec
from hpgc.models.sweep import split_task_key, task_key
from hpgc.packages.inputs import FileRef, InputValue
from hpgc.packages.registry import Process
from hpgc.packages.sweep import sweep_inputs
from hpgc.packages.translate import build_run_spec

SHOWN_INDICES = 20  # a failed sweep's message names at most this many failed tasks
OUTPUT_READS = 8  # tasks whose outputs.json is read at once (one SSH command each on Slurm)


def counts_of(statuses: list[str]) -> dict[str, int]:
    """A sweep's `hpgc:tasks`: the number of tasks, and of tasks in each state (every state named)."""
    seen = Counter(statuses)
    return {"total": len(statuses), **{s.value: seen.get(s.value, 0) for s in StatusCode}}


def sweep_status(counts: dict[str, int], bad: list[int]) -> BackendStatus:
    """The job's status from its tasks': `bad` are the indices of the tasks that failed or were cancelled."""
    total = counts["total"]
    ended = sum(counts[s] for s in ("successful", "failed", "dismissed"))
    progress = ended * 100 // total if total else 100
    if ended == total:
        if not bad:
            return BackendStatus(status=StatusCode.successful, progress=100, message=f"all {total} tasks succeeded")
        shown = ", ".join(str(i) for i in bad[:SHOWN_INDICES]) + (", …" if len(bad) > SHOWN_INDICES else "")
        return BackendStatus(status=StatusCode.failed, progress=progress, message=(
            f"{len(bad)} of {total} tasks failed (indices {shown}); the results of the others are served per task "
            "(/tasks)"))
    status = StatusCode.accepted if counts["accepted"] == total else StatusCode.running
    return BackendStatus(status=status, progress=progress, message=f"{ended} of {total} tasks finished"
                         + (f", {len(bad)} failed" if bad else ""))


def task_changes(task: dict[str, Any], st: BackendStatus, now: float) -> dict[str, Any]:
    change: dict[str, Any] = {}
    if st.status.value != task["status"]:
        change["status"] = st.status.value
    if st.message and st.message != task["message"]:
        change["message"] = st.message
    if st.status != StatusCode.accepted and task["started"] is None:
        change["started"] = now
    if st.status.terminal:
        change.update(finished=now, exit_code=st.exit_code)
    return change


def refuse_unsupported_data(tasks: list[dict[str, list[InputValue]]], execute: Execute) -> None:
    """A 400 for what a sweep's tasks cannot use yet: uploads, file:// and s3:// inputs and an hpgc:outputs
    destination are resolved and delivered per job (jobs/uploads.py, paths.py, delivery.py), not per task."""
    if execute.delivery is not None:
        raise InvalidRequest("hpgc:outputs cannot be combined with hpgc:sweep yet: a sweep's outputs stay on the "
                             "server (GET /jobs/{id}/results); deliver them with separate jobs (docs/data.md)")
    for index, inputs in enumerate(tasks):
        for input_id, values in inputs.items():
            for value in values:
                if isinstance(value, FileRef) and (value.href.startswith(("file:", "s3:"))
                                                   or upload_id_of(value.href) is not None):
                    raise InvalidRequest(f"hpgc:sweep: task {index}, input '{input_id}': uploads, file:// and "
                                         "s3:// inputs are not supported in a sweep yet; give an http(s) URL or "
                                         "the value, or run separate jobs (docs/data.md)")


def task_ref(row: dict[str, Any], index: int, external_id: str | None) -> JobRef:
    return JobRef(job_id=task_key(row["id"], index), external_id=external_id, cluster=row.get("cluster"),
                  unix_user=row.get("unix_user"))


class Sweeps(Submission, Lifecycle):
    async def create_sweep(self, principal: Principal, process: Process, execute: Execute, base_url: str | None,
                           cluster: str | None) -> dict[str, Any]:
        """A new sweep job (Submission.create's checks of principal and process are done)."""
        assert execute.sweep is not None
        # thousands of validations and RunSpecs take a while: off the event loop, which serves everyone else
        tasks = await asyncio.to_thread(sweep_inputs, process.description, execute.inputs, execute.sweep,
                                        self.limits.sweep_max_tasks, self.max_inputs)
        refuse_unsupported_data(tasks, execute)
        # as for a single job: the identity's account and allowed partitions/QOS (a 403 naming what is not)
        execute.resources = authorize_resources(principal, execute.resources)
        if execute.outputs and (unknown := sorted(set(execute.outputs) - set(process.description.outputs))):
            raise InvalidRequest(f"unknown output '{unknown[0]}'; process '{process.id}' has: "
                                 + ", ".join(sorted(process.description.outputs)))
        backend_name = process.backend or self.default_backend
        if backend_name not in self.backends:
            raise BackendUnavailable(f"backend '{backend_name}' is not configured on this server")
        backend = self.backends[backend_name]
        cluster = self._cluster(backend_name, cluster or package_cluster(process))
        for inputs in tasks:
            self._check_hrefs(inputs, backend, cluster)
        subscriber = execute.subscriber.model_dump(exclude_none=True) if execute.subscriber else None
        if subscriber and self.callbacks is not None:
            await self.callbacks.check(subscriber)
        job_id = str(uuid.uuid4())
        specs = await asyncio.to_thread(self._task_specs, process, job_id, tasks, execute, backend, cluster)
        now = time.time()
        counts = counts_of([StatusCode.accepted.value] * len(specs))
        row = {
            "id": job_id, "process_id": process.id, "owner": principal.subject, "unix_user": principal.unix_user,
            "status": StatusCode.accepted.value, "message": f"accepted: a sweep of {len(specs)} tasks", "progress": 0,
            "backend": backend_name, "external_id": None, "created": now, "started": None, "finished": None,
            "updated": now, "request": execute.model_dump(mode="json", exclude_none=True), "results": None,
            "error": None, "subscriber": subscriber, "exit_code": None, "base_url": base_url, "cluster": cluster,
            "resources": specs[0].resources.shown(), "tasks": counts,
        }
        limit = self.limits.active_jobs_per_user
        if not await self.db(self.store.insert_sweep, row, len(specs), "sweep accepted", limit):
            raise LimitReached(f"you have {limit} jobs accepted or running, the most this server runs for one user "
                               "at once; wait for one to end or dismiss one", "active_jobs_per_user", limit,
                               self.limits.retry_after_s)
        self._notify(row)
        self._spawn(self._submit_sweep(row, specs))
        return row

    @staticmethod
    def _task_specs(process: Process, job_id: str, tasks: list[Any], execute: Execute, backend: Backend,
                    cluster: str | None) -> list[RunSpec]:
        limits = backend.resource_limits(cluster)
        return [build_run_spec(process, task_key(job_id, i), inputs, execute.outputs, execute.resources, limits)
                for i, inputs in enumerate(tasks)]

    async def _submit_sweep(self, row: dict[str, Any], specs: list[RunSpec] | None = None) -> None:
        """Hand every task to the backend in one call; `specs` rebuilt from the stored request after a restart
        (the backend finds a sweep it already has: nothing is submitted twice)."""
        job_id = row["id"]
        backend = self.backends[row["backend"]]
        set_fields(job_id=job_id, process_id=row["process_id"], user=row["owner"], cluster=row.get("cluster"))
        execute = Execute.model_validate(row["request"])
        assert execute.sweep is not None
        try:
            if specs is None:
                process = await self.db(self.registry.get, row["process_id"])
                tasks = await asyncio.to_thread(sweep_inputs, process.description, execute.inputs, execute.sweep,
                                                self.limits.sweep_max_tasks, self.max_inputs)
                specs = await asyncio.to_thread(self._task_specs, process, job_id, tasks, execute, backend,
                                                row.get("cluster"))
            for spec in specs:
                spec.unix_user, spec.cluster = row.get("unix_user"), row.get("cluster")
            parallel = min(execute.sweep.maxParallel, len(specs)) if execute.sweep.maxParallel else None
            external_id, task_ids = await backend.submit_sweep(job_id, specs, parallel)
        except Exception as exc:  # BackendError, OSError, or a bug: the job fails saying why, the server goes on
            SUBMISSIONS.labels(backend.name, "failed").inc()
            if not isinstance(exc, (BackendError, OSError)):
                log.exception("submission of sweep %s failed", job_id)
            message = f"submission failed: {exc}"
            seen = await self.db(self.store.end_tasks, job_id, StatusCode.failed.value, message)
            counts = {"total": sum(seen.values()), **{s.value: seen.get(s.value, 0) for s in StatusCode}}
            await self.db(self.store.update_tasks, job_id, {}, counts)  # every task failed with it
            await self.apply(job_id, BackendStatus(status=StatusCode.failed, message=message))
            return
        SUBMISSIONS.labels(backend.name, "ok").inc()
        log.info("sweep %s of %d tasks submitted to %s as %s", job_id, len(task_ids), backend.name, external_id)
        if not await self.db(self.store.record_sweep_submitted, job_id, external_id, task_ids,
                             f"submitted to {backend.name} as {external_id} ({len(task_ids)} tasks)"):
            ref = JobRef(job_id=job_id, external_id=external_id, cluster=row.get("cluster"),
                         unix_user=row.get("unix_user"))
            try:  # dismissed while its submission ran: nothing will ever poll or cancel it, so it is done now
                await backend.cancel_sweep(ref, [task_ref(row, i, t) for i, t in enumerate(task_ids)])
            except (BackendError, OSError) as exc:
                log.warning("sweep %s was dismissed during its submission and could not be cancelled: %s", job_id, exc)
            await self._remove(backend, ref)
            return
        self.on_submitted(backend.name)

    # following -------------------------------------------------------------------------------------
    async def task_refs(self, rows: list[dict[str, Any]]) -> list[JobRef]:
        """The tasks to poll of the active sweeps among `rows` (the monitor's); a sweep whose tasks all ended
        without the job ending (the server stopped in between) ends now."""
        sweeps = [r for r in rows if r.get("tasks") is not None and r.get("external_id")]
        if not sweeps:
            return []
        active = await self.db(self.store.active_tasks, [r["id"] for r in sweeps])
        refs: list[JobRef] = []
        for row in sweeps:
            if not active[row["id"]]:
                await self.apply_tasks(row["id"], {})
            refs.extend(task_ref(row, i, ext) for i, ext in active[row["id"]] if ext)
        return refs

    async def apply_task_reports(self, statuses: dict[str, BackendStatus]) -> int:
        """A poll's reports on tasks (keyed by task key), applied per sweep; how many sweeps changed."""
        by_job: dict[str, dict[int, BackendStatus]] = {}
        for key, st in statuses.items():
            if (split := split_task_key(key)) is not None:
                by_job.setdefault(split[0], {})[split[1]] = st
        changed = 0
        for job_id, reports in by_job.items():
            if await self.apply_tasks(job_id, reports):
                changed += 1
        return changed

    async def apply_tasks(self, job_id: str, reports: dict[int, BackendStatus]) -> bool:
        """Record what the backend says of some tasks of a sweep; True when anything changed."""
        current = await self.db(self.store.get_job, job_id)
        if current is None or StatusCode(current["status"]).terminal:
            return False
        tasks = await self.db(self.store.job_tasks, job_id)
        now = time.time()
        changes: dict[int, dict[str, Any]] = {}
        for idx, st in reports.items():
            fresh = 0 <= idx < len(tasks) and not StatusCode(tasks[idx]["status"]).terminal
            if fresh and (change := task_changes(tasks[idx], st, now)):
                changes[idx] = change
        backend = self.backends[current["backend"]]
        reads = asyncio.Semaphore(OUTPUT_READS)

        async def read_outputs(idx: int, change: dict[str, Any]) -> None:
            async with reads:
                try:
                    change["results"] = await backend.outputs(task_ref(current, idx, tasks[idx]["external_id"]))
                except (BackendError, OSError) as exc:
                    change.update(status=StatusCode.failed.value, message=f"results unreadable: {exc}")

        await asyncio.gather(*(read_outputs(i, c) for i, c in changes.items()
                               if c.get("status") == StatusCode.successful.value))
        statuses = [changes.get(i, {}).get("status", t["status"]) for i, t in enumerate(tasks)]
        counts = counts_of(statuses)
        if (changes or counts != current.get("tasks")) and not await self.db(
                self.store.update_tasks, job_id, changes, counts):
            return False
        bad = [i for i, s in enumerate(statuses) if s in (StatusCode.failed.value, StatusCode.dismissed.value)]
        row = await self.apply(job_id, sweep_status(counts, bad), {**current, "tasks": counts})
        return bool(changes) or row is not None

    async def cancel_tasks(self, backend: Backend, row: dict[str, Any]) -> None:
        """Dismiss: the backend cancels the sweep's unfinished tasks (Slurm: one scancel of the array)."""
        active = (await self.db(self.store.active_tasks, [row["id"]]))[row["id"]]
        await backend.cancel_sweep(JobRef(job_id=row["id"], external_id=row.get("external_id"),
                                          cluster=row.get("cluster"), unix_user=row.get("unix_user")),
                                   [task_ref(row, i, ext) for i, ext in active if ext])

    async def end_tasks(self, row: dict[str, Any]) -> dict[str, int]:
        """A dismissed sweep's tasks not final yet become dismissed; its new counts."""
        seen = await self.db(self.store.end_tasks, row["id"], StatusCode.dismissed.value, "dismissed by the user")
        total = sum(seen.values())
        return {"total": total, **{s.value: seen.get(s.value, 0) for s in StatusCode}}
