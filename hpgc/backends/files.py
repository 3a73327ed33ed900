"""Small pieces shared by backends: downloading href inputs (through the guarded client), the progress file,
the outputs manifest."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from hpgc.backends.base import BackendError
from hpgc.net import GuardedClient, OutboundError
from hpgc.storage import ObjectStores, StorageError

PROGRESS_FILE = "progress"
OUTPUTS_FILE = "outputs.json"
PROGRESS_HELPER = """#!/bin/sh
# hpgc-progress PERCENT [MESSAGE]: tell hpgc how far this job is.
printf '%s %s\\n' "$1" "$2" >> "${HPGC_JOB_DIR:-.}/progress"
"""
_PROGRESS_LINE = re.compile(r"^\s*(\d{1,3})(?:\s+(.*))?$")


def parse_progress(text: str) -> tuple[int | None, str | None]:
    """The last well-formed line of a progress file → (percent 0–100, message)."""
    for line in reversed(text.splitlines()):
        m = _PROGRESS_LINE.match(line)
        if m:
            return min(int(m.group(1)), 100), (m.group(2) or "").strip() or None
    return None, None


class Downloads:
    """The `href` inputs of one job, through the guarded client: each file at most `max_bytes`, all of them
    together at most `outbound.max_job_bytes` (counted after content decoding, checked before a byte is
    written, so nothing staged ever exceeds either)."""

    def __init__(self, client: GuardedClient, storage: ObjectStores | None = None,
                 unix_user: str | None = None) -> None:
        self.client = client
        self.storage = storage  # s3:// inputs: read with the site's (or the user's) credentials
        self.unix_user = unix_user
        self.staged = 0

    async def fetch(self, href: str, max_bytes: int) -> AsyncIterator[bytes]:
        limit = self.client.settings.max_job_bytes
        try:
            if href.startswith("s3://"):
                if self.storage is None:
                    raise BackendError("s3:// inputs are not configured on this server (storage.s3)")
                source = self.storage.read(href, max_bytes, self.unix_user)
            else:
                source = self.client.stream(href, max_bytes, "input")
            async with contextlib.aclosing(source) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    self.staged += len(chunk)
                    if self.staged > limit:
                        raise BackendError(f"the href inputs of this job together are larger than {limit} bytes "
                                           "(outbound.max_job_bytes)")
                    yield chunk
        except OutboundError as exc:
            raise BackendError(exc.detail) from None
        except StorageError as exc:
            raise BackendError(f"input {href[:200]}: {exc}") from None


def command_outputs_manifest(outputs: dict[str, str], exists: dict[str, bool], job_dir: str) -> dict[str, Any]:
    return {
        oid: {"class": "File", "path": f"{job_dir.rstrip('/')}/{rel}"}
        for oid, rel in outputs.items()
        if exists.get(oid)
    }
