"""Bearer authentication through HTTP with the embedded development issuer: public façade, RFC 6750
challenges, RFC 7807 bodies, permissions, Unix mapping, and per-user isolation of jobs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_openapi

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.api.keys import JOBS, SETTINGS
from hpgc.api.principal import principal
from hpgc.auth.dev_issuer import dev_issuer_url
from hpgc.auth.principal import require_deploy
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend
from tests.fake_issuer import forge

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
ECHO = {"inputs": {"stringInput": "hello"}}
PUBLIC = ["/", "/?f=html", "/conformance", "/api", "/api.html", "/api.html/static/swagger-ui.css",
          "/api.html/static/hpgc-swagger.js", "/auth/.well-known/openid-configuration", "/auth/jwks"]
PROTECTED = [("GET", "/processes"), ("GET", "/processes/echo"), ("POST", "/processes/echo/execution"),
             ("GET", "/jobs"), ("GET", "/jobs/x"), ("DELETE", "/jobs/x"), ("GET", "/jobs/x/results"),
             ("GET", "/jobs/x/results/out"), ("GET", "/jobs/x/logs"), ("GET", "/jobs/x/script"),
             ("GET", "/nothing-here"), ("POST", "/")]
Client = Callable[..., Awaitable[TestClient]]


async def deploy_probe(request: web.Request) -> web.Response:
    """Stands in for Part 2's deploy handler: what it gets from require_deploy."""
    require_deploy(principal(request))
    return web.json_response({"deployer": principal(request).subject})


@pytest.fixture
async def client(aiohttp_client: Client, settings: Settings, fake_backend: FakeBackend) -> TestClient:
    app = create_app(settings.model_copy(update={"auth": AuthSettings()}), backends={"local": fake_backend})
    app.router.add_post("/test-deploy", deploy_probe)
    return await aiohttp_client(app)


def token(client: TestClient, user: str, scope: str = "hpgc:execute", **kw: Any) -> str:
    return client.app[DEV_ISSUER].mint(dev_issuer_url(client.app[SETTINGS]), user, scope, **kw)


def bearer(client: TestClient, user: str, scope: str = "hpgc:execute", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(client, user, scope, **kw)}"}


async def assert_401(resp: Any, reason: str = "") -> None:
    assert resp.status == 401, await resp.text()
    challenge = resp.headers["WWW-Authenticate"]
    assert re.fullmatch(r'Bearer realm="hpgc", error="invalid_token", error_description="[^"\\]+"', challenge), \
        challenge
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["error"] == "invalid_token"
    assert reason in body["detail"] and reason in challenge, body["detail"]


