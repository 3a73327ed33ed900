"""Results: a job's outputs manifest as values and files, the files' media types and public URLs, and the
job's logs and script, read through its backend."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.errors import JobFailed, NoSuchJob, NoSuchOutput, ResultNotReady
from hpgc.jobs.lifecycle import job_ref
from hpgc.jobs.parts import ServiceParts, log
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef
from hpgc.packages.registry import Process


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
    delivered: dict[str, Any] | None = None  # where hpgc copied it (hpgc:outputs): href, size, sha256



Output = OutputValue | OutputFile


@dataclass(frozen=True)
class ResultFile:
    """One file result of a job, readable without knowing which backend holds it."""

    ref: JobRef
    backend: Backend
    item: OutputFile

    async def size(self) -> int:
        return await self.backend.file_size(self.ref, self.item.path)

    def read(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self.backend.read_file(self.ref, self.item.path, offset, length)


class Results(ServiceParts):
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

    async def steps(self, principal: Principal, job_id: str) -> list[dict[str, Any]] | None:
        """The batch jobs the job's steps run as (a Toil workflow's); None: they run inside the job itself."""
        row = await self.get(principal, job_id)
        backend = self.backends.get(row["backend"])
        if backend is None or not row.get("external_id"):
            return None
        try:
            return await backend.steps(job_ref(row))
        except BackendError as exc:
            log.warning("steps of job %s: %s", job_id, exc)
            return None

    async def script(self, principal: Principal, job_id: str) -> str | None:
        row = await self.get(principal, job_id)
        backend = self.backends.get(row["backend"])
        if backend is None or not row.get("external_id"):
            return None
        return await backend.script(job_ref(row))

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
        backend = self.backends.get(row["backend"])
        if backend is not None:
            ref = job_ref(row)
            items = {oid: replace(item, public_url=backend.public_url(ref, item.path)) if isinstance(item, OutputFile)
                     else item for oid, item in items.items()}
        return items

    async def output(self, principal: Principal, job_id: str, output_id: str) -> OutputValue | ResultFile:
        row, outputs = await self.results(principal, job_id)
        if output_id not in outputs:
            raise NoSuchOutput(f"job '{job_id}' has no output '{output_id}'")
        item = outputs[output_id]
        if isinstance(item, OutputValue):
            return item
        return ResultFile(job_ref(row), self.backends[row["backend"]], item)

    async def _process_or_none(self, process_id: str) -> Process | None:
        try:
            return await self.db(self.registry.get, process_id)
        except Exception:
            return None

    async def callbacks_of(self, principal: Principal, job_id: str) -> list[dict[str, Any]]:
        """A job's notifications with their delivery attempts (its owner's or an admin's only)."""
        await self.get(principal, job_id)  # type: ignore[attr-defined]  # another user's job does not exist for you
        return await self.db(self.store.job_outbox, job_id)


def _outputs(manifest: dict[str, Any], process: Process | None) -> dict[str, Output]:
    result: dict[str, Output] = {}
    for oid, value in manifest.items():
        if value is None:
            continue  # an optional output the job did not produce (CWL `null`): results documents have no null
        if isinstance(value, dict) and value.get("class") == "File":
            path = value.get("path") or str(value.get("location", "")).removeprefix("file://")
            result[oid] = OutputFile(path=path, media_type=_media_type(oid, path, process), size=value.get("size"),
                                     delivered=value.get("hpgc:delivered"))
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
