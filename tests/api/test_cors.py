"""CORS (hpgc/api/cors.py): none by default; listed origins get their preflight answered without a token and
credentials; '*' gets no credentials ever; other origins get nothing that lets a browser read the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.auth.web_settings import WebSettings
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend

Client = Callable[..., Awaitable[TestClient]]
LITE = "https://jupyterlite.example.org"
PREFLIGHT = {"Origin": LITE, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-evil"}


async def make(aiohttp_client: Client, settings: Settings, origins: list[str]) -> TestClient:
    changed = settings.model_copy(update={"auth": AuthSettings(), "web": WebSettings(cors_origins=origins)})
    return await aiohttp_client(create_app(changed, backends={"local": FakeBackend()}))


async def test_no_origin_is_allowed_by_default(aiohttp_client: Client, settings: Settings) -> None:
    client = await make(aiohttp_client, settings, [])
    resp = await client.options("/processes/echo/execution", headers=PREFLIGHT)
    assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/conformance", headers={"Origin": LITE})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_a_listed_origin_gets_its_preflight_without_a_token(aiohttp_client: Client, settings: Settings) -> None:
    client = await make(aiohttp_client, settings, [LITE, "http://localhost:8888"])
    resp = await client.options("/processes/echo/execution", headers=PREFLIGHT)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == LITE
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization, content-type"  # not x-evil
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    # the real request still needs its token, and its refusal is readable by the page
    refused = await client.get("/jobs", headers={"Origin": LITE})
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == LITE
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
    assert "Origin" in refused.headers.getall("Vary")


@pytest.mark.parametrize("origin", ["https://evil.example", "https://jupyterlite.example.org.evil.example", "null"])
async def test_another_origin_gets_nothing(aiohttp_client: Client, settings: Settings, origin: str) -> None:
    client = await make(aiohttp_client, settings, [LITE])
    resp = await client.options("/jobs", headers={**PREFLIGHT, "Origin": origin})
    assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/conformance", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in resp.headers and "Origin" in resp.headers.getall("Vary")


async def test_any_origin_never_with_credentials(aiohttp_client: Client, settings: Settings) -> None:
    client = await make(aiohttp_client, settings, ["*"])
    for resp in (await client.options("/jobs", headers=PREFLIGHT), await client.get("/", headers={"Origin": LITE})):
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize("bad", [["example.org"], ["https://a.example/path"], ["*", LITE]])
def test_origins_are_checked(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        WebSettings(cors_origins=bad)
