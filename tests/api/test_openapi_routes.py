"""The OpenAPI document and the router agree: every route the server answers is documented, and every
documented operation exists. A new endpoint without its documentation fails here (docs/contributing.md)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend

# Swagger UI's own files: assets of the page /api.html, not operations of the API
ASSETS = "/api.html/static"
# The web interface's own pages and forms (docs/ui.md): HTML for people, not operations of the API. The API
# routes they show (the same URLs with f=html) stay documented; so do the signed links and the development
# issuer's sign-in page, which other clients use.
UI = "/ui/"
METHODS = {"get", "post", "put", "delete", "patch"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "OPTIONS") or resource.canonical.startswith((ASSETS, UI)):
            continue
        out.add((route.method, _shape(resource.canonical)))
    return out


@pytest.mark.parametrize("auth", [False, True])
async def test_every_route_is_documented_and_every_operation_routed(
        aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, auth: bool) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth=AuthSettings(enabled=auth))
    client = await aiohttp_client(create_app(settings, backends={"local": FakeBackend()}))
    doc = await (await client.get("/api")).json()
    documented = {(m.upper(), _shape(p)) for p, item in doc["paths"].items() for m in item if m in METHODS}
    routes = _routes(client.app)
    assert routes - documented == set()  # answered but not documented
    assert documented - routes == set()  # documented but not answered
    assert len(routes) > 15 and (("POST", "/auth/token") in routes) == auth
