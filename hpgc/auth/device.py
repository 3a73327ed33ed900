"""The development issuer's device authorization grant (RFC 8628), so that `hpgc login` works against it.

The development issuer has no users and no passwords, so a code is approved the way its tokens are
minted: by someone who can read the server's data dir, on the server machine —
`hpgc device-approve WDJB-MJHT --user alice` (or `--deny`). The verification page says so. A real
deployment uses its OpenID provider's device endpoint (Keycloak: "OAuth 2.0 Device Authorization Grant"
on the client), found through the provider's discovery document, and never this module.

Pending grants are files in DATA_DIR/auth/device/ (0700 folder, 0600 files), one per user code, so that the
approving command and the server share them; the device code is `<user code>.<secret>` and only the
secret's digest is stored. A grant is used once: the poll that finds it approved renames it away first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels (no words), no look-alike digits
EXPIRES_S = 600
INTERVAL_S = 2  # short: a developer is waiting; RFC 8628's default is 5
SLOW_DOWN_S = 5
MAX_PENDING = 100  # the device endpoint is public: bound what anonymous callers can leave on disk
DEFAULT_SCOPE = "hpgc:execute hpgc:deploy"
TOKEN_TTL_S = 3600
Mint = Callable[[str, str, int], str]  # (user, scope, ttl) → access token


def normalize_code(text: str) -> str | None:
    """A user code as typed (any case, dashes, spaces) → its 8 letters, or None if it cannot be one."""
    code = "".join(text.split()).replace("-", "").upper()
    return code if len(code) == 8 and all(c in ALPHABET for c in code) else None


def shown(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class DeviceGrants:
    def __init__(self, auth_dir: Path) -> None:
        self.dir = auth_dir / "device"
        self._last_poll: dict[str, float] = {}  # in the server's memory: the approver never writes it

    def _path(self, code: str) -> Path:
        return self.dir / f"{code}.json"

    def _write(self, code: str, grant: dict[str, Any]) -> None:
        tmp = self.dir / f".{code}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(grant, f)
        os.replace(tmp, self._path(code))

    def _read(self, code: str) -> dict[str, Any] | None:
        try:
            grant = json.loads(self._path(code).read_text())
        except (OSError, ValueError):
            return None
        return grant if isinstance(grant, dict) else None

    def _prune(self, now: float) -> int:
        """Remove expired grants; the number left."""
        left = 0
        for path in self.dir.glob("*.json"):
            grant = self._read(path.stem)
            if grant is None or grant.get("expires", 0) < now:
                with contextlib.suppress(OSError):
                    path.unlink()
            else:
                left += 1
        return left

    def start(self, scope: str, client_id: str, now: float | None = None) -> tuple[str, str] | None:
        """A new grant: (device_code, user_code), or None when too many are pending."""
        now = now or time.time()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._prune(now) >= MAX_PENDING:
            return None
        code = "".join(secrets.choice(ALPHABET) for _ in range(8))
        secret = secrets.token_urlsafe(32)
        self._write(code, {"digest": _digest(secret), "scope": scope, "client_id": client_id[:200],
                           "expires": now + EXPIRES_S, "state": "pending"})
        return f"{code}.{secret}", code

    def decide(self, user_code: str, user: str | None, scope: str | None = None,
               now: float | None = None) -> dict[str, Any]:
        """`hpgc device-approve`: approve for `user` (None: deny). The grant as it now is; KeyError if the code
        is unknown or expired."""
        code = normalize_code(user_code)
        grant = self._read(code) if code else None
        if code is None or grant is None or grant.get("expires", 0) < (now or time.time()):
            raise KeyError(user_code)
        if user is None:
            grant["state"] = "denied"
        else:
            grant.update(state="approved", user=user, scope=scope or grant["scope"])
        self._write(code, grant)
        return grant

    def pending(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.exists() else []:
            grant = self._read(path.stem)
            if grant and grant.get("state") == "pending" and grant.get("expires", 0) >= now:
                out.append({"user_code": shown(path.stem), "scope": grant["scope"], "client_id": grant["client_id"],
                            "expires_in": int(grant["expires"] - now)})
        return out

    def poll(self, device_code: str, now: float | None = None) -> tuple[str, dict[str, Any] | None]:
        """(RFC 8628 error or "approved", the grant when approved). An approved grant is consumed."""
        now = now or time.time()
        code, _, secret = device_code.partition(".")
        grant = self._read(code) if normalize_code(code) == code and secret else None
        if grant is None or not hmac.compare_digest(grant.get("digest", ""), _digest(secret)):
            return "invalid_grant", None
        if grant.get("expires", 0) < now:
            return "expired_token", None
        last = self._last_poll.get(code)
        self._last_poll[code] = now
        if grant["state"] == "denied":
            return "access_denied", None
        if grant["state"] == "approved":
            used = self.dir / f".{code}.used.{uuid.uuid4().hex}"
            try:
                os.rename(self._path(code), used)  # only one poll can win this
            except OSError:
                return "invalid_grant", None
            used.unlink()
            self._last_poll.pop(code, None)
            return "approved", grant
        if last is not None and now - last < INTERVAL_S - 0.2:
            return "slow_down", None
        return "authorization_pending", None


def device_metadata(issuer: str) -> dict[str, Any]:
    """What the issuer's discovery document adds for the device grant."""
    return {"device_authorization_endpoint": f"{issuer}/device", "token_endpoint": f"{issuer}/token",
            "grant_types_supported": [DEVICE_GRANT]}


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status,
                             headers={"Cache-Control": "no-store"})