@pytest.mark.parametrize("path", PUBLIC)
async def test_public_facade_needs_no_token(client: TestClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200, path
    assert "WWW-Authenticate" not in resp.headers


@pytest.mark.parametrize("method, path", PROTECTED)
async def test_everything_else_needs_a_bearer_token(client: TestClient, method: str, path: str) -> None:
    resp = await client.request(method, path, json=ECHO if method == "POST" else None)
    await assert_401(resp, "needs a bearer token")


@pytest.mark.parametrize("raw", [
    "/api.html/static/../../jobs", "/api.html/static/%2e%2e/%2e%2e/jobs", "/api.html/static/..%2f..%2fjobs",
    "/auth/../jobs", "/auth/%2e%2e/jobs", "//jobs", "/api.html/static//jobs", "/conformance/../jobs",
])
async def test_no_spelling_of_a_protected_path_passes_as_public(client: TestClient, raw: str) -> None:
    # raw bytes on the socket: a client library would normalise these paths before sending them
    url = client.make_url("")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(f"GET {raw} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = (await reader.read()).decode(errors="replace")
    writer.close()
    status = int(answer.split(" ", 2)[1])
    assert status in (401, 404), (raw, answer[:300])
    assert '"jobs"' not in answer


async def test_a_valid_token_opens_the_api(client: TestClient) -> None:
    resp = await client.get("/jobs", headers=bearer(client, "alice"))
    assert resp.status == 200 and (await resp.json())["jobs"] == []
    resp = await client.get("/processes", headers={"Authorization": f"bearer {token(client, 'alice')}"})
    assert resp.status == 200, "the scheme name is case-insensitive (RFC 7235)"


@pytest.mark.parametrize("header, reason", [
    ("Basic YWxpY2U6c2VjcmV0", "Basic authorization scheme is not accepted"),
    ("Digest username=alice", "Digest authorization scheme is not accepted"),
    ("Bearer", "malformed"), ("Bearer ", "malformed"), ("Bearer a b", "malformed"), ("Bearer a\tb", "malformed"),
    ("Bearer <script>", "malformed"), ("Token abc", "Token authorization scheme"),
    ("Bearer abc.def.ghi", "not a JWT"), ("Bearer not-a-jwt", "not a JWT"),
])
async def test_bad_authorization_headers(client: TestClient, header: str, reason: str) -> None:
    await assert_401(await client.get("/jobs", headers={"Authorization": header}), reason)


async def test_token_in_query_string_is_not_accepted(client: TestClient) -> None:
    good = token(client, "alice")
    for name in ("access_token", "token"):
        await assert_401(await client.get(f"/jobs?{name}={good}"), "query string")
    resp = await client.post(f"/processes/echo/execution?access_token={good}", json=ECHO)
    await assert_401(resp, "query string")


async def test_two_authorization_headers_are_refused(client: TestClient) -> None:
    good = f"Bearer {token(client, 'alice')}"
    resp = await client.get("/jobs", headers=[("Authorization", good), ("Authorization", good)])
    await assert_401(resp, "one Authorization header")


async def test_forged_and_expired_tokens_over_http(client: TestClient) -> None:
    iss = dev_issuer_url(client.app[SETTINGS])
    now = int(time.time())
    claims = {"iss": iss, "sub": "alice", "aud": "hpgc", "exp": now + 600, "scope": "hpgc:admin hpgc:execute",
              "preferred_username": "alice"}
    await assert_401(await client.get("/jobs", headers={"Authorization": f"Bearer {forge({'alg': 'none'}, claims)}"}),
                     "algorithm")
    expired = bearer(client, "alice", ttl=-3600)
    await assert_401(await client.get("/jobs", headers=expired), "expired")
    head, _, sig = token(client, "alice").split(".")
    from tests.fake_issuer import b64json

    tampered = f"{head}.{b64json({**claims, 'sub': 'bob'})}.{sig}"
    await assert_401(await client.get("/jobs", headers={"Authorization": f"Bearer {tampered}"}), "signature")
    foreign = client.app[DEV_ISSUER].mint("https://evil.example/auth", "alice", "hpgc:execute")
    await assert_401(await client.get("/jobs", headers={"Authorization": f"Bearer {foreign}"}), "not trusted")
    wrong_aud = client.app[DEV_ISSUER].mint(iss, "alice", "hpgc:execute", audience="other-service")
    await assert_401(await client.get("/jobs", headers={"Authorization": f"Bearer {wrong_aud}"}), "'aud'")


async def test_missing_execute_permission_is_403_insufficient_scope(client: TestClient) -> None:
    resp = await client.get("/jobs", headers=bearer(client, "alice", scope="openid profile"))
    assert resp.status == 403
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="hpgc", error="insufficient_scope"')
    assert 'scope="hpgc:execute"' in resp.headers["WWW-Authenticate"]
    body = await resp.json()
    assert body["error"] == "insufficient_scope" and body["scope"] == "hpgc:execute" and body["status"] == 403


async def test_require_deploy_gives_403_insufficient_scope(client: TestClient) -> None:
    resp = await client.post("/test-deploy", headers=bearer(client, "alice", scope="hpgc:execute"))
    assert resp.status == 403, await resp.text()
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    assert (await resp.json())["scope"] == "hpgc:deploy"
    resp = await client.post("/test-deploy", headers=bearer(client, "alice", scope="hpgc:execute hpgc:deploy"))
    assert resp.status == 200 and (await resp.json())["deployer"] == "dev:alice"
    resp = await client.post("/test-deploy", headers=bearer(client, "root2", scope="hpgc:admin"))
    assert resp.status == 200


async def test_unmapped_user_is_a_clear_403(client: TestClient) -> None:
    for user in ("root", "x;reboot"):
        resp = await client.get("/jobs", headers=bearer(client, user))
        assert resp.status == 403, user
        body = await resp.json()
        assert body["error"] == "unmapped_user" and "Unix" in body["title"], body
        assert "WWW-Authenticate" not in resp.headers, "a good token for an unknown person is no token problem"


async def _job(client: TestClient, user: str, process: str = "echo", inputs: dict | None = None) -> str:
    resp = await client.post(f"/processes/{process}/execution", json={"inputs": inputs or ECHO["inputs"]},
                             headers={**bearer(client, user), "Prefer": "respond-async"})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["jobID"])


async def _final(client: TestClient, job_id: str, user: str) -> dict:
    """The job's status document once the job service says it is final (it wakes on the change itself)."""
    await client.app[JOBS].wait(job_id, timeout=10)
    doc = await (await client.get(f"/jobs/{job_id}", headers=bearer(client, user))).json()
    assert doc["status"] in ("successful", "failed", "dismissed"), doc
    return doc


async def test_user_b_cannot_see_or_touch_user_a_jobs(client: TestClient, fake_backend: FakeBackend) -> None:
    a_done = await _job(client, "alice")
    a_running = await _job(client, "alice", "sleep", {"seconds": 60})
    await _final(client, a_done, "alice")
    assert fake_backend.specs[a_done].unix_user == "alice", "jobs run as the token's Unix account"
    bob = bearer(client, "bob")
    for job in (a_done, a_running):
        for method, path in [("GET", f"/jobs/{job}"), ("GET", f"/jobs/{job}/results"),
                             ("GET", f"/jobs/{job}/results/stringOutput"), ("GET", f"/jobs/{job}/logs"),
                             ("GET", f"/jobs/{job}/script"), ("DELETE", f"/jobs/{job}")]:
            resp = await client.request(method, path, headers=bob)
            assert resp.status == 404, (method, path, resp.status)
            body = await resp.json()
            assert body["type"] == f"{EXC}/no-such-job", body
            assert "alice" not in await resp.text()
    # the failed dismiss left alice's job alone, and she still reads her own
    assert (await _final(client, a_done, "alice"))["status"] == "successful"
    status = await (await client.get(f"/jobs/{a_running}", headers=bearer(client, "alice"))).json()
    assert status["status"] in ("accepted", "running")
    assert a_running not in [c for c in fake_backend.cancelled]
    results = await client.get(f"/jobs/{a_done}/results", headers=bearer(client, "alice"))
    assert results.status == 200 and (await results.json())["stringOutput"] == "hello"


async def test_job_list_shows_only_ones_own_jobs_but_all_to_an_admin(client: TestClient) -> None:
    a = await _job(client, "alice")
    b = await _job(client, "bob")

    async def listed(user: str, scope: str = "hpgc:execute") -> set[str]:
        resp = await client.get("/jobs", headers=bearer(client, user, scope))
        assert resp.status == 200
        return {j["jobID"] for j in (await resp.json())["jobs"]}

    assert await listed("alice") == {a}
    assert await listed("bob") == {b}
    assert await listed("carol") == set()
    assert await listed("operator", "hpgc:admin") == {a, b}
    admin = bearer(client, "operator", "hpgc:admin")
    assert (await client.get(f"/jobs/{a}", headers=admin)).status == 200
    resp = await client.delete(f"/jobs/{b}", headers=admin)
    assert resp.status == 200 and (await resp.json())["status"] == "dismissed"


async def test_same_user_name_from_two_sessions_is_the_same_owner(client: TestClient) -> None:
    job = await _job(client, "alice")
    assert (await client.get(f"/jobs/{job}", headers=bearer(client, "alice", ttl=60))).status == 200


async def test_openapi_security(client: TestClient) -> None:
    doc = await (await client.get("/api")).json()
    validate_openapi(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert doc["security"] == [{"bearerAuth": []}]
    for path in ("/", "/conformance", "/api", "/api.html", "/auth/jwks", "/auth/.well-known/openid-configuration"):
        assert doc["paths"][path]["get"]["security"] == [], path
    for path, method in [("/jobs", "get"), ("/jobs/{jobId}", "delete"), ("/processes/{processId}/execution", "post")]:
        op = doc["paths"][path][method]
        assert "security" not in op, "protected operations inherit the global requirement"
        assert {"401", "403"} <= set(op["responses"])
    assert "oauth2" not in doc["components"]["securitySchemes"], "the dev issuer has no authorization endpoint"


async def test_dev_issuer_publishes_discovery_and_jwks(client: TestClient) -> None:
    meta = await (await client.get("/auth/.well-known/openid-configuration")).json()
    assert meta["issuer"] == dev_issuer_url(client.app[SETTINGS])
    assert meta["jwks_uri"] == meta["issuer"] + "/jwks"
    jwks = await (await client.get("/auth/jwks")).json()
    assert len(jwks["keys"]) == 1 and "d" not in jwks["keys"][0]


async def test_auth_disabled_means_anonymous_admin(client: TestClient, aiohttp_client: Client,
                                                   settings: Settings, fake_backend: FakeBackend) -> None:
    open_client = await aiohttp_client(create_app(settings, backends={"local": fake_backend}))
    assert (await open_client.get("/jobs")).status == 200
    assert (await open_client.get("/auth/jwks")).status == 404, "no dev issuer without auth"
    doc = await (await open_client.get("/api")).json()
    assert doc["components"]["securitySchemes"] == {} and "security" not in doc


async def test_unreachable_issuer_is_503_with_retry_after(aiohttp_client: Client, settings: Settings,
                                                          fake_backend: FakeBackend) -> None:
    issuer = "http://127.0.0.1:9/realms/gone"
    auth = AuthSettings(issuers=[IssuerSettings(issuer=issuer, timeout_s=2)])
    client = await aiohttp_client(create_app(settings.model_copy(update={"auth": auth}),
                                             backends={"local": fake_backend}))
    assert (await client.get("/auth/jwks")).status in (401, 404), "no dev issuer once an issuer is configured"
    now = int(time.time())
    tok = forge({"alg": "RS256", "kid": "k"}, {"iss": issuer, "sub": "a", "aud": "hpgc", "exp": now + 60}, b"s")
    resp = await client.get("/jobs", headers={"Authorization": f"Bearer {tok}"})
    assert resp.status == 503 and resp.headers["Retry-After"] == "10"
    assert "unreachable" in (await resp.json())["detail"]
