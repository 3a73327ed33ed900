"""Each request's id: the reverse proxy's X-Request-Id when it is a plain token, else a new one; sent back in
the response's X-Request-Id and carried by every log record written while the request is handled (hpgc/logs.py),
also by the background work it starts (a job's submission)."""

from __future__ import annotations

import os
import re
from typing import Any

from aiohttp import web

from hpgc.logs import bind, current

HEADER = "X-Request-Id"
ACCEPTED = re.compile(r"[A-Za-z0-9._-]{1,64}")  # what a proxy sends; anything else could forge log lines


def request_id(request: web.Request) -> str:
    given = request.headers.get(HEADER, "")
    return given if given and ACCEPTED.fullmatch(given) else os.urandom(16).hex()  # as random as a uuid4


@web.middleware
async def request_id_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    rid = request_id(request)
    with bind(request_id=rid):
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and the like leave as exceptions
            exc.headers[HEADER] = rid
            raise
        if not response.prepared:  # a streamed response sent its headers already (set in on_response_prepare)
            response.headers[HEADER] = rid
        return response


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Streamed responses (results, logs) send their headers before the handler returns."""
    rid = current().get("request_id")
    if rid and HEADER not in response.headers:
        response.headers[HEADER] = rid
