"""Uploaded files (POST /files): stored by a backend where its jobs read them, owned by one user, counted against
their quota, kept until `uploads.expire_s` after their upload or last use (never while a job that was given one
is accepted or running), and usable as any file input by their `href`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from hpgc.auth.principal import Principal
from hpgc.backends.base import Backend, BackendError
from hpgc.errors import BackendUnavailable, HpgcError, InvalidParameterValue, NotAllowed
from hpgc.jobs.parts import ServiceParts, log
from hpgc.models.run import UploadRef
from hpgc.packages.inputs import FileRef, FileSource, InputValue

UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{24}$")
UPLOAD_HREF = re.compile(r"/files/([A-Za-z0-9_-]{24})$")
STALE_S = 86400.0  # an upload still 'uploading' after a day was cut by a restart: its bytes are removed


class NoSuchFile(HpgcError):
    status, type, title = 404, "about:blank", "No such file"


class FileTooLarge(HpgcError):
    status, type, title = 413, "about:blank", "Request body too large"

    def __init__(self, detail: str, setting: str, value: int) -> None:
        super().__init__(detail)
        self.extra = {"setting": f"uploads.{setting}", "value": value}


class FileInUse(HpgcError):
    status, type, title = 409, "about:blank", "File in use"


def upload_ref(row: dict[str, Any]) -> UploadRef:
    return UploadRef(file_id=row["id"], cluster=row.get("cluster"), unix_user=row.get("unix_user"))


def upload_id_of(href: str) -> str | None:
    """The upload an input's `href` names (`…/files/ID`, as POST /files answered it), whatever host it names: ids
    are random and the owner's, so no URL of another server can mean one."""
    match = UPLOAD_HREF.search(urlsplit(href).path)
    return match.group(1) if match else None


def _where(backend: Backend, cluster: str | None) -> str | None:
    """A cluster's name as stored with an upload: the backend's default one when None."""
    names = backend.cluster_names
    return cluster or (names[0] if names else None)


