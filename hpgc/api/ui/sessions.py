"""Server-side browser sessions: the cookie holds only a random id; the access token the sign-in got stays in the
server's memory and is verified on every request exactly like a bearer token (same issuer checks, same identity
mapping, same permissions). A restart signs everyone out.

Cookie: HttpOnly, SameSite=Lax, Secure when the server is reached over TLS (or base_url is https), Path=/.
Every unsafe request that rides on a session (POST, PUT, DELETE...) must carry the session's CSRF token (form
field `csrf` or header X-CSRF-Token) and must not come from another origin (Origin, Sec-Fetch-Site).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from hpgc.api.problems import problem
from hpgc.api.render import base_url, wants_html

COOKIE = "hpgc_session"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNIN_PATH = "/ui/signin"


@dataclass
class Session:
    id: str
    token: str
    expires: float
    name: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Sessions:
    def __init__(self, max_sessions: int, ttl_s: int) -> None:
        self._all: dict[str, Session] = {}
        self.max, self.ttl_s = max_sessions, ttl_s

    def create(self, token: str, token_expires: float | None, name: str) -> Session:
        now = time.time()
        if len(self._all) >= self.max:
            self._all = {k: s for k, s in self._all.items() if s.expires > now}
        while len(self._all) >= self.max:  # the oldest go first
            self._all.pop(next(iter(self._all)))
        expires = min(now + self.ttl_s, token_expires or now + self.ttl_s)
        session = Session(secrets.token_urlsafe(32), token, expires, name)
        self._all[session.id] = session
        return session

    def get(self, sid: str) -> Session | None:
        session = self._all.get(sid)
        if session is not None and session.expires < time.time():
            self._all.pop(sid, None)
            return None
        return session

    def drop(self, sid: str) -> None:
        self._all.pop(sid, None)


SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("session", Session)


def current(request: web.Request) -> Session | None:
    """The request's session (looked up once), or None. A request with an Authorization header has none: the
    header decides, and no CSRF token is needed of it."""
    if SESSION_KEY in request:
        return request[SESSION_KEY]
    sessions = request.app.get(SESSIONS)
    sid = request.cookies.get(COOKIE)
    if sessions is None or not sid or request.headers.getall("Authorization", []):
        return None
    session = sessions.get(sid)
    if session is not None:
        request[SESSION_KEY] = session
    return session


def secure(request: web.Request) -> bool:
    return request.secure or base_url(request).startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, max_age=int(session.expires - time.time()), path="/", httponly=True,
                        samesite="Lax", secure=secure(request))


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=secure(request))


def cross_site(request: web.Request) -> str | None:
    """Why the browser's own headers say this request came from another site, or None."""
    origin = request.headers.get("Origin")
    own = base_url(request).split("/", 3)[:3]
    if origin is not None and origin.rstrip("/").lower() != "/".join(own).lower():
        return "it came from another origin"
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "the browser says it came from another site"
    return None


@web.middleware
async def ui_forms_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The forms under /ui/ take no POST from another site, also with authentication off (then there is no
    session and no CSRF token, and a forged form would act as the administrator everyone is)."""
    if request.method not in SAFE and request.path.startswith("/ui/") and (why := cross_site(request)):
        return problem(403, "Forbidden", f"refused as a cross-site request forgery: {why}", error="csrf")
    return await handler(request)


async def csrf_refusal(request: web.Request, session: Session) -> str | None:
    """Why an unsafe request riding on `session` is refused as a cross-site request forgery, or None."""
    if request.method in SAFE:
        return None
    if (why := cross_site(request)) is not None:
        return why
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = str((await request.post()).get("csrf", ""))
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        return "it carries no valid CSRF token (send the form of this server's page, or the header X-CSRF-Token)"
    return None


def signin_redirect(request: web.Request) -> web.Response | None:
    """A browser asking for a page without a session goes to sign in (and comes back); JSON keeps its 401."""
    if SESSIONS not in request.app or request.method != "GET":
        return None
    try:
        html = wants_html(request)
    except web.HTTPException:
        return None
    if not html:
        return None
    return web.Response(status=303, headers={"Location": f"{SIGNIN_PATH}?next={quote(request.path_qs, safe='')}",
                                             "Cache-Control": "no-store"})


def safe_next(target: str) -> str:
    """Where to go after sign-in: a path on this server only (never //host or a scheme: no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target
