"""One trusted issuer: its OpenID discovery document, its signing keys (JWKS) and its RFC 7662 introspection
endpoint, fetched with size and time limits and cached. What is done with a token is hpgc/auth/verifier.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from hpgc.auth.jose import JoseError, JsonWebKey, Key
from hpgc.auth.principal import AuthUnavailable, InvalidToken
from hpgc.auth.settings import IssuerSettings, check_url

log = logging.getLogger(__name__)
MAX_DOCUMENT = 1024 * 1024
MIN_RSA_BITS = 2048
FAILURE_BACKOFF_S = 5.0


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to `limit` bytes of a body: StreamReader.read(n) returns what has arrived so far, often less than n."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class Issuer:
    """One trusted issuer: its discovery document, its keys (cached, re-fetched when a kid is unknown, at
    most every jwks_refresh_min_s) and its introspection endpoint."""

    def __init__(self, settings: IssuerSettings, session: Callable[[], aiohttp.ClientSession],
                 local_jwks: Callable[[], dict[str, Any]] | None = None) -> None:
        self.settings = settings
        self._session = session
        self._local_jwks = local_jwks  # the embedded dev issuer: keys straight from its file, no HTTP
        self.metadata: dict[str, Any] | None = None
        self._keys: dict[str, Key] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._failure: tuple[float, AuthUnavailable] | None = None
        self._introspected: dict[str, tuple[float, dict[str, Any] | None]] = {}

    @property
    def id(self) -> str:
        return self.settings.issuer

    def _check_url(self, url: str, what: str) -> None:
        """A URL the issuer's own documents gave: not TLS is the issuer's misconfiguration, a 503 saying so."""
        try:
            check_url(url, self.settings.allow_http)
        except ValueError as exc:
            raise AuthUnavailable(f"the {what} of issuer {self.id} is not fetched: {exc}") from None

    async def _get_json(self, url: str, what: str, method: str = "GET", **request: Any) -> dict[str, Any]:
        """One of the issuer's documents or answers: a JSON object of at most MAX_DOCUMENT bytes, fetched
        without following redirects; anything else is the issuer's fault (AuthUnavailable, a 503)."""
        self._check_url(url, what)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with self._session().request(method, url, timeout=timeout, allow_redirects=False,
                                               headers={"Accept": "application/json"}, **request) as resp:
                body = await _read_capped(resp.content, MAX_DOCUMENT + 1)
                if resp.status != 200:
                    raise AuthUnavailable(f"the {what} of issuer {self.id} answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthUnavailable(f"the {what} of issuer {self.id} is unreachable: {str(exc) or type(exc).__name__}") \
                from None
        try:
            doc = json.loads(body) if len(body) <= MAX_DOCUMENT else None
        except ValueError:  # an HTML error page, a truncated answer: the issuer's fault, not the client's
            doc = None
        if not isinstance(doc, dict):
            raise AuthUnavailable(f"the {what} of issuer {self.id}: the answer is not a JSON object")
        return doc

    async def discover(self) -> dict[str, Any]:
        if self.metadata is None:
            url = self.settings.discovery_url or f"{self.id.rstrip('/')}/.well-known/openid-configuration"
            doc = await self._get_json(url, "discovery document")
            if doc.get("issuer") != self.id:  # OpenID Discovery §4.3: a mismatch means a wrong or forged document
                raise AuthUnavailable(f"the discovery document at {url} is for issuer {doc.get('issuer')!r}")
            self.metadata = doc
        return self.metadata

    async def _fetch_keys(self) -> None:
        if self._local_jwks is not None:
            jwks = self._local_jwks()
        else:
            uri = self.settings.jwks_uri or (await self.discover()).get("jwks_uri")
            if not isinstance(uri, str):
                raise AuthUnavailable(f"issuer {self.id} publishes no jwks_uri")
            jwks = await self._get_json(uri, "JWKS")
        keys: dict[str, Key] = {}
        for jwk in jwks.get("keys") or []:
            key = self._import(jwk)
            if key is not None:
                keys[jwk.get("kid", "")] = key
        self._keys, self._fetched_at = keys, time.monotonic()
        log.info("issuer %s: %d signing key(s): %s", self.id, len(keys), ", ".join(keys) or "-")

    def _import(self, jwk: Any) -> Key | None:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            return None
        try:
            key = JsonWebKey.import_key(jwk)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("issuer %s: ignoring key %s: %s", self.id, jwk.get("kid"), exc)
            return None
        if jwk["kty"] == "RSA" and key.get_public_key().key_size < MIN_RSA_BITS:
            log.warning("issuer %s: ignoring key %s: RSA keys under %d bits", self.id, jwk.get("kid"), MIN_RSA_BITS)
            return None
        return key

    async def key(self, kid: str | None) -> Key:
        if time.monotonic() - self._fetched_at > self.settings.jwks_max_age_s:
            await self.refresh_keys(stale_ok=bool(self._keys))
        found = self._find(kid)
        if found is None and time.monotonic() - self._fetched_at >= self.settings.jwks_refresh_min_s:
            await self.refresh_keys(stale_ok=True)  # a kid we do not know yet: the issuer may have rotated keys
            found = self._find(kid)
        if found is None:
            raise InvalidToken(f"the token's signing key (kid {kid!r}) is not one of issuer {self.id}'s keys")
        return found

    async def refresh_keys(self, stale_ok: bool) -> None:
        seen = self._fetched_at
        async with self._lock:
            if self._fetched_at != seen:  # another request refreshed while we waited: one fetch serves all
                return
            if self._failure is not None and time.monotonic() - self._failure[0] < FAILURE_BACKOFF_S \
                    and not stale_ok:
                raise self._failure[1]  # the issuer was down a moment ago: do not queue a fetch per request
            try:
                await self._fetch_keys()
                self._failure = None
            except AuthUnavailable as exc:
                self._failure = (time.monotonic(), exc)
                if not stale_ok:
                    raise
                log.warning("%s; keeping the keys fetched before", exc.detail)
                self._fetched_at = time.monotonic()  # do not retry on every request while the issuer is down

    def _find(self, kid: str | None) -> Key | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    # opaque tokens ----------------------------------------------------------------------------------
    async def introspect(self, token: str) -> dict[str, Any]:
        digest = hashlib.sha256(token.encode()).hexdigest()  # the cache never holds tokens themselves
        now = time.monotonic()
        hit = self._introspected.get(digest)
        if hit is not None and hit[0] > now:
            answer = hit[1]
        else:
            answer = await self._ask(token)
            self._remember(digest, answer, now)
        if answer is None:
            raise InvalidToken("the token is not active (introspection)")
        return answer

    async def _ask(self, token: str) -> dict[str, Any] | None:
        s = self.settings
        url = s.introspection_endpoint or (await self.discover()).get("introspection_endpoint")
        if not isinstance(url, str):
            raise AuthUnavailable(f"issuer {self.id} has no introspection endpoint")
        assert s.client_id is not None and s.client_secret is not None
        answer = await self._get_json(url, "introspection endpoint", "POST",
                                      data={"token": token, "token_type_hint": "access_token"},
                                      auth=aiohttp.BasicAuth(s.client_id, s.client_secret.get_secret_value()))
        return answer if answer.get("active") is True else None

    def _remember(self, digest: str, answer: dict[str, Any] | None, now: float) -> None:
        ttl = self.settings.introspection_cache_s
        if answer is not None and isinstance(answer.get("exp"), int | float):
            ttl = min(ttl, answer["exp"] - time.time())
        if ttl <= 0:
            return
        if len(self._introspected) >= 10000:
            self._introspected = {k: v for k, v in self._introspected.items() if v[0] > now}
            while len(self._introspected) >= 10000:
                del self._introspected[next(iter(self._introspected))]
        self._introspected[digest] = (now + ttl, answer)