async def _counted(chunks: AsyncIterator[bytes], limit: int, setting: str, digest: Any,
                   size: list[int]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        size[0] += len(chunk)
        if size[0] > limit:
            raise FileTooLarge(f"the file is larger than {limit} bytes, the most this upload may hold "
                               f"(uploads.{setting})", setting, limit)
        digest.update(chunk)
        yield chunk


class Uploads(ServiceParts):
    def _upload_backend(self, cluster: str | None) -> tuple[str, Backend]:
        if cluster is None:
            return self.default_backend, self.backends[self.default_backend]
        for name, backend in self.backends.items():
            if cluster in backend.cluster_names:
                return name, backend
        raise InvalidParameterValue(f"unknown cluster '{cluster}'")

    async def upload(self, principal: Principal, chunks: AsyncIterator[bytes], length: int | None,
                     name: str | None, media_type: str | None, cluster: str | None = None) -> dict[str, Any]:
        """Store a file from `chunks` as `principal`'s; its row says where, how big and its SHA-256."""
        cfg = self.upload_settings
        if not principal.can_execute:
            raise NotAllowed("your token does not allow executing processes, so it may not upload their inputs")
        if not cfg.max_bytes:
            raise NotAllowed("uploads are off on this server (uploads.max_bytes = 0)")
        if length is not None and length > cfg.max_bytes:
            raise FileTooLarge(f"the file is {length} bytes; uploads may be at most {cfg.max_bytes} bytes "
                               "(uploads.max_bytes)", "max_bytes", cfg.max_bytes)
        backend_name, backend = self._upload_backend(cluster)
        now = time.time()
        row = {"id": secrets.token_urlsafe(18), "owner": principal.subject, "backend": backend_name,
               "cluster": _where(backend, cluster), "unix_user": principal.unix_user, "name": name,
               "media_type": media_type, "status": "uploading", "created": now, "expires": now + cfg.expire_s}
        quota = cfg.quota_bytes
        # what the quota holds for it while it arrives: its announced length, or as much as it may grow to
        used = await self.db(self.store.upload_bytes, principal.subject)
        reserve = length if length is not None else min(cfg.max_bytes, max(quota - used, 0) if quota else cfg.max_bytes)
        held = await self.db(self.store.reserve_upload, {**row, "size": reserve}, quota)
        if held is not None or (quota and reserve == 0):
            held = used if held is None else held
            raise FileTooLarge(f"you hold {held} bytes of uploaded files; this one would pass your quota of {quota} "
                               "bytes (uploads.quota_bytes): delete some (DELETE /files/{id})", "quota_bytes", quota)
        limit = reserve  # the announced length, or what is left of the quota, or max_bytes
        setting = "max_bytes" if length is not None or reserve == cfg.max_bytes else "quota_bytes"
        digest, size = hashlib.sha256(), [0]
        try:
            await backend.store_upload(upload_ref(row), _counted(chunks, limit, setting, digest, size))
            if length is not None and size[0] != length:
                raise InvalidParameterValue(f"the body was {size[0]} bytes, not the {length} announced")
        except BaseException as exc:
            # a cut connection, a limit, an unreachable cluster: nothing of it stays (and the loop's
            # cancellation of this request must not stop the clean-up)
            await asyncio.shield(self._forget(row, backend, upload_written=isinstance(exc, InvalidParameterValue)))
            if isinstance(exc, BackendError):
                raise BackendUnavailable(f"the file could not be stored: {exc}") from None
            raise
        await self.db(self.store.finish_upload, row["id"], size[0], digest.hexdigest())
        log.info("upload %s stored on %s (%d bytes)", row["id"], backend_name, size[0])
        return {**row, "size": size[0], "sha256": digest.hexdigest(), "status": "ready"}

    async def _forget(self, row: dict[str, Any], backend: Backend, upload_written: bool) -> None:
        if upload_written:
            with contextlib.suppress(BackendError, OSError):
                await backend.remove_upload(upload_ref(row))
        await self.db(self.store.delete_upload, row["id"], False)

    async def upload_info(self, principal: Principal, upload_id: str) -> dict[str, Any]:
        row = await self.db(self.store.get_upload, upload_id) if UPLOAD_ID.match(upload_id) else None
        if row is None or row["owner"] != principal.subject or row["status"] != "ready":
            raise NoSuchFile(f"file '{upload_id[:40]}' does not exist")  # another user's file does not exist for you
        return row

    async def uploads(self, principal: Principal) -> list[dict[str, Any]]:
        return [r for r in await self.db(self.store.list_uploads, principal.subject) if r["status"] == "ready"]

    async def delete_upload(self, principal: Principal, upload_id: str) -> None:
        row = await self.upload_info(principal, upload_id)
        if not await self.db(self.store.delete_upload, upload_id, True):
            raise FileInUse(f"file '{upload_id}' is an input of a job that has not ended; dismiss the job or wait")
        await self._remove_files(row)

    async def _remove_files(self, row: dict[str, Any]) -> bool:
        backend = self.backends.get(row["backend"])
        if backend is None:
            return True
        try:
            await backend.remove_upload(upload_ref(row))
        except (BackendError, OSError) as exc:
            log.warning("uploaded file %s could not be deleted from %s: %s", row["id"], row["backend"], exc)
            return False
        return True

    async def sweep_uploads(self, now: float | None = None, batch: int = 200) -> int:
        """Delete expired uploads no active job uses (and uploads a restart cut short); returns how many."""
        now = now or time.time()
        rows = await self.db(self.store.expired_uploads, now, now - STALE_S, batch)
        done = 0
        for row in rows:
            if await self._remove_files(row) and await self.db(self.store.delete_upload, row["id"], True):
                done += 1
        return done


async def resolve_uploads(parts: ServiceParts, owner: str, inputs: dict[str, list[InputValue]], backend_name: str,
                          cluster: str | None) -> tuple[dict[str, list[InputValue]], list[str]]:
    """Inputs whose `href` names one of `owner`'s uploads become the file the backend holds (no download);
    an upload of someone else, gone, or kept where the job does not run is a 400 naming the input."""
    backend = parts.backends[backend_name]
    used: list[str] = []
    out: dict[str, list[InputValue]] = {}
    for input_id, values in inputs.items():
        resolved: list[InputValue] = []
        for value in values:
            upload_id = upload_id_of(value.href) if isinstance(value, FileRef) else None
            if upload_id is None:
                resolved.append(value)
                continue
            row = await parts.db(parts.store.get_upload, upload_id)
            if row is None or row["owner"] != owner or row["status"] != "ready":
                raise InvalidParameterValue(f"input '{input_id}': there is no uploaded file '{upload_id}' of yours "
                                            "(deleted, expired or never finished)")
            if row["backend"] != backend_name or row["cluster"] != _where(backend, cluster):
                where = row["cluster"] or row["backend"]
                raise InvalidParameterValue(f"input '{input_id}': the file was uploaded to {where}, but this job runs "
                                            f"on {_where(backend, cluster) or backend_name}; upload it there "
                                            "(POST /files?cluster=NAME)")
            media_type = value.media_type or row.get("media_type")  # type: ignore[union-attr]
            resolved.append(FileSource(backend.upload_path(upload_ref(row)), media_type))
            used.append(upload_id)
        out[input_id] = resolved
    return out, used


async def sweep_uploads(service: Uploads, interval_s: float) -> None:
    """The server's background sweep of expired uploads (runs until cancelled)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await service.sweep_uploads()
        except Exception:
            log.exception("sweeping expired uploads failed (next try in %.0f s)", interval_s)
