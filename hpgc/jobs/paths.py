"""`file:///path` inputs: a file where jobs run, used in place (no copy) when the backend says the job's user may
read it (Slurm: checked as that user over their own connection; local: only under `local.data_roots`). A path
that may not be used is a 403 naming the input, before any job exists; checked again when a job is submitted
after a restart."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from hpgc.backends.base import BackendError, PathNotAllowed
from hpgc.errors import BackendUnavailable, InvalidParameterValue, NotAllowed
from hpgc.jobs.parts import ServiceParts
from hpgc.packages.inputs import FileInPlace, FileRef, InputValue

MAX_PATH = 4096


def file_path(href: str, what: str) -> str:
    """The absolute, normal path of a `file:///…` URL; a 400 for anything else (a host, a relative or dotted path,
    control characters, a query)."""
    parts = urlsplit(href)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidParameterValue(f"{what}: a file URL is file:///absolute/path (no host, query or fragment)")
    path = unquote(parts.path)
    if not path.startswith("/") or len(path) > MAX_PATH or any(not c.isprintable() for c in path):
        raise InvalidParameterValue(f"{what}: the path must be absolute, printable and at most {MAX_PATH} characters")
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise InvalidParameterValue(f"{what}: the path must be in normal form (no '.', '..' or '//')")
    return path


async def resolve_paths(parts: ServiceParts, unix_user: str | None, inputs: dict[str, list[InputValue]],
                        backend_name: str, cluster: str | None) -> dict[str, list[InputValue]]:
    backend = parts.backends[backend_name]
    out: dict[str, list[InputValue]] = {}
    for input_id, values in inputs.items():
        resolved: list[InputValue] = []
        for value in values:
            if not (isinstance(value, FileRef) and value.href.startswith("file:")):
                resolved.append(value)
                continue
            what = f"input '{input_id}'"
            path = file_path(value.href, what)
            try:
                real = await backend.check_path(path, cluster, unix_user)
            except PathNotAllowed as exc:
                raise NotAllowed(f"{what}: {exc}") from None
            except (BackendError, OSError) as exc:
                raise BackendUnavailable(f"{what}: the path could not be checked: {exc}") from None
            resolved.append(FileInPlace(real, value.media_type))
        out[input_id] = resolved
    return out
