"""`-i name=@local.tif`: a local file becomes an upload (POST /files, streamed from disk, never whole in memory)
and the input its `href`. A server without uploads (an older one: 404/405, or uploads off: 403) gets small
files inline instead, as before."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hpgc.client.errors import ProblemError, UsageError
from hpgc.client.http import Transport

INLINE_MAX = 10 * 1024 * 1024  # base64 makes it 13.4 MiB: under the server's default 16 MiB body limit
CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    """A file input given as @path, uploaded when the request is sent."""

    input_id: str
    path: Path
    media_type: str


async def _chunks(path: Path) -> Any:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def upload_file(http: Transport, path: Path, media_type: str, name: str | None = None) -> dict[str, Any]:
    """POST /files with the file's bytes as they are read; the server's file document (id, href, sha256...)."""
    size = path.stat().st_size
    headers = {"Content-Type": media_type, "Content-Length": str(size)}
    for attempt in range(2):  # once more with a refreshed token; the body is read again from the start
        url = http.url("/files")
        try:
            resp = await http.session.post(url, params={"name": name or path.name}, data=_chunks(path),
                                           headers=await http._headers(url, headers), allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise http._unreachable(url, exc) from None
        try:
            if resp.status == 401 and attempt == 0 and await http.credentials.refreshed(http.session):
                continue
            await http._raise_for(resp)
            return dict(await resp.json())
        finally:
            resp.release()
    raise UsageError("the server refused the token twice")


async def with_uploads(http: Transport, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs with every LocalFile replaced by its upload's href (or inline, where the server has none)."""
    async def one(value: Any) -> Any:
        if isinstance(value, list):
            return [await one(v) for v in value]
        if not isinstance(value, LocalFile):
            return value
        try:
            doc = await upload_file(http, value.path, value.media_type)
        except ProblemError as exc:
            if exc.status not in (403, 404, 405):
                raise
            return inline(value, f"the server takes no uploads ({exc})")
        return {"href": doc["href"], "type": value.media_type}

    return {name: await one(v) for name, v in inputs.items()}


def inline(value: LocalFile, why: str) -> dict[str, Any]:
    size = value.path.stat().st_size
    if size > INLINE_MAX:
        raise UsageError(f"input {value.input_id!r}: {value.path} is {size / 2**20:.1f} MiB and {why}; local files "
                         f"are sent inline up to {INLINE_MAX // 2**20} MiB: put it where the server can fetch it "
                         f"and give -i {value.input_id}=https://…")
    return {"value": base64.b64encode(value.path.read_bytes()).decode(), "encoding": "base64",
            "mediaType": value.media_type}
