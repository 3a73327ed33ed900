"""Identity through the HTTP API: which Host links may carry, Range on result files, introspection answers
and owners (tests/fake_issuer.py over real HTTP), and Unix names refused when the token is mapped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.api.keys import SETTINGS
from hpgc.auth.dev_issuer import dev_issuer_url
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.config import Settings
from hpgc.models.run import JobRef
from tests.api.fake_backend import FakeBackend
from tests.fake_issuer import CLIENT, FakeIssuer

Client = Callable[..., Awaitable[TestClient]]
ECHO = {"inputs": {"stringInput": "hello"}}
REFUSED_HOST = ("this server does not answer to the host named in the Host header; use one of its addresses "
                "(administrators: set base_url, or list the name in allowed_hosts)")


def authority(client: TestClient) -> str:
    return f"127.0.0.1:{client.port}"


async def assert_bad_host(resp: Any) -> None:
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert "Location" not in resp.headers and "Link" not in resp.headers
    body = await resp.json()
    assert body["detail"] == REFUSED_HOST and body["status"] == 400
    assert "evil" not in await resp.text()


# Host and base_url ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/conformance"), ("GET", "/api"),
                                          ("GET", "/processes"), ("GET", "/jobs"), ("GET", "/no/such/page"),
                                          ("POST", "/processes/echo/execution"), ("DELETE", "/")])
async def test_a_foreign_host_is_400_on_every_path(client: TestClient, method: str, path: str) -> None:
    for host in ("evil.example", f"evil.example:{client.port}", "127.0.0.1:1", "localhost.evil.example",
                 "127.0.0.1@evil.example", "a b", "evil.example/x"):
        resp = await client.request(method, path, headers={"Host": host}, json=ECHO if method == "POST" else None)
        await assert_bad_host(resp)


async def test_async_execute_location_follows_an_allowed_host_only(client: TestClient,
                                                                   fake_backend: FakeBackend) -> None:
    for host in (authority(client), f"localhost:{client.port}", f"[::1]:{client.port}",
                 f"LOCALHOST:{client.port}"):
        resp = await client.post("/processes/echo/execution", json=ECHO,
                                 headers={"Host": host, "Prefer": "respond-async"})
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["jobID"]
        assert resp.headers["Location"] == f"http://{host.lower()}/jobs/{job_id}"
    submitted = len(fake_backend.specs)
    resp = await client.post("/processes/echo/execution", json=ECHO,
                             headers={"Host": "evil.example", "Prefer": "respond-async"})
    await assert_bad_host(resp)
    assert len(fake_backend.specs) == submitted, "no job was created for the refused request"


async def test_forwarded_headers_are_not_trusted(client: TestClient) -> None:
    resp = await client.get("/", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                                          "Forwarded": "host=evil.example;proto=https"})
    assert resp.status == 200
    hrefs = [link["href"] for link in (await resp.json())["links"]]
    assert hrefs and all(h.startswith(f"http://{authority(client)}/") for h in hrefs), hrefs


async def raw_get(client: TestClient, head: str, version: str = "1.1") -> tuple[int, str]:
    """GET / with exactly these header lines (a client library would add or merge Host itself)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(f"GET / HTTP/{version}\r\n{head}Connection: close\r\n\r\n".encode())
    await writer.drain()
    answer = (await reader.read()).decode(errors="replace")
    writer.close()
    return int(answer.split(" ", 2)[1]), answer


async def test_missing_or_doubled_host_is_400(client: TestClient) -> None:
    status, answer = await raw_get(client, "", "1.0")
    assert status == 400 and '"detail": "send a Host header"' in answer
    status, answer = await raw_get(client, f"Host: {authority(client)}\r\nHost: evil.example\r\n")
    assert status == 400 and "evil" not in answer
    status, _ = await raw_get(client, f"Host: {authority(client)}\r\n")
    assert status == 200


