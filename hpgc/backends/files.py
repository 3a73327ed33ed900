"""Small pieces shared by backends: downloading href inputs, the progress file, the outputs manifest."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from hpgc.backends.base import BackendError

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


async def download(href: str, max_bytes: int, timeout_s: float = 300) -> AsyncIterator[bytes]:
    """Stream an http(s) input, refusing more than max_bytes."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(href) as resp:
            if resp.status != 200:
                raise BackendError(f"input {href} could not be fetched: HTTP {resp.status}")
            seen = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                seen += len(chunk)
                if seen > max_bytes:
                    raise BackendError(f"input {href} is larger than {max_bytes} bytes")
                yield chunk
    except aiohttp.ClientError as exc:
        raise BackendError(f"input {href} could not be fetched: {exc}") from None


def command_outputs_manifest(outputs: dict[str, str], exists: dict[str, bool], job_dir: str) -> dict[str, Any]:
    return {
        oid: {"class": "File", "path": f"{job_dir.rstrip('/')}/{rel}"}
        for oid, rel in outputs.items()
        if exists.get(oid)
    }
