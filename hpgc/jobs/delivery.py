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

from hpgc.backends.base import Backend, BackendError, PathNotAllowed
from hpgc.errors import BackendUnavailable, InvalidParameterValue, NotAllowed
from hpgc.jobs.lifecycle import job_ref
from hpgc.jobs.parts import ServiceParts, log
from hpgc.jobs.paths import file_path
from hpgc.models.ogc import Execute, StatusCode
from hpgc.models.run import BackendStatus
from hpgc.packages.inputs import FileRef, InputValue
from hpgc.storage import StorageError

_EXT = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
DELIVERED = "hpgc:delivered"


async def check_data(parts: ServiceParts, inputs: dict[str, list[InputValue]], execute: Execute, backend: Backend,
                     cluster: str | None, unix_user: str | None) -> None:
    """A 400 naming the input (or the destination) for an s3:// URL this server cannot serve; a 403 for a folder
    destination the job's user may not write to (checked as them)."""
    for input_id, values in inputs.items():
        for value in values:
            if isinstance(value, FileRef) and value.href.startswith("s3://"):
                _check(parts, value.href, f"input '{input_id}'")
    if execute.delivery is None:
        return
    dest, what = execute.delivery.destination, "hpgc:outputs.destination"
    if not dest.endswith("/"):
        raise InvalidParameterValue(f"{what}: must end with '/' (a prefix or folder; outputs go under it)")
    if dest.startswith("s3://"):
        _check(parts, dest, what, prefix=True)
    elif dest.startswith("file:"):
        folder = file_path(dest[:-1], what)
        try:
            await backend.check_folder(folder, cluster, unix_user)
        except PathNotAllowed as exc:
            raise NotAllowed(f"{what}: {exc}") from None
        except (BackendError, OSError) as exc:
            raise BackendUnavailable(f"{what}: the folder could not be checked: {exc}") from None
    else:
        raise InvalidParameterValue(f"{what}: must be an s3://bucket/prefix/ or file:///folder/ URL")


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
            for oid, value in (await backend.outputs(ref)).items():
                if not (isinstance(value, dict) and value.get("class") == "File"):
                    continue
                path = value.get("path") or str(value.get("location", "")).removeprefix("file://")
                url = dest + object_name(oid, path)
                if dest.startswith("file:"):  # copied on the cluster as the job's user
                    size, sha256 = await backend.copy_out(ref, path, file_path(dest[:-1], "destination"),
                                                          object_name(oid, path))
                else:
                    assert self.storage is not None  # check_data refused the request otherwise
                    size, sha256 = await self.storage.write(url, backend.read_file(ref, path), row.get("unix_user"),
                                                            mimetypes.guess_type(path)[0])
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
