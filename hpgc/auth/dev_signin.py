"""The development issuer's browser sign-in: an authorization endpoint with a one-field page (the user name) and
the authorization-code grant with PKCE (RFC 7636, S256 only), so that the web pages work out of the box.

Like the rest of the development issuer it has no users and no passwords: whoever reaches the page can be anyone.
So the page answers only requests that come from this machine (a loopback peer, no proxy headers, no public
base_url): the embedded default on 127.0.0.1 works in a browser, a server open to others refuses with a 403 that
says to configure an OpenID provider. Codes live in memory, for one minute, and are used once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

CODE_TTL_S = 60
MAX_CODES = 1000
USER_MAX = 64
SCOPES = {"execute": "hpgc:execute", "deploy": "hpgc:deploy", "admin": "hpgc:admin"}
Mint = Callable[[str, str, int], str]  # (user, scope, ttl) → access token


@dataclass
class Code:
    user: str
    scope: str
    challenge: str
    client_id: str
    redirect_uri: str
    expires: float


class AuthorizationCodes:
    def __init__(self) -> None:
        self._codes: dict[str, Code] = {}

    def issue(self, code: Code) -> str:
        now = time.time()
        self._codes = {k: c for k, c in self._codes.items() if c.expires > now}
        while len(self._codes) >= MAX_CODES:
            self._codes.pop(next(iter(self._codes)))
        value = secrets.token_urlsafe(32)
        self._codes[value] = code
        return value

    def redeem(self, value: str, verifier: str, client_id: str, redirect_uri: str) -> Code | None:
        """The code's grant, once, when the verifier, client and redirect URI are the ones it was issued for."""
        code = self._codes.pop(value, None)
        if code is None or code.expires < time.time():
            return None
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not (43 <= len(verifier) <= 128) or not hmac.compare_digest(digest, code.challenge):
            return None
        if client_id != code.client_id or redirect_uri != code.redirect_uri:
            return None
        return code


def local_only(request: web.Request, base_url: str | None) -> str | None:
    """Why this request may not use the sign-in page, or None when it comes from this machine."""
    if any(h in request.headers for h in ("Forwarded", "X-Forwarded-For", "X-Real-Ip")):
        return "it came through a proxy"
    if base_url and (urlsplit(base_url).hostname or "") not in ("localhost", "127.0.0.1", "::1"):
        return "the server has a public base_url"
    try:
        if not ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback:
            return "it did not come from this machine"
    except ValueError:
        return "it did not come from this machine"
    return None


def _page(params: dict[str, str], error: str = "") -> str:
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items())
    note = f'<p role="alert" style="color:#b3261e">{escape(error)}</p>' if error else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in — hpgc development issuer</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:28em;margin:3em auto;padding:0 1em;color:#1d2430}}
input[type=text]{{font:inherit;padding:.4em;width:100%;box-sizing:border-box}}
button{{font:inherit;padding:.5em 1.2em;background:#1f3b5a;color:#fff;border:0;border-radius:4px}}</style></head>
<body><main><h1>Sign in</h1>
<p>This is hpgc's <strong>development issuer</strong>: no passwords, whoever signs in here chooses who they are.
It answers only on this machine; a real deployment signs in at its OpenID provider.</p>{note}
<form method="post">{hidden}
<p><label for="user">User name</label><br><input type="text" id="user" name="user" required maxlength="{USER_MAX}"
 pattern="[A-Za-z0-9._@-]+" autocomplete="username" autofocus></p>
<fieldset><legend>Permissions</legend>
<label><input type="checkbox" name="perm" value="execute" checked> run processes</label><br>
<label><input type="checkbox" name="perm" value="deploy" checked> deploy processes</label><br>
<label><input type="checkbox" name="perm" value="admin"> administrator</label></fieldset>
<p><button type="submit">Sign in</button></p></form></main></body></html>"""


def _error(status: int, text: str) -> web.Response:
    body = f"<!doctype html><html lang='en'><head><title>Sign-in refused</title></head><body><main><h1>Sign-in " \
           f"refused</h1><p>{escape(text)}</p></main></body></html>"
    return web.Response(status=status, text=body, content_type="text/html")


def signin_routes(app: web.Application, prefix: str, codes: AuthorizationCodes, base_url: str | None) -> None:
    """GET/POST {prefix}/authorize. The redirect URI must be on the origin the page was asked on (the server's
    own /ui/callback), so a code never leaves for another site."""

    async def authorize(request: web.Request) -> web.Response:
        why = local_only(request, base_url)
        if why is not None:
            return _error(403, f"The development issuer signs in only on this machine, and this request cannot "
                          f"use it: {why}. Configure an OpenID Connect issuer ([[auth.issuers]] and web.client_id).")
        source = await request.post() if request.method == "POST" else request.query
        params = {k: str(source.get(k, ""))[:2000] for k in ("response_type", "client_id", "redirect_uri", "state",
                                                             "code_challenge", "code_challenge_method", "scope")}
        if params["response_type"] != "code" or params["code_challenge_method"] != "S256" \
                or not params["code_challenge"] or not params["client_id"]:
            return _error(400, "this issuer grants only response_type=code with PKCE (code_challenge_method=S256) "
                               "and a client_id")
        target = urlsplit(params["redirect_uri"])
        if f"{target.scheme}://{target.netloc}" != f"{request.scheme}://{request.host}" or target.query:
            return _error(400, "the redirect_uri must be on this server's own origin")
        if request.method == "GET":
            return web.Response(text=_page(params), content_type="text/html",
                                headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
        user = str(source.get("user", "")).strip()
        if not user or len(user) > USER_MAX or not all(c.isascii() and (c.isalnum() or c in "._@-") for c in user):
            return web.Response(text=_page(params, "Give a user name of letters, digits and . _ @ -."),
                                content_type="text/html", status=400)
        perms = [SCOPES[p] for p in source.getall("perm", []) if p in SCOPES] if hasattr(source, "getall") else []
        code = codes.issue(Code(user, " ".join(perms), params["code_challenge"], params["client_id"],
                                params["redirect_uri"], time.time() + CODE_TTL_S))
        query = urlencode({"code": code, "state": params["state"]})
        raise web.HTTPSeeOther(f"{params['redirect_uri']}?{query}", headers={"Cache-Control": "no-store"})

    app.router.add_get(f"{prefix}/authorize", authorize)
    app.router.add_post(f"{prefix}/authorize", authorize)


def code_grant(codes: AuthorizationCodes, mint: Mint, ttl: int) -> Callable[[Any], dict[str, Any] | None]:
    """The token endpoint's authorization_code grant: the token answer, or None for invalid_grant."""

    def grant(form: Any) -> dict[str, Any] | None:
        code = codes.redeem(str(form.get("code", "")), str(form.get("code_verifier", "")),
                            str(form.get("client_id", "")), str(form.get("redirect_uri", "")))
        if code is None:
            return None
        return {"access_token": mint(code.user, code.scope, ttl), "token_type": "Bearer", "expires_in": ttl,
                "scope": code.scope}

    return grant
