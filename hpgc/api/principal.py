"""Where handlers find who is calling. The auth middleware sets it; without auth everyone is anonymous."""

from __future__ import annotations

from aiohttp import web

from hpgc.auth.principal import ANONYMOUS, Principal

PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal:
    return request.get(PRINCIPAL_KEY, ANONYMOUS)
