"""Data in object storage: s3:// inputs are checked at submission (a bucket no endpoint serves is the client's
400, not a failed job), and a request's `"hpgc:outputs": {"destination": "s3://bucket/prefix/"}` has the server
copy each file output there once the job succeeded — streamed from the job directory through the backend (a few
parts in memory), each object's SHA-256 recorded — before the job is `successful`. The results document then
links to the delivered objects. A delivery that fails fails the job, saying which object and why; the files stay
in the job directory. While it runs the job stays `running` ("delivering outputs to ...")."""

from __future__ import annotations

import mimetypes
import posixpath
import re
from typing import Any

from hpgc.backends.base import BackendError
from hpgc.errors import InvalidParameterValue
from hpgc.jobs.lifecycle import job_ref
from hpgc.jobs.parts import ServiceParts, log
from hpgc.models.ogc import Execute, StatusCode
from hpgc.models.run import BackendStatus
from hpgc.packages.inputs import FileRef, InputValue
from hpgc.storage import StorageError

_EXT = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
DELIVERED = "hpgc:delivered"


def check_data(parts: ServiceParts, inputs: dict[str, list[InputValue]], execute: Execute) -> None:
    """A 400 naming the input (or the destination) for an s3:// URL this server cannot serve."""
    for input_id, values in inputs.items():
        for value in values:
            if isinstance(value, FileRef) and value.href.startswith("s3://"):
                _check(parts, value.href, f"input '{input_id}'")
    if execute.delivery is not None:
        dest = execute.delivery.destination
        if not dest.startswith("s3://"):
            raise InvalidParameterValue("hpgc:outputs.destination: must be an s3://bucket/prefix/ URL")
        if not dest.endswith("/"):
            raise InvalidParameterValue("hpgc:outputs.destination: must end with '/' (a prefix; outputs go under it)")
        _check(parts, dest, "hpgc:outputs.destination", prefix=True)


def _check(parts: ServiceParts, url: str, what: str, prefix: bool = False) -> None:
    if parts.storage is None:
        raise InvalidParameterValue(f"{what}: s3:// URLs are not configured on this server (storage.s3)")
    try:
        parts.storage.check(url, prefix)
    except StorageError as exc:
        raise InvalidParameterValue(f"{what}: {exc}") from None


def object_name(output_id: str, path: str) -> str:
    """OUTPUT_ID plus the extension of the file the job wrote (if it is a plain one): no other part of the job's
    own file name reaches the destination."""
    ext = posixpath.splitext(path)[1]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", output_id)[:128] + (ext if _EXT.match(ext) else "")


class Delivery(ServiceParts):
    async def deliver_first(self, job_id: str, current: dict[str, Any], st: BackendStatus) -> bool:
        if job_id in self._delivering:
            return True
        if job_id in self._delivered:
            return False
        row = current if "request" in current else await self.db(self.store.get_job, job_id)
        request = (row or {}).get("request") or {}
        dest = (request.get("delivery") or request.get("hpgc:outputs") or {}).get("destination")
        if not dest or row is None:
            return False
        self._delivering.add(job_id)
        self._spawn(self._deliver(row, dest, st))
        return True

    def with_delivered(self, job_id: str, results: dict[str, Any]) -> dict[str, Any]:
        delivered = self._delivered.pop(job_id, None)
        if not delivered:
            return results
        return {oid: {**value, DELIVERED: delivered[oid]} if oid in delivered and isinstance(value, dict) else value
                for oid, value in results.items()}

    async def _deliver(self, row: dict[str, Any], dest: str, st: BackendStatus) -> None:
        job_id = row["id"]
        apply = self.apply  # type: ignore[attr-defined]  # Lifecycle's
        try:
            await apply(job_id, BackendStatus(status=StatusCode.running, message=f"delivering outputs to {dest}"))
            backend = self.backends[row["backend"]]
            ref = job_ref(row)
            delivered: dict[str, Any] = {}
            assert self.storage is not None  # check_data refused the request otherwise
            for oid, value in (await backend.outputs(ref)).items():
                if not (isinstance(value, dict) and value.get("class") == "File"):
                    continue
                path = value.get("path") or str(value.get("location", "")).removeprefix("file://")
                url = dest + object_name(oid, path)
                media = mimetypes.guess_type(path)[0]
                size, sha256 = await self.storage.write(url, backend.read_file(ref, path), row.get("unix_user"), media)
                delivered[oid] = {"href": url, "size": size, "sha256": sha256}
                log.info("job %s: output %s delivered to %s (%d bytes)", job_id, oid, url, size)
        except (BackendError, StorageError, OSError) as exc:
            self._delivering.discard(job_id)
            await apply(job_id, BackendStatus(status=StatusCode.failed, exit_code=st.exit_code, details=st.details,
                                              message=f"the job ran, but its outputs could not be delivered to {dest}: "
                                              f"{exc}; they stay in the job's directory"))
            return
        self._delivered[job_id] = delivered
        self._delivering.discard(job_id)
        await apply(job_id, st.model_copy(update={"message": f"outputs delivered to {dest}"}))
