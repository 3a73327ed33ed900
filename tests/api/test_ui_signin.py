"""Browser sign-in (hpgc/api/ui/signin.py, sessions.py, hpgc/auth/dev_signin.py): the code flow with PKCE at the
development issuer, the session cookie, the same identity and permissions as a bearer token, CSRF on every POST,
sign-out, and HTML without a session redirected to sign in while JSON keeps its 401."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend
from tests.api.ui_helpers import HTML, csrf_of, sign_in


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings,
                 fake_backend: FakeBackend) -> TestClient:
    return await aiohttp_client(create_app(settings.model_copy(update={"auth": AuthSettings()}),
                                           backends={"local": fake_backend}))


async def test_a_page_without_a_session_goes_to_sign_in_and_json_keeps_its_401(client: TestClient) -> None:
    page = await client.get("/jobs?status=running", headers=HTML, allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/ui/signin?next=%2Fjobs%3Fstatus%3Drunning"
    assert (await client.get("/jobs", allow_redirects=False)).status == 401
    assert (await client.get("/jobs?f=json", headers=HTML, allow_redirects=False)).status == 401


async def test_sign_in_gives_a_session_with_the_tokens_identity(client: TestClient) -> None:
    await sign_in(client, "alice")
    page = await client.get("/jobs?f=html")
    assert page.status == 200 and "alice" in await page.text()
    run = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                            headers={"Prefer": "respond-async", "X-CSRF-Token": await csrf_of(client)})
    assert run.status == 201, await run.text()
    listed = await (await client.get("/jobs")).json()
    assert [j["jobID"] for j in listed["jobs"]] == [(await run.json())["jobID"]]


async def test_permissions_are_the_tokens(client: TestClient) -> None:
    csrf = await sign_in(client, "carol", perms=("execute",))
    refused = await client.post("/processes", data=b"cwlVersion: v1.2", headers={
        "Content-Type": "application/cwl+yaml", "X-CSRF-Token": csrf})
    assert refused.status == 403 and (await refused.json())["error"] == "insufficient_scope"


async def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(client: TestClient) -> None:
    csrf = await sign_in(client)
    body = {"inputs": {"stringInput": "x"}}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
                    {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}):
        resp = await client.post("/processes/echo/execution", json=body, headers=headers)
        assert resp.status == 403 and (await resp.json())["error"] == "csrf", headers
    form = await client.post("/ui/signout", data={"csrf": "nope"}, allow_redirects=False)
    assert form.status == 403
    assert (await client.get("/jobs")).status == 200  # still signed in
    ok = await client.post("/processes/echo/execution", json=body, headers={"X-CSRF-Token": csrf, "Origin":
                                                                            str(client.make_url("")).rstrip("/")})
    assert ok.status in (200, 201), await ok.text()


async def test_sign_out_ends_the_session(client: TestClient) -> None:
    csrf = await sign_in(client)
    out = await client.post("/ui/signout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/ui/signedout"
    assert 'hpgc_session=""' in out.headers["Set-Cookie"] or "Max-Age=0" in out.headers["Set-Cookie"]
    assert (await client.get("/jobs", allow_redirects=False)).status == 401
    assert (await client.get("/jobs", headers=HTML, allow_redirects=False)).status == 303


async def test_the_callback_needs_the_browser_that_started_it(client: TestClient) -> None:
    start = await client.get("/ui/signin", allow_redirects=False)
    state = start.headers["Location"].split("state=")[1].split("&")[0]
    client.session.cookie_jar.clear()
    resp = await client.get(f"/ui/callback?code=x&state={state}", allow_redirects=False)
    assert resp.status == 400 and "hpgc_session" not in resp.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "jobs"])
async def test_no_open_redirect_after_sign_in(client: TestClient, target: str) -> None:
    await sign_in(client, next_path=target, lands="/")


async def test_the_dev_sign_in_page_answers_only_this_machine(client: TestClient) -> None:
    start = await client.get("/ui/signin", allow_redirects=False)
    query = start.headers["Location"].split("?", 1)[1]
    resp = await client.get(f"/auth/authorize?{query}", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 403 and "this machine" in await resp.text()
    other = query.replace("ui%2Fcallback", "elsewhere").replace("127.0.0.1", "evil.example")
    assert (await client.get(f"/auth/authorize?{other}")).status == 400


async def test_a_used_or_wrong_code_gives_no_token(client: TestClient) -> None:
    start = await client.get("/ui/signin", allow_redirects=False)
    query = start.headers["Location"].split("?", 1)[1]
    params = {k: v[0] for k, v in parse_qs(query).items()}
    done = await client.post("/auth/authorize", data={**params, "user": "mallory", "perm": "admin"},
                             allow_redirects=False)
    code = parse_qs(done.headers["Location"].split("?", 1)[1])["code"][0]
    token = await client.post("/auth/token", data={"grant_type": "authorization_code", "code": code,
                                                   "code_verifier": "x" * 50, "client_id": params["client_id"],
                                                   "redirect_uri": params["redirect_uri"]})
    assert token.status == 400 and (await token.json())["error"] == "invalid_grant"
    again = await client.get(f"/ui/callback?{done.headers['Location'].split('?', 1)[1]}", allow_redirects=False)
    assert again.status == 403  # the wrong verifier used the code up
