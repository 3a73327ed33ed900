"""hpgc.client's HTTP layer against small servers: the token never leaves the server's origin, errors
become one line with a meaningful exit code, a cached token is refreshed, the cache is private."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hpgc.client import tokens
from hpgc.client.errors import AuthError, ProblemError, Unreachable
from hpgc.client.http import StaticToken, Transport
from hpgc.client.login import CachedToken, device_login
from hpgc.client.polling import Backoff


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("HPGC_TOKEN", raising=False)
    return tmp_path / "cfg"


def recorder(seen: list[tuple[str, str | None]], redirect_to: str | None = None) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        if redirect_to is not None and request.path == "/jobs":
            raise web.HTTPFound(redirect_to)
        if request.path == "/here":
            raise web.HTTPTemporaryRedirect("/jobs/moved")
        return web.json_response({"jobs": [], "links": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def test_a_redirect_to_another_host_does_not_carry_the_token(aiohttp_server) -> None:
    other_seen: list[tuple[str, str | None]] = []
    other = await aiohttp_server(recorder(other_seen))
    seen: list[tuple[str, str | None]] = []
    server = await aiohttp_server(recorder(seen, redirect_to=str(other.make_url("/stolen"))))
    http = Transport(str(server.make_url("")), StaticToken("s3cret"))
    try:
        resp = await http.request("GET", "/jobs")
    finally:
        await http.close()
    assert resp.status == 200
    assert seen == [("/jobs", "Bearer s3cret")]
    assert other_seen == [("/stolen", None)], "the token went to another origin"


async def test_a_redirect_on_the_same_origin_keeps_the_token(aiohttp_server) -> None:
    seen: list[tuple[str, str | None]] = []
    server = await aiohttp_server(recorder(seen))
    http = Transport(str(server.make_url("")), StaticToken("s3cret"))
    try:
        await http.request("GET", "/here")
    finally:
        await http.close()
    assert seen == [("/here", "Bearer s3cret"), ("/jobs/moved", "Bearer s3cret")]


async def test_an_absolute_link_elsewhere_gets_no_token(aiohttp_server) -> None:
    other_seen: list[tuple[str, str | None]] = []
    other = await aiohttp_server(recorder(other_seen))
    server = await aiohttp_server(recorder([]))
    http = Transport(str(server.make_url("")), StaticToken("s3cret"))
    try:
        await http.request("GET", str(other.make_url("/file")))
    finally:
        await http.close()
    assert other_seen == [("/file", None)]


@pytest.mark.parametrize(("status", "exit_code"), [(400, 2), (404, 2), (401, 3), (403, 3), (500, 1), (503, 4)])
async def test_problems_are_one_line_with_their_exit_code(aiohttp_server, status: int, exit_code: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"type": "t", "title": "No such job", "status": status, "detail": "job 'x' does "
                                  "not exist"}, status=status, content_type="application/problem+json")

    app = web.Application()
    app.router.add_get("/jobs/x", handler)
    info = await _refused(await aiohttp_server(app), "/jobs/x", StaticToken("t"))
    assert str(info.value) == "No such job: job 'x' does not exist"
    assert info.value.exit_code == exit_code


async def test_a_non_json_error_still_reads_as_one_line(aiohttp_server) -> None:
    app = web.Application()
    app.router.add_get("/", lambda r: web.Response(status=502, text="<html>\n<b>Bad gateway</b>\n</html>"))
    info = await _refused(await aiohttp_server(app), "/")
    assert str(info.value) == "Bad Gateway: <html> <b>Bad gateway</b> </html>"
    assert info.value.exit_code == 4


async def test_a_401_without_any_token_says_how_to_log_in(aiohttp_server) -> None:
    app = web.Application()
    app.router.add_get("/jobs", lambda r: web.json_response({"title": "Unauthorized", "status": 401}, status=401))
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    http = Transport(url, CachedToken(url))
    try:
        with pytest.raises(AuthError, match=f"not logged in to {url}: run `hpgc login {url}`"):
            await http.request("GET", "/jobs")
    finally:
        await http.close()


async def test_a_closed_port_is_unreachable_exit_4(unused_tcp_port: int) -> None:
    http = Transport(f"http://127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(Unreachable) as info:
            await http.request("GET", "/jobs")
    finally:
        await http.close()
    assert info.value.exit_code == 4
    assert str(info.value).startswith(f"cannot reach http://127.0.0.1:{unused_tcp_port}/jobs: ")


def token_endpoint(forms: list[dict[str, str]], answer: dict) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        forms.append(dict(await request.post()))
        return web.json_response(answer)

    async def jobs(request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") == "Bearer new"
        return web.json_response({"jobs": []} if ok else {"title": "Unauthorized"}, status=200 if ok else 401)

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/jobs", jobs)
    return app


async def test_an_expired_cached_token_is_refreshed_and_saved(aiohttp_server) -> None:
    forms: list[dict[str, str]] = []
    server = await aiohttp_server(token_endpoint(forms, {"access_token": "new", "expires_in": 300}))
    url = str(server.make_url("")).rstrip("/")
    tokens.save(url, {"access_token": "old", "refresh_token": "r1", "expires_at": time.time() - 1,
                      "token_endpoint": f"{url}/token", "client_id": "cli"})
    http = Transport(url, CachedToken(url))
    try:
        assert (await http.request("GET", "/jobs")).json() == {"jobs": []}
    finally:
        await http.close()
    assert forms == [{"grant_type": "refresh_token", "refresh_token": "r1", "client_id": "cli"}]
    entry = tokens.load(url)
    assert entry is not None and entry["access_token"] == "new" and entry["refresh_token"] == "r1"
    assert stat.S_IMODE(tokens.cache_file(url).stat().st_mode) == 0o600


async def test_a_401_triggers_one_refresh_then_a_retry(aiohttp_server) -> None:
    forms: list[dict[str, str]] = []
    server = await aiohttp_server(token_endpoint(forms, {"access_token": "new"}))
    url = str(server.make_url("")).rstrip("/")
    tokens.save(url, {"access_token": "revoked", "refresh_token": "r1", "token_endpoint": f"{url}/token"})
    http = Transport(url, CachedToken(url))
    try:
        assert (await http.request("GET", "/jobs")).status == 200
    finally:
        await http.close()
    assert len(forms) == 1


def test_the_cache_is_private_even_in_an_old_open_folder(config_home: Path) -> None:
    (config_home / "hpgc" / "tokens").mkdir(parents=True, mode=0o755)
    (config_home / "hpgc").chmod(0o755)
    path = tokens.save("http://h:1", {"access_token": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert tokens.load("http://h:1") == {"access_token": "x", "server": "http://h:1"}
    assert tokens.load("http://h:2") is None, "each server has its own entry"
    assert tokens.remove("http://h:1") and tokens.load("http://h:1") is None


def test_backoff_grows_resets_and_respects_retry_after() -> None:
    b = Backoff(first=0.25, factor=2, most=1.0)
    assert [b.observe(False) for _ in range(4)] == [0.5, 1.0, 1.0, 1.0]
    assert b.observe(True) == 0.25
    assert b.observe(True, "7") == 7.0
    assert b.observe(True, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.25


def device_issuer(answers: list[tuple[int, dict]], seen: list[dict]) -> web.Application:
    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response({"device_authorization_endpoint": f"{base}/device", "token_endpoint": f"{base}/token"})

    async def device(request: web.Request) -> web.Response:
        seen.append(dict(await request.post()))
        return web.json_response({"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "v",
                                  "interval": 0, "expires_in": 60})

    async def token(request: web.Request) -> web.Response:
        seen.append(dict(await request.post()))
        status, body = answers.pop(0)
        return web.json_response(body, status=status)

    async def resource(request: web.Request) -> web.Response:
        return web.json_response({"authorization_servers": [f"http://{request.host}/iss"]})

    app = web.Application()
    app.router.add_get("/iss/.well-known/openid-configuration", discovery)
    app.router.add_get("/.well-known/oauth-protected-resource", resource)
    app.router.add_post("/device", device)
    app.router.add_post("/token", token)
    return app


async def test_device_login_waits_while_pending_then_caches_the_tokens(aiohttp_server) -> None:
    seen: list[dict] = []
    answers = [(400, {"error": "authorization_pending"}), (400, {"error": "authorization_pending"}),
               (200, {"access_token": "tok", "refresh_token": "ref", "expires_in": 60, "scope": "hpgc:execute"})]
    server = await aiohttp_server(device_issuer(answers, seen))
    url = str(server.make_url("")).rstrip("/")
    shown: list[dict] = []
    entry = await device_login(url, scope="hpgc:execute", client_id="cli", show=shown.append)
    assert shown[0]["user_code"] == "ABCD-EFGH"
    assert seen[0] == {"client_id": "cli", "scope": "hpgc:execute"}
    assert seen[1:] == [{"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "dc",
                         "client_id": "cli"}] * 3
    assert entry["issuer"] == f"{url}/iss" and entry["token_endpoint"] == f"{url}/token"
    cached = json.loads(tokens.cache_file(url).read_text())
    assert cached["access_token"] == "tok" and cached["refresh_token"] == "ref"


@pytest.mark.parametrize(("error", "message"), [("access_denied", "login failed: access_denied"),
                                                ("expired_token", "login failed: expired_token")])
async def test_device_login_stops_on_denial_or_expiry(aiohttp_server, error: str, message: str) -> None:
    server = await aiohttp_server(device_issuer([(400, {"error": error})], []))
    url = str(server.make_url("")).rstrip("/")
    with pytest.raises(AuthError, match=message):
        await device_login(url, show=lambda g: None)
    assert not tokens.cache_file(url).exists()


async def test_device_login_without_resource_metadata_asks_for_the_issuer(aiohttp_server) -> None:
    server = await aiohttp_server(web.Application())
    url = str(server.make_url("")).rstrip("/")
    with pytest.raises(AuthError, match="does not say which issuer it trusts"):
        await device_login(url, show=lambda g: None)


async def _refused(server: Any, path: str, credentials: Any = None) -> pytest.ExceptionInfo[ProblemError]:
    """GET path through the client's transport, which must raise a ProblemError."""
    http = Transport(str(server.make_url("")), credentials) if credentials else Transport(str(server.make_url("")))
    try:
        with pytest.raises(ProblemError) as info:
            await http.request("GET", path)
    finally:
        await http.close()
    return info
