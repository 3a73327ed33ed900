"""hpgc trusting issuers over real HTTP, as it would trust Keycloak: `hpgc dev-issuer` as a separate
process, a fake provider with OAuth2 endpoints (OpenAPI flows) and introspection of opaque tokens."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_openapi

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.auth.dev_issuer import DevIssuer
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend
from tests.conftest import REPO
from tests.fake_issuer import CLIENT, FakeIssuer

Client = Callable[..., Awaitable[TestClient]]


def hpgc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpgc.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=True)


@pytest.fixture
def dev_issuer(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`hpgc dev-issuer --port 0` in its own process; yields (issuer URL, its data dir)."""
    data = tmp_path / "issuer"
    proc = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "dev-issuer", "--port", "0", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            env={**os.environ, "HPGC_LOG_LEVEL": "WARNING"})
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "hpgc dev-issuer did not start within 30 s"
        line = proc.stdout.readline().strip()
        assert line.startswith("hpgc development issuer at http://127.0.0.1:"), line
        yield line.rsplit(" ", 1)[1], data
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def trusting(settings: Settings, *issuers: IssuerSettings) -> Settings:
    return settings.model_copy(update={"auth": AuthSettings(issuers=list(issuers))})


async def test_dev_issuer_process_discovery_jwks_token_accepted(
    dev_issuer: tuple[str, Path], aiohttp_client: Client, settings: Settings, fake_backend: FakeBackend
) -> None:
    url, data = dev_issuer
    app = create_app(trusting(settings, IssuerSettings(issuer=url, jwks_refresh_min_s=0)),
                     backends={"local": fake_backend})
    client = await aiohttp_client(app)
    assert DEV_ISSUER not in app, "a configured issuer turns the embedded one off: keys can only come over HTTP"
    tok = hpgc("token", "--user", "alice", "--data-dir", str(data)).stdout.strip()
    resp = await client.get("/jobs", headers={"Authorization": f"Bearer {tok}"})
    assert resp.status == 200, await resp.text()
    # rotation in the issuer's data dir (as another process): the server picks the new key up over HTTP
    DevIssuer(data).rotate()
    tok2 = hpgc("token", "--user", "alice", "--data-dir", str(data), "--scope", "hpgc:execute").stdout.strip()
    assert (await client.get("/jobs", headers={"Authorization": f"Bearer {tok2}"})).status == 200
    assert (await client.get("/jobs", headers={"Authorization": f"Bearer {tok}"})).status == 200
    # a token of the same user from another issuer's keys (the embedded one of another data dir) is refused
    other = DevIssuer(data.parent / "elsewhere").mint(url, "alice")
    resp = await client.get("/jobs", headers={"Authorization": f"Bearer {other}"})
    assert resp.status == 401 and "kid" in (await resp.json())["detail"]


async def test_openapi_offers_oauth2_flows_when_the_issuer_does(
    fake: FakeIssuer, aiohttp_client: Client, settings: Settings, fake_backend: FakeBackend
) -> None:
    fake.extra_metadata = {"authorization_endpoint": f"{fake.url}/protocol/openid-connect/auth",
                           "token_endpoint": f"{fake.url}/protocol/openid-connect/token",
                           "response_types_supported": ["code", "token", "id_token"]}
    client = await aiohttp_client(create_app(trusting(settings, IssuerSettings(issuer=fake.url)),
                                             backends={"local": fake_backend}))
    assert (await client.get("/jobs", headers={"Authorization": f"Bearer {fake.token()}"})).status == 200
    doc = await (await client.get("/api")).json()
    validate_openapi(doc)
    oauth2 = doc["components"]["securitySchemes"]["oauth2"]
    assert oauth2["flows"]["authorizationCode"]["tokenUrl"] == fake.extra_metadata["token_endpoint"]
    assert oauth2["flows"]["implicit"]["authorizationUrl"] == fake.extra_metadata["authorization_endpoint"]
    assert set(oauth2["flows"]["authorizationCode"]["scopes"]) == {"hpgc:execute", "hpgc:deploy", "hpgc:admin"}
    assert {"oauth2": ["hpgc:execute"]} in doc["security"] and {"bearerAuth": []} in doc["security"]


async def test_introspection_over_http(fake: FakeIssuer, aiohttp_client: Client, settings: Settings,
                                       fake_backend: FakeBackend) -> None:
    issuer = IssuerSettings(issuer=fake.url, client_id=CLIENT[0], client_secret=CLIENT[1])
    client = await aiohttp_client(create_app(trusting(settings, issuer), backends={"local": fake_backend}))
    resp = await client.get("/jobs", headers={"Authorization": "Bearer opaque-and-unknown"})
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert "not active" in (await resp.json())["detail"]
    fake.active_tokens["live-token"] = {"active": True, "sub": "u-7", "preferred_username": "gina",
                                        "scope": "hpgc:execute", "exp": int(time.time()) + 300, "aud": "hpgc",
                                        "iss": fake.url}
    resp = await client.get("/jobs", headers={"Authorization": "Bearer live-token"})
    assert resp.status == 200, await resp.text()
    fake.active_tokens["live-token"] = {"active": False}  # revoked: still accepted until the cache entry ends
    hits = fake.introspection_hits
    assert (await client.get("/jobs", headers={"Authorization": "Bearer live-token"})).status == 200
    assert fake.introspection_hits == hits
