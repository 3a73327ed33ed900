"""Results as documents (JSON), raw bodies, or streamed files with HTTP range support."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.render import base_url
from hpgc.backends.base import BackendError
from hpgc.errors import NoSuchOutput
from hpgc.jobs.documents import build_results_document
from hpgc.jobs.service import OutputFile, OutputValue
from hpgc.models.ogc import Execute, ResponseType


async def _file_bytes(request: web.Request, job_id: str, oid: str) -> bytes:
    ref, backend, item = await request.app[JOBS].output(principal(request), job_id, oid)
    assert isinstance(item, OutputFile)
    try:
        return b"".join([chunk async for chunk in backend.read_file(ref, item.path)])
    except BackendError as exc:  # a file the backend refuses to serve (not a regular file of the job...)
        raise NoSuchOutput(f"output '{oid}' is not available: {exc}") from None


async def results_document(request: web.Request, job_id: str, req: Execute) -> dict[str, Any]:
    jobs = request.app[JOBS]
    _, outputs = await jobs.results(principal(request), job_id)
    return await build_results_document(
        job_id, outputs, req, base_url(request), lambda oid: _file_bytes(request, job_id, oid)
    )


async def results_response(
    request: web.Request, job_id: str, req: Execute, headers: dict[str, str]
) -> web.StreamResponse:
    """The answer to a finished synchronous execute, in the form the request asked for."""
    doc = await results_document(request, job_id, req)
    if req.response == ResponseType.document or len(doc) != 1:
        return web.json_response(doc, headers=headers)
    ((oid, item),) = doc.items()
    if isinstance(item, dict) and "href" in item:
        headers["Link"] = f'<{item["href"]}>; rel="{oid}"; type="{item.get("type", "")}"'
        return web.Response(status=204, headers=headers)
    if isinstance(item, dict) and "value" in item and "mediaType" in item:
        data = base64.b64decode(item["value"]) if item.get("encoding") == "base64" else item["value"].encode()
        return web.Response(body=data, content_type=item["mediaType"], headers=headers)
    if isinstance(item, str):
        return web.Response(text=item, content_type="text/plain", headers=headers)
    return web.Response(text=json.dumps(item), content_type="application/json", headers=headers)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """'bytes=a-b' → (offset, length); None for no or unsupported range."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    start_s, _, end_s = header[6:].partition("-")
    try:
        if start_s == "":
            length = min(int(end_s), size)
            return size - length, length
        start = int(start_s)
        end = min(int(end_s), size - 1) if end_s else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end - start + 1


async def stream_output(request: web.Request) -> web.StreamResponse:
    job_id, oid = request.match_info["job_id"], request.match_info["output_id"]
    ref, backend, item = await request.app[JOBS].output(principal(request), job_id, oid)
    if isinstance(item, OutputValue):
        return web.json_response(item.value)
    try:
        size = await backend.file_size(ref, item.path)
    except BackendError as exc:
        raise NoSuchOutput(f"output '{oid}' is no longer available: {exc}") from None
    rng = _range(request.headers.get("Range"), size)  # an unreadable Range is ignored, as RFC 9110 allows
    resp = web.StreamResponse(status=206 if rng else 200)
    resp.content_type = item.media_type
    resp.headers["Accept-Ranges"] = "bytes"
    offset, length = rng if rng else (0, size)
    resp.content_length = length
    if rng:
        resp.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    await resp.prepare(request)
    if request.method != "HEAD":
        async for chunk in backend.read_file(ref, item.path, offset, length):
            await resp.write(chunk)
    await resp.write_eof()
    return resp
