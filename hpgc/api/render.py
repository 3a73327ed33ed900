"""Content negotiation (JSON or HTML), links and the JSON forms of jobs and results."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from hpgc.api.hosts import checked_host
from hpgc.api.keys import SETTINGS, TEMPLATES
from hpgc.jobs.documents import HTML, JSON, link, status_document


def dumps(data: Any) -> str:
    """Every JSON body the API writes. orjson: a job list's ten statusInfo documents in 8 µs, where json.dumps
    took 63 (docs/performance.md); json.dumps for what orjson refuses (an integer beyond 64 bits in a
    user's inputs, echoed back), so that no valid document becomes a 500."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(data)


json_response = partial(web.json_response, dumps=dumps)


HTML_WANTED: web.RequestKey[bool] = web.RequestKey("hpgc_wants_html", bool)


def wants_html(request: web.Request) -> bool:
    """Whether the client asked for HTML (f=html, or an Accept header that prefers it); decided once per
    request, which asks it for the body and again for its links."""
    wanted = request.get(HTML_WANTED)
    if wanted is None:
        wanted = request[HTML_WANTED] = _wants_html(request)
    return wanted


def _wants_html(request: web.Request) -> bool:
    f = request.query.get("f")
    if f is not None:
        if f not in ("json", "html"):
            raise web.HTTPBadRequest(text=f"unknown format f={f}; use f=json or f=html")
        return f == "html"
    best_html = best_json = 0.0
    for part in request.headers.get("Accept", "").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media == HTML:
            best_html = max(best_html, q)
        elif media in (JSON, "application/*", "*/*") or media.endswith("+json"):
            best_json = max(best_json, q * (0.99 if media != JSON else 1.0))
    return best_html > best_json


def base_url(request: web.Request) -> str:
    """What absolute links and Location start with: base_url when set, else the request's checked Host
    (never request.host, which falls back to this machine's name, nor any X-Forwarded-* header)."""
    configured = request.app[SETTINGS].base_url
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{checked_host(request)}"


def respond(request: web.Request, data: dict[str, Any], template: str, status: int = 200,
            headers: dict[str, str] | None = None, **context: Any) -> web.Response:
    if wants_html(request):
        html = request.app[TEMPLATES].get_template(template).render(
            data=data, base=base_url(request), title=request.app[SETTINGS].title, request=request, **context
        )
        return web.Response(text=html, content_type=HTML, status=status, headers=headers)
    return web.Response(text=dumps(data), content_type=JSON, status=status, headers=headers)


def self_links(request: web.Request, path: str, title: str) -> list[dict[str, str]]:
    """The document's own links, as Link's wire form (a model's `links` takes them as they are)."""
    base = base_url(request)
    html = wants_html(request)
    return [
        link(f"{base}{path}?f={'html' if html else 'json'}", "self", HTML if html else JSON,
             f"{title} (this document)"),
        link(f"{base}{path}?f={'json' if html else 'html'}", "alternate", JSON if html else HTML,
             f"{title} as {'JSON' if html else 'HTML'}"),
    ]


def status_info(request: web.Request, row: dict[str, Any]) -> dict[str, Any]:
    return status_document(row, base_url(request))
