"""JobService: create, follow, list, dismiss jobs and collect their results.

It knows the store, the registry and the backends, and nothing about HTTP. Store calls run in one worker
thread (SQLite work never blocks the event loop for long).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.errors import (
    BackendUnavailable,
    InvalidParameterValue,
    InvalidRequest,
    JobFailed,
    LimitReached,
    NoSuchJob,
    NoSuchOutput,
    NotAllowed,
    ProcessNotReady,
    ResultNotReady,
)
from hpgc.jobs.limits import LimitSettings
from hpgc.jobs.trust import check_deploy_target
from hpgc.models.ogc import Execute, StatusCode
from hpgc.models.package import param
from hpgc.models.run import BackendStatus, JobRef, RunSpec
from hpgc.net import GuardedClient
from hpgc.packages.inputs import FileRef, InputValue, validate_inputs
from hpgc.packages.registry import Process, ProcessRegistry
from hpgc.packages.translate import build_run_spec
from hpgc.store import JobPage, JobQuery, Store

log = logging.getLogger(__name__)
T = TypeVar("T")
# what a monitor reads of each active job per cycle: enough to address it and to see whether it changed;
# only the jobs that changed are read whole
POLL_COLUMNS = ("id", "external_id", "cluster", "unix_user", "status", "progress", "message")
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


class Callbacks(Protocol):
    """What the service asks of the notifier (hpgc/jobs/notifier.py); None: no callbacks at all."""

    async def check(self, subscriber: dict[str, str]) -> None:
        """Refuse (InvalidRequest) subscriber URLs this server will not post to."""

    async def rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        """Outbox rows for the change from `before` to `after`, stored in the same transaction."""
        return []


@dataclass(frozen=True)
class OutputValue:
    """A result that is a plain value (string, number, object...)."""

    value: Any
    media_type: str | None = None


@dataclass(frozen=True)
class OutputFile:
    """A result that is a file in the job directory (read through the backend)."""

    path: str
    media_type: str
    size: int | None = None
    public_url: str | None = None  # where the site serves the file itself, if it does


Output = OutputValue | OutputFile


def _package_cluster(process: Process) -> str | None:
    """A package may name its cluster with the additional parameter `cluster`."""
    value = param(process.description.additionalParameters, "cluster")
    return str(value) if value else None


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


def job_ref(row: dict[str, Any]) -> JobRef:
    cluster = row.get("cluster")
    if row.get("external_id") and ":" in row["external_id"]:
        cluster = row["external_id"].split(":", 1)[0]
    return JobRef(job_id=row["id"], external_id=row.get("external_id"), cluster=cluster,
                  unix_user=row.get("unix_user"))


class JobService:
    def __init__(
        self, store: Store, registry: ProcessRegistry, backends: dict[str, Backend], default_backend: str,
        max_inputs: int = 10000, limits: LimitSettings | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or LimitSettings(active_jobs_per_user=0, processes_per_user=0)  # None: no limits
        self.registry = registry
        self.backends = backends
        self.default_backend = default_backend
        self.max_inputs = max_inputs
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="hpgc-db")
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # called on every status change
        self.callbacks: Callbacks | None = None
        self.outbound: GuardedClient | None = None  # href inputs are checked with it at submission
        self.on_submitted: Callable[[str], None] = lambda backend: None
        self._submitted: list[tuple[str, dict[str, Any], str, asyncio.Future[bool]]] = []

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._db_thread.shutdown(wait=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # create ----------------------------------------------------------------------------------------
    async def create(
        self, principal: Principal, process: Process, execute: Execute, base_url: str | None = None,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        """A new job of `process` (as `registry.get_for(principal, ...)` gave it: visible to them)."""
        if not principal.can_execute:
            raise NotAllowed("your token does not allow executing processes")
        if process.status != "ready":
            raise ProcessNotReady(f"process '{process.id}' is not ready to run: {process.status}")
        inputs = validate_inputs(process.description, execute.inputs, self.max_inputs)
        if execute.outputs:
            unknown = sorted(set(execute.outputs) - set(process.description.outputs))
            if unknown:
                raise InvalidRequest(f"unknown output '{unknown[0]}'; process '{process.id}' has: "
                                     + ", ".join(sorted(process.description.outputs)))
        backend_name = process.backend or self.default_backend
        if backend_name not in self.backends:
            raise BackendUnavailable(f"backend '{backend_name}' is not configured on this server")
        cluster = self._cluster(backend_name, cluster or _package_cluster(process))
        self._check_hrefs(inputs, self.backends[backend_name], cluster)
        subscriber = execute.subscriber.model_dump(exclude_none=True) if execute.subscriber else None
        if subscriber and self.callbacks is not None:
            await self.callbacks.check(subscriber)
        job_id = str(uuid.uuid4())
        # built now, not in the background: a package that cannot run this request is the client's 400
        spec = build_run_spec(process, job_id, inputs, execute.outputs)
        now = time.time()
        row = {
            "id": job_id, "process_id": process.id, "owner": principal.subject,
            "unix_user": principal.unix_user, "status": StatusCode.accepted.value, "message": "accepted",
            "progress": 0, "backend": backend_name, "external_id": None, "created": now, "started": None,
            "finished": None, "updated": now, "request": execute.model_dump(mode="json", exclude_none=True),
            "results": None, "error": None,
            "subscriber": subscriber, "exit_code": None, "run_spec": None, "base_url": base_url,
            "cluster": cluster,
        }
        limit = self.limits.active_jobs_per_user
        if not await self.db(self.store.insert_job, row, "job accepted", limit):
            raise LimitReached(f"you have {limit} jobs accepted or running, the most this server runs for one user "
                               "at once; wait for one to end or dismiss one", "active_jobs_per_user", limit,
                               self.limits.retry_after_s)
        self._notify(row)
        self._spawn(self._submit(row, spec))
        return row

    def _check_hrefs(self, inputs: dict[str, list[InputValue]], backend: Backend, cluster: str | None) -> None:
        """A 400 naming the input for an href the server will refuse to download (bad URL, a literal private
        address); names are resolved when the download connects. Not when the cluster's job downloads."""
        on_server = getattr(backend, "stages_in_on_server", None)
        if self.outbound is None or (on_server is not None and not on_server(cluster)):
            return
        for input_id, values in inputs.items():
            for value in values:
                if isinstance(value, FileRef):
                    self.outbound.check_url(value.href, f"input '{input_id}'")

    async def _submit(self, row: dict[str, Any], spec: RunSpec | None = None) -> None:
        """Hand the job to its backend; `spec` is rebuilt from the stored request when not given (a job
        that never reached its backend before a restart)."""
        job_id = row["id"]
        backend = self.backends[row["backend"]]
        try:
            if spec is None:
                process = await self.db(self.registry.get, row["process_id"])
                execute = Execute.model_validate(row["request"])
                inputs = validate_inputs(process.description, execute.inputs, self.max_inputs)
                spec = build_run_spec(process, job_id, inputs, execute.outputs)
            spec.unix_user = row.get("unix_user")
            spec.cluster = row.get("cluster")
            external_id = await backend.submit(spec)
        except (BackendError, OSError) as exc:
            await self.apply(job_id, BackendStatus(status=StatusCode.failed, message=f"submission failed: {exc}"))
            return
        except Exception as exc:
            log.exception("submission of job %s failed", job_id)
            await self.apply(job_id, BackendStatus(status=StatusCode.failed,
                                                   message=f"submission failed: {type(exc).__name__}: {exc}"))
            return
        if not await self._record_submitted(job_id, external_id, backend.name):
            # dismissed while its submission ran: nothing will ever poll or cancel it, so it is done now
            ref = JobRef(job_id=job_id, external_id=external_id, cluster=spec.cluster, unix_user=spec.unix_user)
            try:
                await backend.cancel(ref)
            except (BackendError, OSError) as exc:
                log.warning("job %s was dismissed during its submission and could not be cancelled: %s", job_id, exc)
            if hasattr(backend, "remove"):
                await self._remove(backend, ref)
            return
        self.on_submitted(backend.name)

    async def _record_submitted(self, job_id: str, external_id: str, backend_name: str) -> bool:
        """Store a job's backend id; False when the job ended meanwhile (dismissed). Jobs submitted together
        (one SSH command) come back together: they share one transaction, written once the current burst of
        answers has been gathered."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._submitted.append((job_id, {"external_id": external_id},
                                f"submitted to {backend_name} as {external_id}", done))
        if len(self._submitted) == 1:
            self._spawn(self._flush_submitted())
        return await done

    async def _flush_submitted(self) -> None:
        items, self._submitted = self._submitted, []
        try:
            stored = await self.db(self.store.update_jobs, [item[:3] for item in items])
        except Exception as exc:
            for *_, done in items:
                if not done.done():
                    done.set_exception(exc)
        else:
            for (*_, done), ok in zip(items, stored, strict=True):
                if not done.done():
                    done.set_result(ok)

    def _cluster(self, backend_name: str, wanted: str | None) -> str | None:
        """The cluster a job goes to: the one asked for, if the backend has it; None: its default."""
        if wanted is None:
            return None
        known = getattr(self.backends[backend_name], "clusters", None) or {}
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
                self._spawn(self._submit(row))

    # follow ----------------------------------------------------------------------------------------
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
            if st.status == StatusCode.successful:
                changes["progress"] = 100
                try:
                    changes["results"] = await self.backends[current["backend"]].outputs(job_ref(current))
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
        ensure = getattr(backend, "ensure_image", None)
        spec = build_run_spec(process, "deploy-check", {}, None) if ensure else None
        if ensure is None or spec is None or spec.container is None:
            return
        container = spec.container

        async def pull() -> None:
            try:
                await ensure(container)
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

    # read ------------------------------------------------------------------------------------------
    async def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        row = self.store.read_job(job_id)  # a primary-key read on its own WAL reader: no thread hop
        if row is None or not (principal.is_admin or row["owner"] == principal.subject):
            raise NoSuchJob(f"job '{job_id}' does not exist")  # another user's job does not exist for you
        return row

    async def list(self, principal: Principal, query: JobQuery) -> JobPage:
        query.owner = None if principal.is_admin else principal.subject
        return await self.db(self.store.list_jobs, query)

    async def events(self, principal: Principal, job_id: str) -> list[dict[str, Any]]:
        await self.get(principal, job_id)
        return await self.db(self.store.job_events, job_id)

    async def dismiss(self, principal: Principal, job_id: str) -> dict[str, Any]:
        row = await self.get(principal, job_id)
        status = StatusCode(row["status"])
        if status == StatusCode.dismissed:
            return row
        backend = self.backends.get(row["backend"])
        if not status.terminal and backend is not None and row.get("external_id"):
            try:
                await backend.cancel(job_ref(row))
            except (BackendError, OSError) as exc:  # OSError: the connection to the cluster broke
                raise BackendUnavailable(f"the job could not be cancelled: {exc}") from None
        now = time.time()
        changes = {"status": StatusCode.dismissed.value, "message": "dismissed by the user", "finished":
                   row["finished"] or now, "updated": now}
        outbox = await self._outbox(row, changes)
        new = await self.db(lambda: self.store.update_job(job_id, changes, only_if_not_terminal=False,
                                                          outbox=outbox))
        assert new is not None
        self._notify(new)
        if backend is not None and row.get("external_id") and hasattr(backend, "remove"):
            self._spawn(self._remove(backend, job_ref(row)))
        return new

    @staticmethod
    async def _remove(backend: Backend, ref: JobRef) -> None:
        """A dismissed job's files go (OGC: dismiss removes the job's results); its events stay."""
        try:
            await backend.remove(ref)  # type: ignore[attr-defined]
        except (BackendError, OSError) as exc:
            log.warning("the files of dismissed job %s could not be removed: %s", ref.job_id, exc)

    async def logs(self, principal: Principal, job_id: str, tail: int | None) -> dict[str, Any]:
        row = await self.get(principal, job_id)
        backend = self.backends.get(row["backend"])
        logs = {"stdout": "", "stderr": ""}
        if backend is not None and row.get("external_id"):
            try:
                got = await backend.logs(job_ref(row), tail)
                logs = got.model_dump()
            except (BackendError, OSError) as exc:
                logs["stderr"] = f"(logs unavailable: {exc})"
        return {"jobID": job_id, **logs, "events": await self.db(self.store.job_events, job_id)}

    async def script(self, principal: Principal, job_id: str) -> str | None:
        row = await self.get(principal, job_id)
        backend = self.backends.get(row["backend"])
        if backend is None or not row.get("external_id"):
            return None
        return await backend.script(job_ref(row))

    # results ---------------------------------------------------------------------------------------
    async def results(self, principal: Principal, job_id: str) -> tuple[dict[str, Any], dict[str, Output]]:
        row = await self.get(principal, job_id)
        status = StatusCode(row["status"])
        if status == StatusCode.failed:
            raise JobFailed(row.get("message") or "the job failed", row.get("error"))
        if status == StatusCode.dismissed:
            raise NoSuchJob(f"job '{job_id}' was dismissed")
        if status != StatusCode.successful:
            raise ResultNotReady(f"job '{job_id}' is {status.value}; its results are not ready")
        return row, await self.output_items(row)

    async def output_items(self, row: dict[str, Any]) -> dict[str, Output]:
        """A job's results manifest as values and files (with media types from its process)."""
        process = await self._process_or_none(row["process_id"])
        items = _outputs(row.get("results") or {}, process)
        public_url = getattr(self.backends.get(row["backend"]), "public_url", None)
        if public_url is not None:
            ref = job_ref(row)
            items = {oid: replace(item, public_url=public_url(ref, item.path)) if isinstance(item, OutputFile)
                     else item for oid, item in items.items()}
        return items

    async def output(self, principal: Principal, job_id: str, output_id: str) -> tuple[JobRef, Backend, Output]:
        row, outputs = await self.results(principal, job_id)
        if output_id not in outputs:
            raise NoSuchOutput(f"job '{job_id}' has no output '{output_id}'")
        return job_ref(row), self.backends[row["backend"]], outputs[output_id]

    async def _process_or_none(self, process_id: str) -> Process | None:
        try:
            return await self.db(self.registry.get, process_id)
        except Exception:
            return None


def _outputs(manifest: dict[str, Any], process: Process | None) -> dict[str, Output]:
    result: dict[str, Output] = {}
    for oid, value in manifest.items():
        if value is None:
            continue  # an optional output the job did not produce (CWL `null`): results documents have no null
        if isinstance(value, dict) and value.get("class") == "File":
            path = value.get("path") or str(value.get("location", "")).removeprefix("file://")
            result[oid] = OutputFile(path=path, media_type=_media_type(oid, path, process), size=value.get("size"))
        else:
            result[oid] = OutputValue(value)
    return result


def _media_type(output_id: str, path: str, process: Process | None) -> str:
    """The file's own extension first (hpgc named command outputs after the requested format), then what
    the description declares."""
    guessed = mimetypes.guess_type(path)[0]
    if guessed:
        return guessed
    if process is not None and output_id in process.description.outputs:
        schema = process.description.outputs[output_id].schema_
        for s in [schema, *(schema.get("oneOf") or [])]:
            if s.get("contentMediaType"):
                return str(s["contentMediaType"])
    return "application/octet-stream"
