"""The client's HTTP layer: one aiohttp session, the bearer token sent only to the server's own origin,
redirects followed by hand (so that a redirect to another host never carries the token), errors turned
into the client's exceptions."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp

from hpgc.client.errors import AuthError, ProblemError, Unreachable

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}


class Credentials(Protocol):
    """Where the bearer token comes from (an environment variable, the login cache, a string)."""

    async def token(self, session: aiohttp.ClientSession) -> str | None: ...

    async def refreshed(self, session: aiohttp.ClientSession) -> bool:
        """After a 401: get a new token if possible (a refresh token); True when there is one to retry with."""
        ...


@dataclass
class StaticToken:
    value: str | None

    async def token(self, session: aiohttp.ClientSession) -> str | None:
        return self.value

    async def refreshed(self, session: aiohttp.ClientSession) -> bool:
        return False


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port): the token goes only where all three match the server's."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def normalize(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        from hpgc.client.errors import UsageError

        raise UsageError(f"not an http(s) URL: {url!r}")
    return url.strip().rstrip("/")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    content_type: str = field(default="")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def problem_of(status: int, reason: str, content_type: str, body: bytes) -> ProblemError:
    doc: Any = None
    if "json" in content_type:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
    if not isinstance(doc, dict):
        text = " ".join(body.decode(errors="replace").split())[:300]
        doc = {"title": reason or f"HTTP {status}", "detail": text or None, "status": status}
    return ProblemError(status, doc)


class Transport:
    """Requests to one server. Paths are relative to its URL; absolute URLs are allowed (result links),
    and get the token only on the server's origin."""

    def __init__(self, url: str, credentials: Credentials | None = None, timeout: float = 300.0) -> None:
        self.base = normalize(url)
        self.origin = origin(self.base)
        self.credentials = credentials or StaticToken(None)
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=30)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers={"User-Agent": "hpgc-client"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    async def _headers(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        if origin(url) == self.origin:
            token = await self.credentials.token(self.session)
            if token:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    @staticmethod
    def _unreachable(url: str, exc: BaseException) -> Unreachable:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else (str(exc) or type(exc).__name__)
        return Unreachable(f"cannot reach {url}: {reason}")

    async def _open(self, method: str, path: str, params: dict[str, Any] | None, body: bytes | None,
                    headers: dict[str, str] | None) -> aiohttp.ClientResponse:
        """Send, following redirects: the token goes to each hop only if it is on the server's origin."""
        url = self.url(path)
        retried = False
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = await self.session.request(method, url, params=params, data=body,
                                                  headers=await self._headers(url, headers), allow_redirects=False)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise self._unreachable(url, exc) from None
            if resp.status in REDIRECTS and "Location" in resp.headers:
                resp.release()
                url = urljoin(str(resp.url), resp.headers["Location"])
                params = None  # they are in the Location already
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            if resp.status == 401 and not retried and origin(url) == self.origin \
                    and await self.credentials.refreshed(self.session):
                resp.release()
                retried = True
                continue
            return resp
        raise Unreachable(f"more than {MAX_REDIRECTS} redirects from {self.url(path)}")

    async def _raise_for(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 400:
            return
        body = await resp.read()
        error = problem_of(resp.status, resp.reason or "", resp.content_type, body)
        if resp.status == 401 and not await self.credentials.token(self.session):
            raise AuthError(f"not logged in to {self.base}: run `hpgc login {self.base}` or set HPGC_TOKEN "
                            f"({error})")
        raise error

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json_body: Any = None, data: bytes | None = None,
                      headers: dict[str, str] | None = None) -> Response:
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        resp = await self._open(method, path, params, data, headers)
        try:
            await self._raise_for(resp)
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._unreachable(str(resp.url), exc) from None
            return Response(resp.status, dict(resp.headers), body, str(resp.url), resp.content_type)
        finally:
            resp.release()

    async def download(self, path: str, folder: Path, stem: str) -> Path:
        """GET a result file into `folder` as `stem` plus the extension of its media type; written to a
        temporary name first, so a broken download never leaves a file that looks complete."""
        resp = await self._open("GET", path, None, None, {"Accept": "*/*"})
        try:
            await self._raise_for(resp)
            ext = "" if resp.content_type in ("application/octet-stream", "") else \
                mimetypes.guess_extension(resp.content_type) or ""
            target = folder / f"{stem}{ext}"
            part = folder / f".{stem}{ext}.part"
            try:
                with part.open("wb") as out:
                    async for piece in resp.content.iter_chunked(1 << 16):
                        out.write(piece)
            except (TimeoutError, aiohttp.ClientError) as exc:
                part.unlink(missing_ok=True)
                raise self._unreachable(str(resp.url), exc) from None
            os.replace(part, target)
            return target
        finally:
            resp.release()
