"""Browser sign-in: the authorization code flow with PKCE (authlib's OAuth2 client builds the request and the
token exchange's body) at the development issuer or the first configured issuer with web.client_id; the token
it gets becomes a server-side session (sessions.py). Sign-out ends it."""

from __future__ import annotations

import asyncio
import time
import warnings
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from markupsafe import Markup, escape

from hpgc.api.bearer import DEV_GRANT, VERIFIER
from hpgc.api.keys import SETTINGS, TEMPLATES
from hpgc.api.render import base_url
from hpgc.api.ui.sessions import COOKIE, SESSIONS, Sessions, clear_cookie, current, safe_next, secure, set_cookie
from hpgc.auth.dev_issuer import DEV_PREFIX
from hpgc.auth.identity import principal_from_claims
from hpgc.auth.principal import AuthUnavailable, InvalidToken, UnmappedUser

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.oauth2.client import OAuth2Client
    from authlib.oauth2.rfc6749.parameters import prepare_token_request

routes = web.RouteTableDef()
DEV_CLIENT = "hpgc-web"
PENDING_TTL_S = 600
MAX_PENDING = 1000
STATE_COOKIE = "hpgc_signin"  # binds the answer to the browser that asked (no login forgery)


@dataclass
class Pending:
    verifier: str
    next: str
    redirect_uri: str
    expires: float


PENDING: web.AppKey[dict[str, Pending]] = web.AppKey("signin_pending", dict)


def signin_available(app: web.Application) -> bool:
    settings = app[SETTINGS]
    return DEV_GRANT in app or (settings.web.client_id is not None and bool(settings.auth.issuers))


