"""Every error leaves as application/problem+json (RFC 7807), whatever raised it."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from hpgc.api.keys import SETTINGS
from hpgc.errors import HpgcError, JobFailed
from hpgc.models.ogc import OGC_EXC
from hpgc.models.parsing import load_json

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
INLINE_PARSE_BYTES = 256 * 1024  # parsed on the event loop below this size (a few milliseconds at most)
STREAMED_PATH = "/files"  # POST streams an upload to storage: uploads.* limits it, not max_body_bytes

HTTP_TYPES = {
    404: ("about:blank", "Not found"),
    405: ("about:blank", "Method not allowed"),
    406: ("about:blank", "Not acceptable"),
    413: ("about:blank", "Request body too large"),
    415: (f"{OGC_EXC}/unsupported-media-type", "Unsupported media type"),
}


def problem(status: int, title: str, detail: str | None = None, type_: str = "about:blank",
            headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_JSON, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except JobFailed as exc:
        err = exc.error or {}
        return problem(exc.status, err.get("title") or exc.title, err.get("detail") or exc.detail, exc.type)
    except HpgcError as exc:
        return problem(exc.status, exc.title, exc.detail, exc.type, headers=getattr(exc, "headers", None),
                       **getattr(exc, "extra", {}))
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == PROBLEM_JSON:
            raise
        type_, title = HTTP_TYPES.get(exc.status, ("about:blank", exc.reason))
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
        if exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 404 and detail is None:
            detail = f"nothing at {request.path}"
        elif exc.status == 413:
            detail = f"the body is larger than the {request.app[SETTINGS].max_body_bytes} bytes this server accepts"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return problem(exc.status, title, detail, type_, headers=headers)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem(500, "Internal server error", "the server hit an unexpected error; it was logged")


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse an announced oversized body before reading a byte of it."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.path == STREAMED_PATH and request.method == "POST":
        return await handler(request)  # an upload streams to storage: its own limits (uploads.*) apply
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await handler(request)


async def read_json(request: web.Request) -> Any:
    if request.content_type not in ("application/json", "") and not request.content_type.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(text=f"expected application/json, got {request.content_type}")
    raw = await request.read()
    if len(raw) <= INLINE_PARSE_BYTES:
        return load_json(raw)
    # a 16 MiB body takes 0.2-2 s to parse: in a thread, so other requests get the loop between its steps
    return await asyncio.to_thread(load_json, raw)