def device_routes(app: web.Application, prefix: str, issuer: str, grants: DeviceGrants, mint: Mint,
                  other_grants: dict[str, Callable[[Any], dict[str, Any] | None]] | None = None) -> None:
    """The device endpoints and the token endpoint; `other_grants` are more grant types of the token endpoint
    (grant_type → the token answer for a form, or None for invalid_grant)."""
    async def authorize(request: web.Request) -> web.Response:
        form = await request.post()
        scope = str(form.get("scope") or DEFAULT_SCOPE)[:1000]
        started = await asyncio.to_thread(grants.start, scope, str(form.get("client_id") or ""))
        if started is None:
            return _oauth_error("slow_down", "too many logins are pending; try again in a few minutes", 429)
        device_code, code = started
        return web.json_response({
            "device_code": device_code, "user_code": shown(code), "verification_uri": f"{issuer}/device",
            "verification_uri_complete": f"{issuer}/device?user_code={shown(code)}", "expires_in": EXPIRES_S,
            "interval": INTERVAL_S}, headers={"Cache-Control": "no-store"})

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        other = (other_grants or {}).get(str(form.get("grant_type")))
        if other is not None:
            answer = other(form)
            if answer is None:
                return _oauth_error("invalid_grant", "unknown, used or expired code, or a wrong code_verifier, "
                                                     "client_id or redirect_uri")
            return web.json_response(answer, headers={"Cache-Control": "no-store"})
        if form.get("grant_type") != DEVICE_GRANT:
            return _oauth_error("unsupported_grant_type", f"this development issuer grants only {DEVICE_GRANT}"
                                + "".join(f" and {g}" for g in other_grants or {}))
        outcome, grant = await asyncio.to_thread(grants.poll, str(form.get("device_code") or ""))
        descriptions = {"authorization_pending": "the code is not approved yet",
                        "slow_down": f"poll at most every {INTERVAL_S} s",
                        "access_denied": "the code was denied", "expired_token": "the code expired; log in again",
                        "invalid_grant": "unknown or used device code"}
        if grant is None:
            return _oauth_error(outcome, descriptions[outcome])
        access = await asyncio.to_thread(mint, grant["user"], grant["scope"], TOKEN_TTL_S)
        return web.json_response({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL_S,
                                  "scope": grant["scope"]}, headers={"Cache-Control": "no-store"})

    async def page(request: web.Request) -> web.Response:
        code = normalize_code(request.query.get("user_code", ""))
        which = shown(code) if code else "THE-CODE"
        body = f"""<!doctype html><html><head><title>hpgc development issuer: device login</title></head><body>
<h1>Approve a device login</h1>
<p>This is hpgc's <strong>development issuer</strong>: it has no users and no passwords. A login code is approved
on the server machine, by someone who can read the server's data directory, with</p>
<pre>hpgc device-approve {escape(which)} --user YOUR-NAME</pre>
<p>(<code>hpgc device-approve --list</code> shows the codes waiting; <code>--scope</code> changes what the token
may do; <code>--deny</code> refuses.) A real deployment uses its OpenID provider's own device login page.</p>
</body></html>"""
        return web.Response(text=body, content_type="text/html")

    app.router.add_post(f"{prefix}/device", authorize)
    app.router.add_get(f"{prefix}/device", page)
    app.router.add_post(f"{prefix}/token", token)


def cli_approve(auth_dir: Path, code: str | None, user: str | None, scope: str | None, deny: bool,
                listing: bool) -> tuple[int, str]:
    """`hpgc device-approve`: (exit code, text)."""
    grants = DeviceGrants(auth_dir)
    if listing or code is None:
        rows = grants.pending()
        lines = [f"{g['user_code']}  {g['scope']}  (client {g['client_id'] or '?'}, {g['expires_in']} s left)"
                 for g in rows]
        return 0, "\n".join(lines) or "no login is waiting"
    if not deny and not user:
        return 2, "give --user NAME (the token's subject) or --deny"
    try:
        grant = grants.decide(code, None if deny else user, scope)
    except KeyError:
        return 2, f"no login is waiting with the code {code!r} (it may have expired: codes last {EXPIRES_S} s)"
    if deny:
        return 0, f"denied {shown(normalize_code(code) or code)}"
    return 0, f"approved {shown(normalize_code(code) or code)} for {grant['user']} ({grant['scope']})"
