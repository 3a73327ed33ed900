"""`hpgc.client.AsyncClient`: OGC API - Processes calls of an hpgc server, typed with hpgc's own models.

    async with AsyncClient("http://127.0.0.1:8000") as hpgc:
        job = await hpgc.execute("sleep", {"seconds": 3})
        await job.wait(progress=print)
        print(await job.results())

The sync face (`hpgc.client.Client`, hpgc/client/sync.py) runs these same coroutines.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from hpgc.client.errors import JobFailed, UsageError
from hpgc.client.http import Credentials, Response, Transport
from hpgc.client.polling import Backoff
from hpgc.models.ogc import ProcessDescription, ProcessSummary, StatusCode, StatusInfo
from hpgc.models.package import OGCAPPPKG

Progress = Callable[[StatusInfo], Any]
CWL_YAML = "application/cwl+yaml"
SINCE = re.compile(r"(\d+)\s*([smhdw])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_interval(text: str, now: datetime | None = None) -> str:
    """`--since 1d` (or 30m, 2h, 1w, or an ISO instant) → the OGC `datetime` interval `start/..`."""
    match = SINCE.fullmatch(text.strip())
    if match:
        start = (now or datetime.now(UTC)) - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            start = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(f"--since {text!r}: give a duration (30m, 2h, 1d, 1w) or an ISO date") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "/.."


def package_request(source: str | Path | dict[str, Any], process_id: str | None) -> tuple[bytes, str, str | None]:
    """A deploy body: (bytes, media type, ?w=). CWL files go as YAML, application packages as OGC JSON;
    a CWL `$graph` with one Workflow is deployed as that workflow unless an id is given."""
    if isinstance(source, dict):
        kind = CWL_YAML if "cwlVersion" in source else OGCAPPPKG
        return json.dumps(source).encode(), kind, process_id
    path = Path(source)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(body)
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} is neither a CWL document nor an OGC application package (JSON)")
    if "cwlVersion" not in doc:
        return body, OGCAPPPKG, process_id
    if process_id is None and isinstance(doc.get("$graph"), list):
        flows = [p.get("id") for p in doc["$graph"] if isinstance(p, dict) and p.get("class") == "Workflow"]
        if len(flows) == 1 and isinstance(flows[0], str):
            process_id = flows[0].lstrip("#")
    return body, CWL_YAML, process_id


class AsyncJob:
    """One job on the server; `status` is the last statusInfo seen."""

    def __init__(self, client: AsyncClient, status: StatusInfo) -> None:
        self.client = client
        self.status = status

    @property
    def id(self) -> str:
        return self.status.jobID

    def __repr__(self) -> str:
        return f"<job {self.id} {self.status.status.value}>"

    async def refresh(self) -> StatusInfo:
        self.status = await self.client.status(self.id)
        return self.status

    async def wait(self, progress: Progress | None = None, check: bool = True) -> StatusInfo:
        """Poll until the job ends, calling `progress(status)` on each change; `check`: a failed or dismissed
        job raises JobFailed."""
        self.status = await self.client.wait(self.id, progress=progress, check=check)
        return self.status

    async def results(self) -> dict[str, Any]:
        return await self.client.results(self.id)

    async def download(self, folder: str | Path) -> dict[str, Path]:
        return await self.client.download(self.id, folder)

    async def logs(self, tail: int | None = None) -> dict[str, Any]:
        return await self.client.logs(self.id, tail)

    async def dismiss(self) -> StatusInfo:
        self.status = await self.client.dismiss(self.id)
        return self.status


class AsyncClient:
    """A client of one hpgc server. `url` defaults to HPGC_URL; the token to `token`, else HPGC_TOKEN, else
    the one `hpgc login` cached for this server (refreshed when it has a refresh token)."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 credentials: Credentials | None = None, timeout: float = 300.0) -> None:
        url = url or os.environ.get("HPGC_URL")
        if not url:
            raise UsageError("no server: give its URL (or set HPGC_URL)")
        if credentials is None:
            from hpgc.client.login import credentials_for

            credentials = credentials_for(url, token)
        self.http = Transport(url, credentials, timeout)
        self.url = self.http.base

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    async def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return (await self.http.request("GET", path, params=clean or None)).json()

    # processes ------------------------------------------------------------------------------------------
    async def processes(self) -> list[ProcessSummary]:
        doc = await self._get("/processes", limit=10000)
        return [ProcessSummary.model_validate(p) for p in doc.get("processes", [])]

    async def describe(self, process_id: str) -> ProcessDescription:
        return ProcessDescription.model_validate(await self._get(f"/processes/{_seg(process_id)}"))

    async def deploy(self, source: str | Path | dict[str, Any], *, replace: bool = False,
                     process_id: str | None = None) -> str:
        """Deploy (or replace) a CWL file or an OGC application package; returns the process id."""
        body, media, pid = package_request(source, process_id)
        headers = {"Content-Type": media}
        if replace:
            pid = pid or _package_id(body, media)
            if not pid:
                raise UsageError("replace: the document names no process id; give one")
            await self.http.request("PUT", f"/processes/{_seg(pid)}", params={"w": pid} if media == CWL_YAML else None,
                                    data=body, headers=headers)
            return pid
        resp = await self.http.request("POST", "/processes", params={"w": pid} if pid else None, data=body,
                                       headers=headers)
        return str(resp.json()["id"])

    async def undeploy(self, process_id: str) -> None:
        await self.http.request("DELETE", f"/processes/{_seg(process_id)}")

    # execution ------------------------------------------------------------------------------------------
    async def execute(self, process_id: str, inputs: dict[str, Any] | None = None, *,
                      outputs: dict[str, Any] | None = None, subscriber: dict[str, str] | None = None,
                      wait: bool = False, progress: Progress | None = None) -> AsyncJob:
        """Start a job (always asynchronously, so a long job never holds a connection); with `wait`, return
        once it ended (JobFailed if it failed)."""
        body: dict[str, Any] = {"inputs": inputs or {}, "response": "document"}
        if outputs is not None:
            body["outputs"] = outputs
        if subscriber is not None:
            body["subscriber"] = subscriber
        resp = await self.http.request("POST", f"/processes/{_seg(process_id)}/execution", json_body=body,
                                       headers={"Prefer": "respond-async"})
        job = AsyncJob(self, _status_of(resp))
        if wait:
            await job.wait(progress)
        return job

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self.status(job_id))

    async def request_of(self, job_id: str) -> dict[str, Any]:
        """The execute request a job was started with (inputs, outputs, response)."""
        return dict(await self._get(f"/jobs/{_seg(job_id)}/inputs"))

    async def rerun(self, job_id: str, changes: dict[str, Any] | None = None, **kw: Any) -> AsyncJob:
        """Start the process of a job again with its inputs, `changes` replacing some of them."""
        old = await self.request_of(job_id)
        process_id = (await self.status(job_id)).processID or ""
        inputs = {**old.get("inputs", {}), **(changes or {})}
        return await self.execute(process_id, inputs, outputs=old.get("outputs"), **kw)

    # jobs -----------------------------------------------------------------------------------------------
    async def jobs(self, status: str | list[str] | None = None, process: str | list[str] | None = None,
                   since: str | None = None, limit: int = 100) -> list[StatusInfo]:
        statuses = ",".join([status] if isinstance(status, str) else status or []) or None
        processes = ",".join([process] if isinstance(process, str) else process or []) or None
        doc = await self._get("/jobs", status=statuses, processID=processes,
                              datetime=since_interval(since) if since else None, limit=limit)
        return [StatusInfo.model_validate(j) for j in doc.get("jobs", [])]

    async def status(self, job_id: str) -> StatusInfo:
        return _status_of(await self.http.request("GET", f"/jobs/{_seg(job_id)}"))

    async def results(self, job_id: str) -> dict[str, Any]:
        return dict(await self._get(f"/jobs/{_seg(job_id)}/results"))

    async def logs(self, job_id: str, tail: int | None = None, full: bool = False) -> dict[str, Any]:
        return dict(await self._get(f"/jobs/{_seg(job_id)}/logs", tail=tail, full="true" if full else None))

    async def dismiss(self, job_id: str) -> StatusInfo:
        return _status_of(await self.http.request("DELETE", f"/jobs/{_seg(job_id)}"))

    async def wait(self, job_id: str, progress: Progress | None = None, check: bool = True,
                   backoff: Backoff | None = None) -> StatusInfo:
        backoff = backoff or Backoff()
        last: tuple[Any, ...] | None = None
        while True:
            resp = await self.http.request("GET", f"/jobs/{_seg(job_id)}")
            status = _status_of(resp)
            seen = (status.status, status.progress, status.message)
            if progress is not None and seen != last:
                await _call(progress, status)
            backoff.observe(seen != last, resp.headers.get("Retry-After"))
            last = seen
            if status.status.terminal:
                break
            await asyncio.sleep(backoff.delay)
        if check and status.status != StatusCode.successful:
            raise JobFailed(job_id, status.status.value, status.message)
        return status

    async def download(self, job_id: str, folder: str | Path) -> dict[str, Path]:
        """Every file of a job's results into `folder` (output id + extension; several files of one output
        get -1, -2, …) and the results document itself as results.json. Returns {name: path}."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        doc = await self.results(job_id)
        files: dict[str, Path] = {}
        for oid, value in doc.items():
            links = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict) and "href" in v]
            for n, link in enumerate(links, 1):
                stem = _safe(oid) if len(links) == 1 else f"{_safe(oid)}-{n}"
                files[stem] = await self.http.download(link["href"], target, stem)
        (target / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
        files["results.json"] = target / "results.json"
        return files


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _safe(name: str) -> str:
    """An output id as a file name: nothing that climbs out of the folder or hides the file."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return cleaned or "output"


def _status_of(resp: Response) -> StatusInfo:
    return StatusInfo.model_validate(resp.json())


def _package_id(body: bytes, media: str) -> str | None:
    doc = yaml.safe_load(body)
    if media == OGCAPPPKG:
        desc = doc.get("processDescription", doc) if isinstance(doc, dict) else {}
        desc = desc.get("process", desc) if isinstance(desc, dict) else {}
        return desc.get("id") if isinstance(desc, dict) else None
    value = doc.get("id") if isinstance(doc, dict) else None
    return value.lstrip("#") if isinstance(value, str) else None


async def _call(callback: Progress, status: StatusInfo) -> None:
    result = callback(status)
    if isinstance(result, Awaitable):
        await result
