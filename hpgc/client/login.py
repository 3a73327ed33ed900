"""Log in with the OAuth 2.0 device authorization grant (RFC 8628), and the credentials a client uses.

`hpgc login URL` finds the issuer the server trusts in its protected resource metadata (RFC 9728,
`/.well-known/oauth-protected-resource`), the issuer's device and token endpoints in its OpenID discovery
document, shows a code to approve elsewhere (a browser on a laptop, or the administrator for the
development issuer), and polls for the token. Works over SSH: nothing is opened on the login node.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import aiohttp

from hpgc.client import tokens
from hpgc.client.errors import AuthError, Unreachable
from hpgc.client.http import Credentials, StaticToken, normalize

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_CLIENT_ID = "hpgc-cli"
DEFAULT_SCOPE = "hpgc:execute hpgc:deploy"
SLOW_DOWN_S = 5  # RFC 8628 §3.5: slow_down adds 5 seconds to the interval, for good


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    try:
        async with session.request(method, url, allow_redirects=False, **kw) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return resp.status, body if isinstance(body, dict) else {}
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise Unreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from None


async def find_issuer(session: aiohttp.ClientSession, server: str) -> str:
    status, meta = await _json(session, "GET", f"{server}/.well-known/oauth-protected-resource")
    servers = meta.get("authorization_servers") if status == 200 else None
    if not servers or not isinstance(servers[0], str):
        raise AuthError(f"{server} does not say which issuer it trusts (no /.well-known/oauth-protected-resource):"
                        " give it with --issuer")
    return servers[0]


async def endpoints(session: aiohttp.ClientSession, issuer: str) -> tuple[str, str]:
    """(device_authorization_endpoint, token_endpoint) from the issuer's OpenID discovery document."""
    status, meta = await _json(session, "GET", f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    if status != 200:
        raise AuthError(f"the issuer {issuer} has no OpenID discovery document (HTTP {status})")
    device, token = meta.get("device_authorization_endpoint"), meta.get("token_endpoint")
    if not isinstance(device, str) or not isinstance(token, str):
        raise AuthError(f"the issuer {issuer} does not offer the device authorization grant (RFC 8628): "
                        "ask its administrator to enable it for the client, or use HPGC_TOKEN")
    return device, token


def _oauth_error(what: str, body: dict[str, Any], status: int) -> AuthError:
    reason = body.get("error_description") or body.get("error") or f"HTTP {status}"
    return AuthError(f"{what}: {reason}")


async def device_login(server: str, *, scope: str = DEFAULT_SCOPE, client_id: str = DEFAULT_CLIENT_ID,
                       issuer: str | None = None, show: Callable[[dict[str, Any]], None] = print,
                       session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
    """Run the device grant to the end; the tokens are cached for `server` and the cache entry returned
    (`show` gets the device authorization answer: user_code, verification_uri, …)."""
    server = normalize(server)
    own = session is None
    session = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        issuer = issuer or await find_issuer(session, server)
        device_url, token_url = await endpoints(session, issuer)
        status, grant = await _json(session, "POST", device_url, data={"client_id": client_id, "scope": scope})
        if status != 200 or "device_code" not in grant or "user_code" not in grant:
            raise _oauth_error(f"the issuer refused the device authorization request ({device_url})", grant, status)
        show(grant)
        interval = float(grant.get("interval", 5))
        deadline = asyncio.get_running_loop().time() + float(grant.get("expires_in") or 600)
        form = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id}
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(interval)
            status, answer = await _json(session, "POST", token_url, data=form)
            if status == 200 and "access_token" in answer:
                entry = {**tokens.with_expiry(answer), "issuer": issuer, "token_endpoint": token_url,
                         "client_id": client_id}
                tokens.save(server, entry)
                return entry
            error = answer.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += SLOW_DOWN_S
                continue
            raise _oauth_error("login failed", answer, status)
        raise AuthError("login failed: the code expired before it was approved; run hpgc login again")
    finally:
        if own:
            await session.close()


class CachedToken:
    """The token `hpgc login` cached for a server, refreshed with its refresh token when it expires."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._lock = asyncio.Lock()

    async def token(self, session: aiohttp.ClientSession) -> str | None:
        entry = tokens.load(self.server)
        if entry is None:
            return None
        if not tokens.fresh(entry) and entry.get("refresh_token"):
            entry = await self._refresh(session, entry) or entry
        value = entry.get("access_token")
        return value if isinstance(value, str) else None

    async def refreshed(self, session: aiohttp.ClientSession) -> bool:
        entry = tokens.load(self.server)
        return bool(entry and entry.get("refresh_token") and await self._refresh(session, entry))

    async def _refresh(self, session: aiohttp.ClientSession, entry: dict[str, Any]) -> dict[str, Any] | None:
        async with self._lock:
            form = {"grant_type": "refresh_token", "refresh_token": entry["refresh_token"],
                    "client_id": entry.get("client_id", DEFAULT_CLIENT_ID)}
            status, answer = await _json(session, "POST", entry["token_endpoint"], data=form)
            if status != 200 or "access_token" not in answer:
                return None  # the server's 401 then says so, and the user logs in again
            new = {**entry, **tokens.with_expiry(answer)}  # no new refresh token: the old one stays (RFC 6749 §6)
            tokens.save(self.server, new)
            return new


def credentials_for(url: str, token: str | None = None) -> Credentials:
    """A token given in code, else HPGC_TOKEN, else the login cache of this server."""
    if token:
        return StaticToken(token)
    if os.environ.get("HPGC_TOKEN"):
        return StaticToken(os.environ["HPGC_TOKEN"])
    return CachedToken(normalize(url))
