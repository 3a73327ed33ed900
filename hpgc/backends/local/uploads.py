"""Uploaded files on the local backend: DATA_DIR/uploads/<id>, 0600 in a 0700 folder, written to `<id>.part` as
the bytes arrive (a few chunks in memory at most) and renamed into place only when complete; a job gets a
hard link of it in its directory (a copy where the two are on different file systems)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from hpgc.backends.base import BackendError
from hpgc.models.run import UploadRef

BATCH_BYTES = 4 * 1024 * 1024  # written per thread hop: the loop never waits on the disk, memory stays bounded


class LocalUploads:
    jobs_dir: Path

    @property
    def uploads_dir(self) -> Path:
        return self.jobs_dir.parent / "uploads"

    def upload_path(self, upload: UploadRef) -> str:
        return str(self.uploads_dir / upload.file_id)

    async def store_upload(self, upload: UploadRef, chunks: AsyncIterator[bytes]) -> None:
        folder = self.uploads_dir
        await asyncio.to_thread(_private_folder, folder)
        part = folder / f"{upload.file_id}.part"
        fd = await asyncio.to_thread(os.open, part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            batch: list[bytes] = []
            size = 0
            async for chunk in chunks:
                batch.append(chunk)
                size += len(chunk)
                if size >= BATCH_BYTES:
                    await asyncio.to_thread(_write_all, fd, batch)
                    batch, size = [], 0
            await asyncio.to_thread(_write_all, fd, batch)
            await asyncio.to_thread(os.fsync, fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        os.close(fd)
        os.replace(part, folder / upload.file_id)

    async def remove_upload(self, upload: UploadRef) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.uploads_dir / upload.file_id).unlink()


def _private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)


def _write_all(fd: int, parts: list[bytes]) -> None:
    for data in parts:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def link_or_copy(source: str, target: Path) -> None:
    """An upload into a job directory: a hard link (no copy), or a copy across file systems."""
    if not os.path.isfile(source) or os.path.islink(source):
        raise BackendError("an uploaded input is gone (deleted or expired)")
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copyfile(source, target, follow_symlinks=False)