async def test_base_url_makes_every_link_and_location(aiohttp_client: Client, settings: Settings,
                                                      fake_backend: FakeBackend) -> None:
    configured = settings.model_copy(update={"base_url": "https://hpc.example.org/ogc/"})
    client = await aiohttp_client(create_app(configured, backends={"local": fake_backend}))
    resp = await client.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    assert resp.headers["Location"] == f"https://hpc.example.org/ogc/jobs/{job_id}"
    links = [link["href"] for link in (await (await client.get("/")).json())["links"]]
    assert all(h.startswith("https://hpc.example.org/ogc/") for h in links), links
    # the proxy may pass the public name or the upstream address as Host; anything else is still refused
    assert (await client.get("/", headers={"Host": "hpc.example.org"})).status == 200
    await assert_bad_host(await client.get("/", headers={"Host": "evil.example"}))
    # without a Host nothing of the request goes into links: answered
    assert (await raw_get(client, "", "1.0"))[0] == 200


async def test_allowed_hosts_replace_the_defaults(aiohttp_client: Client, settings: Settings,
                                                  fake_backend: FakeBackend) -> None:
    configured = settings.model_copy(update={"allowed_hosts": ["hpc.example.org", "gw.example.org:8443"]})
    client = await aiohttp_client(create_app(configured, backends={"local": fake_backend}))
    for host in ("hpc.example.org", "hpc.example.org:80", "gw.example.org:8443"):
        resp = await client.post("/processes/echo/execution", json=ECHO,
                                 headers={"Host": host, "Prefer": "respond-async"})
        assert resp.status == 201
        assert resp.headers["Location"] == f"http://{host}/jobs/{(await resp.json())['jobID']}"
    for host in (authority(client), "gw.example.org", "hpc.example.org:8443"):
        await assert_bad_host(await client.get("/", headers={"Host": host}))


@pytest.mark.parametrize("bad", ["*.example.org", "https://hpc.example.org", "hpc.example.org/ogc", ""])
def test_allowed_hosts_are_host_and_port_only(bad: str) -> None:
    with pytest.raises(ValidationError, match="host"):
        Settings(allowed_hosts=[bad])


# Range ----------------------------------------------------------------------------------------------------
async def result_path(client: TestClient) -> str:
    resp = await client.post("/processes/echo/execution", json={**ECHO, "response": "document"})
    href = (await resp.json())["report"]["href"]  # the file holds "report for hello": 16 bytes
    return "/" + href.split("://", 1)[1].split("/", 1)[1]


@pytest.mark.parametrize("header, status, content_range, body", [
    ("bytes=0-5", 206, "bytes 0-5/16", b"report"),
    ("bytes=11-", 206, "bytes 11-15/16", b"hello"),
    ("bytes=11-999999", 206, "bytes 11-15/16", b"hello"),
    ("bytes=-5", 206, "bytes 11-15/16", b"hello"),
    ("bytes=-999999", 206, "bytes 0-15/16", b"report for hello"),
    ("items=0-5", 200, None, b"report for hello"),
])
async def test_ranges_served(client: TestClient, header: str, status: int, content_range: str | None,
                             body: bytes) -> None:
    resp = await client.get(await result_path(client), headers={"Range": header})
    assert resp.status == status
    assert resp.headers.get("Content-Range") == content_range
    assert resp.headers["Content-Length"] == str(len(body)) and await resp.read() == body
    assert resp.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=--5", "bytes=5-3", "bytes=abc", "bytes=-0", "bytes=16-",
                                    "bytes=100-200", "bytes=0-1,4-5", "bytes=", "bytes"])
