"""The guarded client against local aiohttp servers: the "allowed" host is 127.0.0.2 (named in allowed_networks),
the "internal" one 127.0.0.1 (refused like any loopback address), so nothing here leaves the machine."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hpgc.backends.base import BackendError
from hpgc.backends.files import Downloads
from hpgc.net import GuardedClient, OutboundError, OutboundSettings

SECRET = b"internal secret: do not show"
MIB = 1024 * 1024


@dataclass
class Site:
    url: str
    hits: list[str] = field(default_factory=list)


async def _serve(host: str, handler: web.RequestHandler | None = None) -> AsyncIterator[tuple[Site, TestServer]]:
    site = Site("")

    async def record(request: web.Request) -> web.StreamResponse:
        site.hits.append(request.path)
        if handler is not None:
            return await handler(request)
        return web.Response(body=SECRET)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host=host)
    await server.start_server()
    site.url = f"http://{host}:{server.port}"
    yield site, server
    await server.close()


@pytest.fixture
async def internal() -> AsyncIterator[Site]:
    async for site, _ in _serve("127.0.0.1"):
        yield site


@pytest.fixture
async def client() -> AsyncIterator[GuardedClient]:
    c = GuardedClient(OutboundSettings(allowed_networks=["127.0.0.2/32"], timeout_s=5, document_timeout_s=5))
    yield c
    await c.close()


def _outside(handler: web.RequestHandler) -> AsyncIterator[tuple[Site, TestServer]]:
    return _serve("127.0.0.2", handler)


async def test_allowed_host_is_fetched(client: GuardedClient) -> None:
    async for site, _ in _serve("127.0.0.2"):
        assert await client.fetch(f"{site.url}/doc", 1000, "doc") == SECRET


async def test_internal_literal_is_refused_without_a_connection(client: GuardedClient, internal: Site) -> None:
    for url in (f"{internal.url}/x", internal.url.replace("127.0.0.1", "[::ffff:127.0.0.1]") + "/x"):
        with pytest.raises(OutboundError, match="refused by policy") as info:
            await client.fetch(url, 1000, "input")
        assert info.value.refused
    assert internal.hits == []


async def test_internal_name_is_refused_by_the_resolver(client: GuardedClient, internal: Site) -> None:
    with pytest.raises(OutboundError, match="refused by policy: localhost resolves to a loopback") as info:
        await client.fetch(internal.url.replace("127.0.0.1", "localhost") + "/x", 1000, "input")
    assert info.value.refused and internal.hits == []


@pytest.mark.parametrize("target", ["{internal}/x", "http://localhost:{port}/x", "file:///etc/passwd",
                                    "http://[::ffff:127.0.0.1]:{port}/x"])
async def test_a_redirect_to_a_refused_address_is_not_followed(client: GuardedClient, internal: Site,
                                                               target: str) -> None:
    location = target.format(internal=internal.url, port=internal.url.rsplit(":", 1)[1])

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    async for site, _ in _outside(redirect):
        with pytest.raises(OutboundError, match="redirects to a URL or address that is refused by policy") as info:
            await client.fetch(f"{site.url}/start", 1000, "input")
        assert site.hits == ["/start"]
    assert internal.hits == [], "the internal service was never reached"
    assert location not in str(info.value) and "127.0.0.1" not in str(info.value)


async def test_redirects_between_allowed_hosts_are_followed_up_to_the_limit(client: GuardedClient) -> None:
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["tail"] or 0)
        if n < 3:
            raise web.HTTPFound(f"/{n + 1}")
        return web.Response(body=b"landed")

    async for site, _ in _outside(hop):
        assert await client.fetch(f"{site.url}/0", 100, "doc") == b"landed"
        strict = GuardedClient(OutboundSettings(allowed_networks=["127.0.0.2/32"], max_redirects=2))
        with pytest.raises(OutboundError, match="more than 2 redirects"):
            await strict.fetch(f"{site.url}/0", 100, "doc")
        await strict.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_stops_at_the_cap_after_decoding(client: GuardedClient, encoding: str) -> None:
    inflated = 64 * MIB
    zeros = b"\0" * inflated
    bomb = gzip.compress(zeros, 9) if encoding == "gzip" else zlib.compress(zeros, 9)
    assert len(bomb) < 100 * 1024

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": encoding, "Content-Type": "image/tiff"})

    async for site, _ in _outside(serve):
        got = 0
        with pytest.raises(OutboundError, match=f"larger than {MIB} bytes"):
            async for chunk in client.stream(f"{site.url}/bomb", MIB, "input"):
                got += len(chunk)
        assert got <= MIB, "nothing past the cap is handed out"


async def test_a_slow_server_is_time_boxed(client: GuardedClient) -> None:
    never = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000000"})
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await never.wait()  # holds the transfer open until the client gives up
        return resp

    async for site, _ in _outside(trickle):
        quick = GuardedClient(OutboundSettings(allowed_networks=["127.0.0.2/32"], timeout_s=0.5))
        with pytest.raises(OutboundError, match="could not be fetched"):
            async for _ in quick.stream(f"{site.url}/slow", MIB, "input"):
                pass
        await quick.close()


async def test_errors_never_quote_the_answer_nor_tell_closed_from_silent(client: GuardedClient) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500 if request.path == "/500" else 404, body=SECRET)

    async for site, server in _outside(fail):
        for path, status in (("/500", 500), ("/404", 404)):
            with pytest.raises(OutboundError) as info:
                await client.fetch(f"{site.url}{path}", 1000, "input")
            assert str(info.value) == f"input: {site.url}{path} could not be fetched (HTTP {status})"
            assert "internal secret" not in str(info.value) and not info.value.refused
        closed_port = server.port
    # the same server gone: a closed port reads exactly like any other failure to connect
    with pytest.raises(OutboundError) as info:
        await client.fetch(f"http://127.0.0.2:{closed_port}/x", 1000, "input")
    assert str(info.value) == f"input: http://127.0.0.2:{closed_port}/x could not be fetched"


async def test_post_returns_the_status_and_follows_no_redirect(client: GuardedClient, internal: Site) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{internal.url}/landed")

    async for site, _ in _outside(moved):
        assert await client.post(f"{site.url}/hook", b"{}", {}, 5) == 302
    with pytest.raises(OutboundError, match="refused by policy") as info:
        await client.post(f"{internal.url}/hook", b"{}", {}, 5)
    assert info.value.refused and internal.hits == []


async def test_cookies_are_never_carried_between_requests(client: GuardedClient) -> None:
    async def cookies(request: web.Request) -> web.Response:
        resp = web.Response(body=request.headers.get("Cookie", "none").encode())
        resp.set_cookie("session", "alice")
        return resp

    async for site, _ in _outside(cookies):
        assert await client.fetch(f"{site.url}/a", 100, "doc") == b"none"
        assert await client.fetch(f"{site.url}/b", 100, "doc") == b"none"


async def test_a_job_over_the_staging_cap_fails_naming_the_setting() -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 600_000)

    capped = GuardedClient(OutboundSettings(allowed_networks=["127.0.0.2/32"], max_job_bytes=MIB))
    async for site, _ in _outside(serve):
        downloads = Downloads(capped)
        first = b"".join([c async for c in downloads.fetch(f"{site.url}/a", MIB)])
        assert len(first) == 600_000
        got = 0
        with pytest.raises(BackendError, match=r"outbound\.max_job_bytes"):
            async for chunk in downloads.fetch(f"{site.url}/b", MIB):
                got += len(chunk)
        assert len(first) + got <= MIB
        with pytest.raises(BackendError, match="refused by policy"):
            async for _ in Downloads(capped).fetch("http://127.0.0.1:1/x", MIB):
                pass
    await capped.close()
