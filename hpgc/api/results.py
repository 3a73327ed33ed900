"""Results as documents (JSON), raw bodies, or streamed files with HTTP range support."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.links import sign_results
from hpgc.api.principal import principal
from hpgc.api.problems import problem
from hpgc.api.render import base_url, json_response
from hpgc.backends.base import BackendError
from hpgc.errors import NoSuchOutput
from hpgc.jobs.documents import INLINE_LIMIT, build_results_document
from hpgc.jobs.results import OutputValue, ResultFile
from hpgc.models.ogc import Execute, ResponseType


async def _file_bytes(request: web.Request, job_id: str, oid: str) -> bytes:
    result = await request.app[JOBS].output(principal(request), job_id, oid)
    assert isinstance(result, ResultFile)
    try:
        return b"".join([chunk async for chunk in result.read(0, INLINE_LIMIT + 1)])
    except BackendError as exc:  # gone, or not served (a link out of the job directory...)
        raise NoSuchOutput(f"output '{oid}' is not available: {exc}") from None


async def results_document(request: web.Request, job_id: str, req: Execute) -> dict[str, Any]:
    jobs = request.app[JOBS]
    _, outputs = await jobs.results(principal(request), job_id)
    base = base_url(request)
    doc = await build_results_document(job_id, outputs, req, base, lambda oid: _file_bytes(request, job_id, oid))
    return sign_results(request, job_id, doc, base)


async def results_response(
    request: web.Request, job_id: str, req: Execute, headers: dict[str, str]
) -> web.StreamResponse:
    """The answer to a finished synchronous execute, in the form the request asked for."""
    doc = await results_document(request, job_id, req)
    if req.response == ResponseType.document or len(doc) != 1:
        return json_response(doc, headers=headers)
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


class RangeNotSatisfiable(Exception):
    """A Range header answered with 416: malformed, unsatisfiable, or several ranges (not supported)."""


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # RFC 9110 §5.6.2, lowercased
_INT_RANGE = re.compile(r"([0-9]+)-([0-9]*)")
_SUFFIX_RANGE = re.compile(r"-([0-9]+)")
_HUGE = 10**30  # past any file: positions longer than this are compared, never converted (int() caps digits)


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 30 else _HUGE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """RFC 9110 §14 for one file of `size` bytes: (offset, length) of the one byte range asked for, None to
    send the whole file, RangeNotSatisfiable for a 416.

    A unit other than bytes is ignored (§14.2: an origin server MUST ignore a unit it does not understand).
    Every malformed bytes range (`bytes=--5`, `bytes=5-3`, `bytes=abc`, `bytes=`), every unsatisfiable one
    (`bytes=-0`, a first position at or past the end) and several ranges (no multipart/byteranges here;
    §14.2 lets a server reject them) are 416. A suffix longer than the file is the whole file (206). A
    suffix range of an empty file is satisfiable but cannot be written in Content-Range: the whole (empty)
    file is sent with 200, as §14.2 allows a server to ignore Range.
    """
    if header is None:
        return None
    unit, eq, spec = header.partition("=")
    unit = unit.strip(" \t").lower()
    if not eq or _TOKEN.fullmatch(unit) is None:
        raise RangeNotSatisfiable(header)
    if unit != "bytes":
        return None
    if "," in spec:
        raise RangeNotSatisfiable(header)
    spec = spec.strip(" \t")
    if (m := _SUFFIX_RANGE.fullmatch(spec)) is not None:
        length = _position(m.group(1))
        if length == 0:
            raise RangeNotSatisfiable(header)
        if size == 0:
            return None
        length = min(length, size)
        return size - length, length
    if (m := _INT_RANGE.fullmatch(spec)) is None:
        raise RangeNotSatisfiable(header)
    first = _position(m.group(1))
    last = _position(m.group(2)) if m.group(2) else size - 1
    if last < first or first >= size:
        raise RangeNotSatisfiable(header)
    last = min(last, size - 1)
    return first, last - first + 1


async def stream_output(request: web.Request) -> web.StreamResponse:
    job_id, oid = request.match_info["job_id"], request.match_info["output_id"]
    result = await request.app[JOBS].output(principal(request), job_id, oid)
    return await send_output(request, result, oid)


async def send_output(request: web.Request, result: OutputValue | ResultFile, oid: str) -> web.StreamResponse:
    """One output: a value as JSON, a file streamed (with one byte range if asked for)."""
    if isinstance(result, OutputValue):
        return json_response(result.value)
    try:
        size = await result.size()
    except BackendError as exc:
        raise NoSuchOutput(f"output '{oid}' is no longer available: {exc}") from None
    ranges = request.headers.getall("Range", [])
    try:
        # a Range is defined for GET only (RFC 9110 §14.2: ignored on HEAD); two headers are two ranges
        rng = parse_range(",".join(ranges), size) if ranges and request.method == "GET" else None
    except RangeNotSatisfiable:
        return problem(416, "Range not satisfiable", f"the Range header asks for no single byte range of this "
                       f"{size}-byte file (one range only, e.g. bytes=0-1023 or bytes=-1024)",
                       headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    resp = web.StreamResponse(status=206 if rng else 200)
    resp.content_type = result.item.media_type
    resp.headers["Accept-Ranges"] = "bytes"
    offset, length = rng if rng else (0, size)
    resp.content_length = length
    if rng:
        resp.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    await resp.prepare(request)
    if request.method != "HEAD":
        async for chunk in result.read(offset, length):
            await resp.write(chunk)
    await resp.write_eof()
    return resp