async def test_bad_ranges_are_416_with_the_size(client: TestClient, header: str) -> None:
    resp = await client.get(await result_path(client), headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == "bytes */16"
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 416


async def test_two_range_headers_are_two_ranges(client: TestClient) -> None:
    resp = await client.get(await result_path(client), headers=[("Range", "bytes=0-1"), ("Range", "bytes=2-3")])
    assert resp.status == 416 and resp.headers["Content-Range"] == "bytes */16"


async def test_head_ignores_range(client: TestClient) -> None:
    resp = await client.head(await result_path(client), headers={"Range": "bytes=--5"})
    assert resp.status == 200 and resp.headers["Content-Length"] == "16"


async def test_ranges_of_an_empty_file(client: TestClient, fake_backend: FakeBackend) -> None:
    outputs = fake_backend.outputs

    async def empty_report(job: JobRef) -> dict[str, Any]:
        out = await outputs(job)
        fake_backend.files[(job.job_id, "/jobs/report.txt")] = b""
        return out

    fake_backend.outputs = empty_report  # type: ignore[method-assign]
    path = await result_path(client)
    resp = await client.get(path, headers={"Range": "bytes=-5"})
    assert resp.status == 200 and resp.headers["Content-Length"] == "0" and "Content-Range" not in resp.headers
    for header in ("bytes=0-", "bytes=0-0", "bytes=-0"):
        resp = await client.get(path, headers={"Range": header})
        assert resp.status == 416 and resp.headers["Content-Range"] == "bytes */0", header


# introspection and owners ---------------------------------------------------------------------------------
@pytest.fixture
async def introspected(fake: FakeIssuer, aiohttp_client: Client, settings: Settings,
                       fake_backend: FakeBackend) -> TestClient:
    issuer = IssuerSettings(issuer=fake.url, client_id=CLIENT[0], client_secret=CLIENT[1], introspection_cache_s=0)
    auth = AuthSettings(issuers=[issuer], identity={"mode": "none"})
    return await aiohttp_client(create_app(settings.model_copy(update={"auth": auth}),
                                           backends={"local": fake_backend}))


@pytest.mark.parametrize("drop, detail", [
    ("exp", "the introspection answer gives the token no expiry (exp)"),
    ("iss", "the introspection answer does not name this issuer (iss)"),
    ("aud", "the introspection answer names no audience (aud), and this server needs one of: hpgc"),
    ("sub", "the token names no subject (sub): this server knows users by their sub claim only"),
])
async def test_introspection_answers_missing_a_member_are_401(introspected: TestClient, fake: FakeIssuer,
                                                             drop: str, detail: str) -> None:
    answer = {"active": True, "sub": "u-7", "username": "u-8", "scope": "hpgc:execute", "iss": fake.url,
              "aud": "hpgc", "exp": int(time.time()) + 300}
    fake.active_tokens["tok"] = answer
    assert (await introspected.get("/jobs", headers={"Authorization": "Bearer tok"})).status == 200
    fake.active_tokens["tok"] = {k: v for k, v in answer.items() if k != drop}
    resp = await introspected.get("/jobs", headers={"Authorization": "Bearer tok"})
    assert resp.status == 401
    assert (await resp.json())["detail"] == detail
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_a_username_never_becomes_an_owner(introspected: TestClient, fake: FakeIssuer,
                                                 fake_backend: FakeBackend) -> None:
    exp = int(time.time()) + 300
    base = {"active": True, "scope": "hpgc:execute", "iss": fake.url, "aud": "hpgc", "exp": exp}
    fake.active_tokens["victim"] = {**base, "sub": "u-1"}
    fake.active_tokens["attacker"] = {**base, "username": "u-1"}  # no sub: once the owner "u-1" by username
    resp = await introspected.post("/processes/echo/execution", json=ECHO,
                                   headers={"Authorization": "Bearer victim", "Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    resp = await introspected.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer attacker"})
    assert resp.status == 401 and "sub" in (await resp.json())["detail"]


# Unix names ------------------------------------------------------------------------------------------------
@pytest.fixture
async def authed(aiohttp_client: Client, settings: Settings, fake_backend: FakeBackend) -> TestClient:
    return await aiohttp_client(create_app(settings.model_copy(update={"auth": AuthSettings()}),
                                           backends={"local": fake_backend}))


async def test_a_name_the_slurm_script_would_refuse_is_403_at_request_time(authed: TestClient,
                                                                          fake_backend: FakeBackend) -> None:
    dev = authed.app[DEV_ISSUER]
    tok = dev.mint(dev_issuer_url(authed.app[SETTINGS]), "Alice", "hpgc:execute")
    resp = await authed.post("/processes/echo/execution", json=ECHO,
                             headers={"Authorization": f"Bearer {tok}", "Prefer": "respond-async"})
    assert resp.status == 403
    body = await resp.json()
    assert body["error"] == "unmapped_user"
    assert body["detail"] == (
        "the template {preferred_username} gives 'Alice', which cannot be a Unix account here: a Unix user "
        "name here has only lowercase letters, digits, '_', '.' and '-', starting with a letter or '_', at "
        "most 32 characters")
    assert fake_backend.specs == {}
    tok = dev.mint(dev_issuer_url(authed.app[SETTINGS]), "alice", "hpgc:execute")
    resp = await authed.post("/processes/echo/execution", json=ECHO,
                             headers={"Authorization": f"Bearer {tok}", "Prefer": "respond-async"})
    assert resp.status == 201
