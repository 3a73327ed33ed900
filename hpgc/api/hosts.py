"""Which `Host` a request may name, and so which host absolute links and `Location` headers carry.

Without `base_url`, links are built from the request's Host header. A Host the server does not answer to
would put an attacker's host in links and `Location` (cache poisoning, password-reset-style phishing), and
a browser tricked by DNS rebinding sends one to reach a server on loopback. So every request, public pages
included, names an allowed Host or gets a 400 before any handler (or authentication) runs: the answer is
the same on every path, so it tells nothing about them. X-Forwarded-* and Forwarded are never read: behind
a proxy, set `base_url`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from aiohttp import web

from hpgc.api.keys import SETTINGS
from hpgc.errors import InvalidRequest

HOST_KEY: web.RequestKey[str] = web.RequestKey("hpgc_host", str)
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::([0-9]{1,5}))?")
REFUSED = ("this server does not answer to the host named in the Host header; use one of its addresses "
           "(administrators: set base_url, or list the name in allowed_hosts)")


def normalise(authority: str, scheme: str) -> str | None:
    """'Example.org' → 'example.org:80' (the port made explicit); None when it is no host[:port] at all."""
    match = _AUTHORITY.fullmatch(authority.strip().lower())
    if match is None:
        return None
    port = match.group(2) or ("443" if scheme == "https" else "80")
    return f"{match.group(1)}:{int(port)}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def allowed_hosts(request: web.Request) -> frozenset[str]:
    """`allowed_hosts` when set; else the listen address, the address the request arrived at and the
    loopback names, with the port it arrived on (so `--port 0` and test servers work), plus base_url's."""
    settings = request.app[SETTINGS]
    scheme = request.scheme
    if settings.allowed_hosts is not None:
        names = list(settings.allowed_hosts)
    else:
        sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else settings.port
        local = [sockname[0]] if isinstance(sockname, tuple) and sockname else []
        names = [f"{_bracketed(h)}:{port}" for h in (settings.host, *local, "localhost", "127.0.0.1", "::1")
                 if h not in ("", "0.0.0.0", "::")]
        if settings.base_url:
            names.append(settings.base_url.split("://", 1)[-1].split("/", 1)[0])
    return _normalised(tuple(names), scheme)


@lru_cache(maxsize=256)  # the same few names on every request: normalising them was a tenth of a job list's time
def _normalised(names: tuple[str, ...], scheme: str) -> frozenset[str]:
    return frozenset(n for n in (normalise(name, scheme) for name in names) if n is not None)


def checked_host(request: web.Request) -> str:
    """The request's Host as sent, when the server answers to it; InvalidRequest (400) otherwise."""
    host = request.get(HOST_KEY)
    if host is not None:
        return host
    values = request.headers.getall("Host", [])
    if not values and request.app[SETTINGS].base_url:
        request[HOST_KEY] = ""  # links come from base_url: nothing of the request goes into them
        return ""
    if len(values) != 1:
        raise InvalidRequest("send exactly one Host header" if values else "send a Host header")
    host = normalise(values[0], request.scheme)
    if host is None or host not in allowed_hosts(request):
        raise InvalidRequest(REFUSED)
    request[HOST_KEY] = values[0].strip().lower()
    return request[HOST_KEY]


@web.middleware
async def host_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    checked_host(request)
    return await handler(request)
