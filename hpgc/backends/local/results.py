"""What a local job left in its directory, read through hpgc/backends/jobfiles.py: only regular files with
one link inside the job directory, whatever the job did to it."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hpgc.backends.base import BackendError
from hpgc.backends.files import OUTPUTS_FILE
from hpgc.backends.jobfiles import named_inside, open_inside, read_inside, read_text_or_empty

MAX_MANIFEST_BYTES = 64 * 1024**2
COMMAND_FILE = "command.json"
SMALL_FILE_BYTES = 1024**2  # exit code, pid, progress, command line


def read_outputs(jd: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(read_inside(jd, OUTPUTS_FILE, MAX_MANIFEST_BYTES))
    except (BackendError, OSError, ValueError) as exc:
        raise BackendError(f"the job left no readable outputs.json: {exc}") from None
    if not isinstance(manifest, dict):
        raise BackendError("the job's outputs.json is not an object")
    for oid, value in manifest.items():  # a tool may name any path: only the job's own files are results
        if isinstance(value, dict) and value.get("class") == "File":
            path = value.get("path") or str(value.get("location", "")).removeprefix("file://")
            if not named_inside(jd, path):
                raise BackendError(f"output '{oid}' names {path}, outside the job directory")
    return manifest


async def stream_file(jd: Path, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
    remaining = length
    with os.fdopen(open_inside(jd, path), "rb") as fh:
        fh.seek(offset)
        while remaining is None or remaining > 0:
            chunk = fh.read(1 << 16 if remaining is None else min(1 << 16, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def command_line(jd: Path) -> str | None:
    """The command the job ran, as a shell line (the local backend's "script")."""
    text = read_text_or_empty(jd, COMMAND_FILE, SMALL_FILE_BYTES)
    try:
        return shlex.join(json.loads(text)) + "\n" if text else None
    except (ValueError, TypeError):
        return None


def log_tail(jd: Path, name: str, limit: int | None) -> str:
    """The last `limit` characters of a log (its last 4×limit bytes hold them, whatever the encoding)."""
    if limit is None:
        return read_text_or_empty(jd, name)
    return read_text_or_empty(jd, name, max(limit, 1) * 4, tail=True)[-limit:].strip() if limit else ""
