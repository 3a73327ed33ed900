"""CORS for browser clients on other origins (a JupyterLite notebook, a web map): the origins of the setting
web.cors_origins, none by default. A preflight is answered without authentication (a browser never sends
credentials with it); credentials are allowed only to origins named one by one, never with '*'."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hpgc.api.keys import SETTINGS

METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
HEADERS = {"authorization", "content-type", "prefer", "range", "accept", "x-csrf-token", "if-none-match"}
EXPOSED = "Location, Link, Content-Range, Accept-Ranges, Preference-Applied, Retry-After, WWW-Authenticate, " \
          "X-Request-Id"
MAX_AGE_S = "600"


def _allowed(request: web.Request) -> str | None:
    """The Access-Control-Allow-Origin value for this request, or None."""
    origin = request.headers.get("Origin")
    origins = request.app[SETTINGS].web.cors_origins
    if not origin or not origins:
        return None
    if origins == ["*"]:
        return "*"
    return origin if origin.lower() in origins else None


def _headers(allowed: str) -> dict[str, str]:
    out = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}
    if allowed != "*":  # the Fetch standard refuses credentials with '*'; we never send them together
        out["Access-Control-Allow-Credentials"] = "true"
    return out


@web.middleware
async def cors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers \
            and "Origin" in request.headers:
        allowed = _allowed(request)
        if allowed is None:
            return web.Response(status=403, text="this origin may not call the API (setting web.cors_origins)")
        asked = {h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")}
        return web.Response(status=204, headers={
            **_headers(allowed), "Access-Control-Allow-Methods": METHODS,
            "Access-Control-Allow-Headers": ", ".join(sorted((asked & HEADERS) or {"content-type"})),
            "Access-Control-Max-Age": MAX_AGE_S})
    return await handler(request)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer to an allowed origin says so, the errors too (a 401 a script cannot read helps no one)."""
    if "Access-Control-Allow-Origin" in response.headers:  # a preflight: answered in full already
        return
    allowed = _allowed(request)
    if allowed is None:
        if request.app[SETTINGS].web.cors_origins:
            response.headers.add("Vary", "Origin")
        return
    for name, value in _headers(allowed).items():
        if name == "Vary":
            response.headers.add("Vary", value)
        else:
            response.headers[name] = value
    response.headers["Access-Control-Expose-Headers"] = EXPOSED
