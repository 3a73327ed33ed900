"""GuardedClient: the one HTTP client for every request the server makes on a user's behalf.

What it guarantees, whoever calls it:
- every address is checked before a connection is made to it (GuardedResolver for names, the guard for IP
  literals, which aiohttp does not resolve), and the connection goes to the address that was checked;
- redirects are followed by hand, at most `max_redirects`, each hop checked again (syntax, scheme, literal,
  resolution); posts follow none;
- bytes are counted after content decoding, so a gzip/deflate bomb stops at the cap (aiohttp inflates a
  response in bounded steps as it is read, so a small compressed chunk never becomes a huge one in memory);
- the whole transfer, redirects included, is time-boxed, and opening each connection too;
- errors never quote what the target answered and do not tell an unreachable host from a closed port: a
  refused address says it is refused by policy, everything else "could not be fetched" with at most the
  HTTP status of an answer;
- no cookies and no proxies from the environment: one user's request never carries another's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

import hpgc
from hpgc.errors import InvalidParameterValue
from hpgc.net.guard import SETTINGS_HINT, AddressRefused, GuardedResolver, UrlGuard, UrlRefused
from hpgc.net.settings import OutboundSettings

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 1 << 16


class OutboundError(InvalidParameterValue):
    """A URL the server was asked to fetch or post to was refused or could not be used. The message is safe to
    show to the user who gave the URL; a 400 when it escapes a request handler. `refused`: by the address
    policy (trying again will not help)."""

    def __init__(self, detail: str, refused: bool = False) -> None:
        super().__init__(detail)
        self.refused = refused


class GuardedClient:
    """Owns one aiohttp session (opened on first use, inside the event loop) for all outbound requests."""

    def __init__(self, settings: OutboundSettings | None = None) -> None:
        self.settings = settings or OutboundSettings()
        self.guard = UrlGuard(self.settings.allow_private, self.settings.allowed_networks)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.settings.max_connections,
                                             resolver=GuardedResolver(self.guard))
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": f"hpgc/{hpgc.__version__}"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # checks without a connection -------------------------------------------------------------------
    def check_url(self, url: str, what: str) -> None:
        """Syntax, scheme and IP-literal hosts, without DNS: cheap enough for every submitted URL."""
        try:
            self.guard.check_literal(url)
        except UrlRefused as exc:
            raise OutboundError(f"{what}: {url} {exc}", refused=True) from None

    async def check(self, url: str, what: str) -> None:
        """check_url, then every address a name resolves to (the delivery checks them again)."""
        try:
            await self.guard.check(url)
        except UrlRefused as exc:
            raise OutboundError(f"{what}: {url} {exc}", refused=True) from None

    # requests --------------------------------------------------------------------------------------
    async def fetch(self, url: str, max_bytes: int, what: str, timeout_s: float | None = None) -> bytes:
        """A small document, whole (at most max_bytes after decoding), within document_timeout_s."""
        parts = [chunk async for chunk in self.stream(url, max_bytes, what,
                                                      timeout_s or self.settings.document_timeout_s)]
        return b"".join(parts)

    async def stream(self, url: str, max_bytes: int, what: str,
                     timeout_s: float | None = None) -> AsyncIterator[bytes]:
        """GET url, following checked redirects, yielding the decoded body; OutboundError past max_bytes."""
        loop = asyncio.get_running_loop()
        limit = timeout_s or self.settings.timeout_s
        deadline = loop.time() + limit
        current, hops = url, 0
        while True:
            self._check_hop(url, current, what, hops)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise OutboundError(f"{what}: {url} could not be fetched within {limit:g} s")
            timeout = aiohttp.ClientTimeout(total=remaining, connect=min(self.settings.connect_timeout_s, remaining))
            status: int | None = None
            try:
                async with self.session().get(current, allow_redirects=False, timeout=timeout) as resp:
                    status = resp.status
                    if status in REDIRECTS and resp.headers.get("Location"):
                        hops += 1
                        if hops > self.settings.max_redirects:
                            raise OutboundError(f"{what}: {url} could not be fetched (more than "
                                                f"{self.settings.max_redirects} redirects: outbound.max_redirects)")
                        current = str(resp.url.join(URL(resp.headers["Location"])))
                        continue
                    if status != 200:
                        raise OutboundError(f"{what}: {url} could not be fetched (HTTP {status})")
                    seen = 0
                    # resp.content yields the body after content decoding: the cap applies to what is stored
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        seen += len(chunk)
                        if seen > max_bytes:
                            raise OutboundError(f"{what}: {url} is larger than {max_bytes} bytes")
                        yield chunk
                    return
            except OutboundError:
                raise
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, AddressRefused):
                    raise self._refused(url, what, hops, str(exc.os_error)) from None
                raise self._failed(url, what, status, limit) from None
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                raise self._failed(url, what, status, limit) from None

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float,
                   what: str = "callback") -> int:
        """POST body; the answer's status (redirects are not followed: a 3xx is returned as it is)."""
        self._check_hop(url, url, what, 0)
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(self.settings.connect_timeout_s, timeout_s))
        try:
            async with self.session().post(url, data=body, headers=headers, timeout=timeout,
                                           allow_redirects=False) as resp:
                return resp.status
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise OutboundError(f"{what}: {url} {exc.os_error}", refused=True) from None
            raise OutboundError(f"{what}: {url} could not be delivered") from None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            raise OutboundError(f"{what}: {url} could not be delivered") from None

    # messages --------------------------------------------------------------------------------------
    def _check_hop(self, url: str, current: str, what: str, hops: int) -> None:
        try:
            self.guard.check_literal(current)
        except UrlRefused as exc:
            raise self._refused(url, what, hops, str(exc)) from None

    @staticmethod
    def _refused(url: str, what: str, hops: int, reason: str) -> OutboundError:
        if hops == 0:
            return OutboundError(f"{what}: {url} {reason}", refused=True)
        # the hop's own URL came from the answer of the server redirecting: not repeated
        return OutboundError(f"{what}: {url} redirects to a URL or address that is refused by policy "
                             f"(only http(s) to public addresses: {SETTINGS_HINT})", refused=True)

    @staticmethod
    def _failed(url: str, what: str, status: int | None, limit: float) -> OutboundError:
        if status is None:
            # connection refused, unreachable, no DNS answer, a timeout before any answer: all alike
            return OutboundError(f"{what}: {url} could not be fetched")
        return OutboundError(f"{what}: {url} could not be fetched (HTTP {status}, the answer did not complete "
                             f"within {limit:g} s or was malformed)")
