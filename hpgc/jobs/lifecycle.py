"""The job state machine: what a backend's report changes in a job, stored with its event and its
callbacks in one transaction; waiting for a job to end; reading and dismissing jobs.

`accepted` → `running` → `successful` | `failed`; `dismissed` from any state. A job that reached
`successful` or `failed` changes no more, except to `dismissed` (the user's choice, which removes its files).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.errors import BackendUnavailable, NoSuchJob
from hpgc.jobs.metrics import STATUS_CHANGES
from hpgc.jobs.parts import ServiceParts, log
from hpgc.logs import set_fields
from hpgc.models.joblist import JobPage, JobQuery
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, JobRef

# what a monitor reads of each active job per cycle: enough to address it and to see whether it changed;
# only the jobs that changed are read whole
POLL_COLUMNS = ("id", "external_id", "cluster", "unix_user", "status", "progress", "message", "tasks")
RUNNING_PROGRESS = 5  # a running job that reports nothing: started, but no more is known




def coarse_progress(status: StatusCode, reported: int | None, current: int | None) -> int | None:
    """Progress to store: what the job reported, else what its state says (None: leave it as it is)."""
    if reported is not None:
        return max(0, min(100, reported))
    if status == StatusCode.successful:
        return 100
    if status == StatusCode.running and not current:
        return RUNNING_PROGRESS
    return None


def changes_of(current: dict[str, Any], st: BackendStatus) -> dict[str, Any]:
    """What a backend's report changes in a job's status, progress and message."""
    changes: dict[str, Any] = {}
    if st.status.value != current["status"]:
        changes["status"] = st.status.value
    progress = coarse_progress(st.status, st.progress, current["progress"])
    if progress is not None and progress != current["progress"]:
        changes["progress"] = progress
    if st.message and st.message != current["message"]:
        changes["message"] = st.message
    return changes


USAGE = ("Elapsed", "TotalCPU", "MaxRSS")  # what a finished job used, as the backend reports it (Slurm: sacct)


def usage_of(details: dict[str, Any]) -> dict[str, Any] | None:
    """A final report's accounting, kept with the job so its status document can show it."""
    usage = {k: details[k] for k in USAGE if isinstance(details.get(k), (str, int, float))}
    return usage or None


def job_ref(row: dict[str, Any]) -> JobRef:
    return JobRef(job_id=row["id"], external_id=row.get("external_id"), cluster=row.get("cluster"),
                  unix_user=row.get("unix_user"))



class Lifecycle(ServiceParts):
    async def apply(
        self, job_id: str, st: BackendStatus, current: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Record what a backend says of a job; no-op when nothing changed or the job is already final.

        `current` is the job's row as the caller just read it (the store still refuses to change a job
        that became final meanwhile).
        """
        if current is None:
            current = await self.db(self.store.get_job, job_id)
        if current is None or StatusCode(current["status"]).terminal:
            return None
        if st.status == StatusCode.successful and await self.deliver_first(job_id, current, st):
            return None  # applied once its outputs are where the request said
        changes = changes_of(current, st)
        if not changes:
            return None
        now = changes["updated"] = time.time()
        if st.status == StatusCode.running and current["started"] is None:
            changes["started"] = now
        if st.status.terminal:
            changes["finished"] = now
            changes["exit_code"] = st.exit_code
            if current["started"] is None:
                changes["started"] = now
            if (usage := usage_of(st.details)) is not None:
                changes["usage"] = usage
            if st.status == StatusCode.successful:
                changes["progress"] = 100
            if st.status == StatusCode.successful and current.get("tasks") is None:  # a sweep's are its tasks'
                try:
                    changes["results"] = self.with_delivered(
                        job_id, await self.backends[current["backend"]].outputs(job_ref(current)))
                except (BackendError, OSError) as exc:
                    changes.update(status=StatusCode.failed.value, message=f"results unreadable: {exc}")
            if changes.get("status") == StatusCode.failed.value:
                changes["error"] = {"type": "job-failed", "title": "Job failed",
                                    "detail": changes.get("message") or st.message or "failed"}
        outbox = await self._outbox(current, changes)
        row = await self.db(
            lambda: self.store.update_job(job_id, changes, details=st.details or None, outbox=outbox)
        )
        if row is not None:
            if "status" in changes:
                STATUS_CHANGES.labels(row["backend"], row["status"]).inc()
            self._notify(row)
        return row

    async def _outbox(self, before: dict[str, Any], changes: dict[str, Any]) -> list[dict[str, Any]]:
        if self.callbacks is None or not before.get("subscriber"):
            return []
        return await self.callbacks.rows(before, {**before, **changes})

    def _notify(self, row: dict[str, Any]) -> None:
        if StatusCode(row["status"]).terminal:
            event = self._done.pop(row["id"], None)
            if event is not None:
                event.set()
        for listener in self.listeners:
            listener(row)

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """The job once it is final, or as it is after `timeout` seconds."""
        event = self._done.setdefault(job_id, asyncio.Event())
        row = await self.db(self.store.get_job, job_id)
        if row is not None and not StatusCode(row["status"]).terminal:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
            row = await self.db(self.store.get_job, job_id)
        if row is None:
            raise NoSuchJob(f"job '{job_id}' does not exist")
        return row

    # read ------------------------------------------------------------------------------------------
    async def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        row = self.store.read_job(job_id)  # a primary-key read on its own WAL reader: no thread hop
        if row is None or not (principal.is_admin or row["owner"] == principal.subject):
            raise NoSuchJob(f"job '{job_id}' does not exist")  # another user's job does not exist for you
        return row

    async def list(self, principal: Principal, query: JobQuery) -> JobPage:
        query.owner = None if principal.is_admin else principal.subject
        page = self.store.read_jobs_page(query)  # a short indexed page on the loop's reader: no thread hop
        return page if page is not None else await self.db(self.store.list_jobs, query)

    async def dismiss(self, principal: Principal, job_id: str) -> dict[str, Any]:
        row = await self.get(principal, job_id)
        set_fields(job_id=job_id, process_id=row["process_id"], cluster=row.get("cluster"))  # until the request ends
        status = StatusCode(row["status"])
        if status == StatusCode.dismissed:
            return row
        backend = self.backends.get(row["backend"])
        if not status.terminal and backend is not None and row.get("external_id"):
            try:
                if row.get("tasks") is not None:  # a sweep: all its tasks (Slurm: the array) at once
                    await self.cancel_tasks(backend, row)  # type: ignore[attr-defined]
                else:
                    await backend.cancel(job_ref(row))
            except (BackendError, OSError) as exc:  # OSError: the connection to the cluster broke
                raise BackendUnavailable(f"the job could not be cancelled: {exc}") from None
        now = time.time()
        changes = {"status": StatusCode.dismissed.value, "message": "dismissed by the user", "finished":
                   row["finished"] or now, "updated": now}
        if row.get("tasks") is not None:
            changes["tasks"] = await self.end_tasks(row)  # type: ignore[attr-defined]
        outbox = await self._outbox(row, changes)
        new = await self.db(lambda: self.store.update_job(job_id, changes, only_if_not_terminal=False,
                                                          outbox=outbox))
        assert new is not None
        self._notify(new)
        if backend is not None and row.get("external_id"):
            self._spawn(self._remove(backend, job_ref(row)))
        return new

    @staticmethod
    async def _remove(backend: Backend, ref: JobRef) -> None:
        """A dismissed job's files go (OGC: dismiss removes the job's results); its events stay."""
        try:
            await backend.remove(ref)
        except (BackendError, OSError) as exc:
            log.warning("the files of dismissed job %s could not be removed: %s", ref.job_id, exc)

