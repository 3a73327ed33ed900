"""Signing in through the web pages with the development issuer, as a browser would (for the UI tests)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient

HTML = {"Accept": "text/html"}


async def sign_in(client: TestClient, user: str = "alice", perms: tuple[str, ...] = ("execute", "deploy"),
                  next_path: str = "/jobs", lands: str | None = None) -> str:
    """Sign in as `user`; returns the session's CSRF token (the cookie stays in the client's jar)."""
    start = await client.get("/ui/signin", params={"next": next_path}, allow_redirects=False)
    assert start.status == 303, await start.text()
    authorize = urlsplit(start.headers["Location"])
    assert authorize.path == "/auth/authorize"
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    page = await client.get(f"/auth/authorize?{authorize.query}")
    assert page.status == 200 and "User name" in await page.text()
    done = await client.post("/auth/authorize", data=[*params.items(), ("user", user),
                                                      *[("perm", p) for p in perms]], allow_redirects=False)
    assert done.status == 303, await done.text()
    back = urlsplit(done.headers["Location"])
    assert back.path == "/ui/callback"
    landed = await client.get(f"/ui/callback?{back.query}", allow_redirects=False)
    assert landed.status == 303, await landed.text()
    assert landed.headers["Location"] == (lands or next_path)
    cookie = landed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    return await csrf_of(client)


async def csrf_of(client: TestClient, path: str = "/jobs?f=html") -> str:
    html = await (await client.get(path)).text()
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, html[:500]
    return found.group(1)
