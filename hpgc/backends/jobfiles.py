"""Reading files that a job wrote, when the job may have been hostile.

A local job runs as the server's account, in its job directory: it can replace any file there with a
symlink out of the directory, a hard link to a server file (`ln hpgc.sqlite out.txt`), a device or a FIFO
(whose open or read would block the server). Whatever hpgc reads there for a client — results, logs,
progress, outputs.json — is opened here: component by component from the trusted jobs folder, never
following a symlink (O_NOFOLLOW), without blocking (O_NONBLOCK), and checked on the opened descriptor
(fstat: a regular file with exactly one link), so nothing can be swapped between the check and the read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from functools import lru_cache
from pathlib import Path

from hpgc.backends.base import BackendError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC


class UnsafeFile(BackendError):
    """The file exists but is not one hpgc serves (symlink out, hard link, device, FIFO, folder)."""


@lru_cache(maxsize=64)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)  # the jobs folder is the server's: trusted, and it stays where it is


def _real_jd(jd: Path) -> Path:
    return Path(_real_folder(str(jd.parent))) / jd.name


def _named_parts(jd: Path, path: str | Path) -> tuple[str, ...] | None:
    """The components of `path` below `jd` as written (`..` folded, no symlink looked at); None: outside."""
    given = Path(os.path.normpath(path))
    if given.is_absolute():
        for root in (jd, _real_jd(jd)):
            if given.is_relative_to(root):
                return given.relative_to(root).parts or None
        return None
    parts = given.parts
    return None if not parts or parts[0] in ("..", ".") else parts


def named_inside(jd: Path, path: str | Path) -> bool:
    """Whether `path` (relative to the job directory, or absolute) names a file inside it, as written: what
    outputs.json may name (`/etc/passwd`, `../../hpgc.sqlite` are refused)."""
    return _named_parts(jd, path) is not None


def relative_parts(jd: Path, path: str | Path) -> tuple[str, ...]:
    """`path` (relative to the job directory `jd`, or absolute inside it) as the components below `jd`,
    with the symlinks that stay inside `jd` resolved; UnsafeFile for anything that leads out of it."""
    parts = _named_parts(jd, path)
    if parts is None:
        raise UnsafeFile(f"{path} is outside the job directory")
    real_jd = _real_jd(jd)
    target = Path(os.path.realpath(real_jd.joinpath(*parts)))
    if not target.is_relative_to(real_jd) or target == real_jd:
        raise UnsafeFile(_refused("/".join(parts), "it leads out of the job directory"))
    return target.relative_to(real_jd).parts


def open_inside(jd: Path, path: str | Path) -> int:
    """A read-only descriptor of a regular file with one link inside `jd`; the caller closes it.

    BackendError when it does not exist; UnsafeFile (a BackendError) when it is not served."""
    parts = _named_parts(jd, path)
    if parts is None:
        raise UnsafeFile(f"{path} is outside the job directory")
    try:
        # the path as written, no symlink followed: what hpgc's own files and most outputs are
        return _open_parts(jd, parts, symlinks_resolved=False)
    except _SymlinkOnTheWay:
        # symlinks that stay inside the job directory are served as their targets
        return _open_parts(jd, relative_parts(jd, path), symlinks_resolved=True)


class _SymlinkOnTheWay(Exception):
    pass


def _open_parts(jd: Path, parts: tuple[str, ...], symlinks_resolved: bool) -> int:
    shown = "/".join(parts)
    fd = os.open(_real_folder(str(jd.parent)), _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        for i, name in enumerate((jd.name, *parts)):
            last = i == len(parts)
            try:
                new = os.open(name, _FILE_FLAGS if last else _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise BackendError(f"{shown} does not exist") from None
            except OSError as exc:  # ELOOP: a symlink (swapped in); ENOTDIR; ENXIO: a socket...
                if not symlinks_resolved and i > 0 and exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _SymlinkOnTheWay from None
                raise UnsafeFile(_refused(shown, "it is not a regular file in the job directory")) from None
            os.close(fd)
            fd = new
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(_refused(shown, "it is not a regular file"))
        if st.st_nlink != 1:
            raise UnsafeFile(_refused(shown, f"it has {st.st_nlink} hard links"))
        os.set_blocking(fd, True)
        opened, fd = fd, -1
        return opened
    finally:
        if fd >= 0:
            os.close(fd)


def _refused(shown: str, why: str) -> str:
    return (f"{shown} is not served: {why} (only regular files with a single link inside the job directory "
            "are)")


def size_inside(jd: Path, path: str | Path) -> int:
    fd = open_inside(jd, path)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_inside(jd: Path, path: str | Path, max_bytes: int | None = None, tail: bool = False) -> bytes:
    """The file's bytes (the first, or with `tail` the last, `max_bytes` of them)."""
    fd = open_inside(jd, path)
    with os.fdopen(fd, "rb") as fh:
        if max_bytes is None:
            return fh.read()
        if tail:
            size = os.fstat(fd).st_size
            fh.seek(max(0, size - max_bytes))
        return fh.read(max_bytes)


def read_text_or_empty(jd: Path, path: str | Path, max_bytes: int | None = None, tail: bool = False) -> str:
    """Text of a small file the job may have written; "" when it is missing or not served."""
    with contextlib.suppress(BackendError, OSError):
        return read_inside(jd, path, max_bytes, tail).decode(errors="replace")
    return ""


def write_inside(jd: Path, name: str, data: bytes | str) -> None:
    """Write one of hpgc's own files (exit code, pid, outputs.json) into the job directory by creating a
    new file and renaming it over the old name: a symlink or FIFO the job planted there is replaced, never
    written through."""
    raw = data.encode() if isinstance(data, str) else data
    dfd = os.open(jd, _DIR_FLAGS)
    tmp = f".{name}.{os.getpid()}.{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, 0o600, dir_fd=dfd)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        os.close(dfd)
