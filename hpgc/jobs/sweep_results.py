"""A sweep's tasks as its owner reads them: the task list, each task's results, files and logs, and the
sweep's results document (each output an array in task order). The results of the tasks that succeeded are
served even when others failed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hpgc.auth.principal import Principal
from hpgc.backends.base import BackendError
from hpgc.errors import JobFailed, NoSuchJob, NoSuchOutput, ResultNotReady
from hpgc.jobs.results import Output, OutputFile, OutputValue, ResultFile, Results, _outputs
from hpgc.jobs.sweeps import task_ref
from hpgc.models.ogc import Execute, StatusCode, TransmissionMode

ENCLOSURE = "http://www.opengis.net/def/rel/iana/1.0/enclosure"


class SweepResults(Results):
    async def sweep_job(self, principal: Principal, job_id: str) -> dict[str, Any]:
        row = await self.get(principal, job_id)  # type: ignore[attr-defined]
        if row.get("tasks") is None:
            raise NoSuchJob(f"job '{job_id}' is not a sweep: it has no tasks")
        return row  # type: ignore[no-any-return]

    async def tasks(self, principal: Principal, job_id: str, offset: int, limit: int
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        row = await self.sweep_job(principal, job_id)
        return row, await self.db(self.store.job_tasks, job_id, offset, limit)

    async def task(self, principal: Principal, job_id: str, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        row = await self.sweep_job(principal, job_id)
        task = await self.db(self.store.job_task, job_id, index)
        if task is None:
            raise NoSuchJob(f"sweep '{job_id}' has no task {index} (it has {row['tasks']['total']})")
        return row, task

    async def task_items(self, row: dict[str, Any], task: dict[str, Any]) -> dict[str, Output]:
        process = await self._process_or_none(row["process_id"])
        items = _outputs(task.get("results") or {}, process)
        backend = self.backends.get(row["backend"])
        if backend is None:
            return items
        ref = task_ref(row, task["idx"], task.get("external_id"))
        return {oid: replace(item, public_url=backend.public_url(ref, item.path)) if isinstance(item, OutputFile)
                else item for oid, item in items.items()}

    async def task_results(self, principal: Principal, job_id: str, index: int
                           ) -> tuple[dict[str, Any], dict[str, Output]]:
        row, task = await self.task(principal, job_id, index)
        if row["status"] == StatusCode.dismissed.value:
            raise NoSuchJob(f"job '{job_id}' was dismissed")
        status = StatusCode(task["status"])
        if status in (StatusCode.failed, StatusCode.dismissed):
            raise JobFailed(task.get("message") or f"task {index} {status.value}",
                            {"type": "job-failed", "title": f"Task {index} failed", "detail": task.get("message")})
        if status != StatusCode.successful:
            raise ResultNotReady(f"task {index} of job '{job_id}' is {status.value}; its results are not ready")
        return row, await self.task_items(row, task)

    async def task_output(self, principal: Principal, job_id: str, index: int, output_id: str
                          ) -> OutputValue | ResultFile:
        row, items = await self.task_results(principal, job_id, index)
        if output_id not in items:
            raise NoSuchOutput(f"task {index} of job '{job_id}' has no output '{output_id}'")
        item = items[output_id]
        if isinstance(item, OutputValue):
            return item
        task = await self.db(self.store.job_task, job_id, index)
        return ResultFile(task_ref(row, index, (task or {}).get("external_id")), self.backends[row["backend"]], item)

    async def task_logs(self, principal: Principal, job_id: str, index: int, tail: int | None) -> dict[str, Any]:
        row, task = await self.task(principal, job_id, index)
        logs = {"stdout": "", "stderr": ""}
        backend = self.backends.get(row["backend"])
        if backend is not None and task.get("external_id"):
            try:
                logs = (await backend.logs(task_ref(row, index, task["external_id"]), tail)).model_dump()
            except (BackendError, OSError) as exc:
                logs["stderr"] = f"(logs unavailable: {exc})"
        return {"jobID": job_id, "index": index, **logs}

    async def sweep_results_document(self, row: dict[str, Any], base: str) -> dict[str, Any]:
        """The results document of a successful sweep: each output an array in task order; a file is a link to
        the task's own result, a value is the value (a link when asked for by reference)."""
        req = Execute.model_validate(row.get("request") or {})
        tasks = await self.db(self.store.job_tasks, row["id"])
        per_task = [await self.task_items(row, t) for t in tasks]
        wanted = req.outputs or {}
        names = list(wanted) or list(dict.fromkeys(oid for items in per_task for oid in items))
        doc: dict[str, Any] = {}
        for oid in names:
            by_ref = oid in wanted and wanted[oid].transmissionMode == TransmissionMode.reference
            values: list[Any] = []
            for i, items in enumerate(per_task):
                item, url = items.get(oid), f"{base}/jobs/{row['id']}/tasks/{i}/results/{oid}"
                if item is None:
                    values.append(None)  # an optional output this task did not produce
                elif isinstance(item, OutputValue):
                    values.append({"href": url, "type": "application/json"} if by_ref else item.value)
                else:
                    values.append({"href": item.public_url or url, "type": item.media_type, "rel": ENCLOSURE})
            doc[oid] = values
        return doc