def _page(request: web.Request, status: int, heading: str, text: str) -> web.Response:
    html = request.app[TEMPLATES].get_template("ui_message.html").render(
        base=base_url(request), title=request.app[SETTINGS].title, heading=heading, text=text, request=request)
    return web.Response(status=status, text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _endpoints(request: web.Request) -> tuple[str, str | None]:
    """(authorization endpoint, token endpoint or None for the in-process development issuer)."""
    if DEV_GRANT in request.app:
        return f"{base_url(request)}{DEV_PREFIX}/authorize", None
    issuer = next(iter(request.app[VERIFIER].issuers.values()))
    meta = await issuer.discover()
    return str(meta["authorization_endpoint"]), str(meta["token_endpoint"])


def _client(request: web.Request, redirect_uri: str) -> OAuth2Client:
    web_settings = request.app[SETTINGS].web
    secret = web_settings.client_secret.get_secret_value() if web_settings.client_secret else None
    client_id = DEV_CLIENT if DEV_GRANT in request.app else str(web_settings.client_id)
    scope = web_settings.scope if DEV_GRANT not in request.app else None
    return OAuth2Client(None, client_id=client_id, client_secret=secret, scope=scope, redirect_uri=redirect_uri,
                        code_challenge_method="S256")


@routes.get("/ui/signin")
async def signin(request: web.Request) -> web.StreamResponse:
    if not signin_available(request.app):
        return _page(request, 404, "No browser sign-in", "This server has no OpenID Connect client for browsers "
                     "(setting web.client_id); use a bearer token.")
    try:
        authorize, _ = await _endpoints(request)
    except (AuthUnavailable, InvalidToken, KeyError) as exc:
        return _page(request, 503, "Sign-in unavailable", f"The identity provider cannot be reached: {exc}")
    redirect_uri = f"{base_url(request)}/ui/callback"
    verifier = generate_token(64)
    url, state = _client(request, redirect_uri).create_authorization_url(authorize, code_verifier=verifier)
    pending = request.app[PENDING]
    now = time.time()
    for key in [k for k, p in pending.items() if p.expires < now][:100]:
        pending.pop(key)
    if len(pending) >= MAX_PENDING:
        pending.pop(next(iter(pending)))
    pending[state] = Pending(verifier, safe_next(request.query.get("next", "/jobs")), redirect_uri,
                             now + PENDING_TTL_S)
    resp = web.Response(status=303, headers={"Location": url, "Cache-Control": "no-store"})
    resp.set_cookie(STATE_COOKIE, state, max_age=PENDING_TTL_S, path="/ui/callback", httponly=True,
                    samesite="Lax", secure=secure(request))
    return resp


async def _exchange(request: web.Request, pending: Pending, code: str) -> dict[str, Any]:
    client = _client(request, pending.redirect_uri)
    _, token_url = await _endpoints(request)
    if token_url is None:  # the embedded development issuer: redeemed in-process
        form = {"code": code, "code_verifier": pending.verifier, "client_id": client.client_id,
                "redirect_uri": pending.redirect_uri}
        answer = await asyncio.to_thread(request.app[DEV_GRANT], form)
        if answer is None:
            raise InvalidToken("the sign-in code was refused")
        return answer
    body = prepare_token_request("authorization_code", code=code, redirect_uri=pending.redirect_uri,
                                 code_verifier=pending.verifier, client_id=client.client_id)
    auth = aiohttp.BasicAuth(client.client_id, client.client_secret) if client.client_secret else None
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
            token_url, data=body, auth=auth, allow_redirects=False,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
            raise InvalidToken(f"the identity provider refused the sign-in code ({resp.status})")
        return answer


@routes.get("/ui/callback")
async def callback(request: web.Request) -> web.StreamResponse:
    state = request.query.get("state", "")
    pending = request.app[PENDING].pop(state, None) if state else None
    if pending is None or request.cookies.get(STATE_COOKIE) != state or pending.expires < time.time():
        return _page(request, 400, "Sign-in failed", "This sign-in was not started here, or it took too long. "
                     "Please sign in again.")
    if "error" in request.query:
        return _page(request, 403, "Sign-in refused", f"The identity provider said: "
                     f"{request.query.get('error_description') or request.query['error']}")
    try:
        answer = await _exchange(request, pending, request.query.get("code", ""))
        token = str(answer["access_token"])
        issuer, claims = await request.app[VERIFIER].verify(token)
        who = principal_from_claims(claims, issuer.id, issuer.settings.subject_prefix, request.app[SETTINGS].auth)
    except (InvalidToken, UnmappedUser) as exc:
        return _page(request, 403, "Sign-in refused", exc.detail)
    except (AuthUnavailable, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return _page(request, 503, "Sign-in unavailable", f"The identity provider cannot be reached: {exc}")
    exp = claims.get("exp")
    session = request.app[SESSIONS].create(token, float(exp) if isinstance(exp, int | float) else None,
                                           who.name or who.subject)
    resp = web.Response(status=303, headers={"Location": pending.next, "Cache-Control": "no-store"})
    set_cookie(request, resp, session)
    resp.del_cookie(STATE_COOKIE, path="/ui/callback")
    return resp


@routes.post("/ui/signout")
async def signout(request: web.Request) -> web.StreamResponse:
    # the auth middleware checked the CSRF token of a request with a session; one without has nothing to end
    session = current(request)
    if session is not None:
        request.app[SESSIONS].drop(session.id)
    resp = web.Response(status=303, headers={"Location": "/ui/signedout", "Cache-Control": "no-store"})
    clear_cookie(request, resp)
    return resp


@routes.get("/ui/signedout")
async def signed_out(request: web.Request) -> web.Response:
    return _page(request, 200, "Signed out", "You are signed out: this browser holds no session of this server "
                 "any more.")


def setup_signin(app: web.Application) -> None:
    settings = app[SETTINGS]
    if not settings.auth.enabled:
        return
    app[SESSIONS] = Sessions(settings.web.max_sessions, settings.web.session_ttl_s)
    app[PENDING] = {}
    app.add_routes(routes)
    app[TEMPLATES].globals.update(session_of=current, signin_offered=lambda request: signin_available(request.app))


def csrf_field(request: web.Request) -> Markup:
    """The hidden field every form of a signed-in page posts (empty without a session: auth is off)."""
    session = current(request)
    return Markup(f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">') if session else Markup("")


__all__ = ["COOKIE", "setup_signin", "signin_available"]
