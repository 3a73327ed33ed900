"""OAuth 2.0 Protected Resource Metadata (RFC 9728): which issuers this server trusts, public at
/.well-known/oauth-protected-resource, so that `hpgc login URL` finds where to log in from the URL alone."""

from __future__ import annotations

from aiohttp import web

from hpgc.api.render import base_url, json_response

PATH = "/.well-known/oauth-protected-resource"


def add_resource_metadata(app: web.Application, issuers: list[str], scopes: list[str]) -> None:
    async def metadata(request: web.Request) -> web.Response:
        return json_response({"resource": base_url(request), "authorization_servers": issuers,
                              "scopes_supported": scopes, "bearer_methods_supported": ["header"]},
                             headers={"Cache-Control": "max-age=60"})

    app.router.add_get(PATH, metadata)
