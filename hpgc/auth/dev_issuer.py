"""The development issuer: its keys, its tokens, and the two routes that publish it (discovery and JWKS),
mounted in the server or served alone by `hpgc dev-issuer`.

Its signing keys live in DATA_DIR/auth/dev-issuer-keys.json (mode 0600): whoever can read that file can be
anyone on the server, which is why the issuer is for development and tests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from hpgc.auth.dev_signin import AuthorizationCodes, code_grant, signin_routes  # the web pages' sign-in
from hpgc.auth.device import TOKEN_TTL_S, DeviceGrants, device_metadata, device_routes  # `hpgc login` (RFC 8628)
from hpgc.auth.jose import JsonWebKey, JsonWebToken
from hpgc.auth.settings import DEFAULT_AUDIENCE, AuthSettings, IssuerSettings

KEYS_FILE = "dev-issuer-keys.json"
ISSUER_FILE = "dev-issuer-url"
KEEP_OLD_KEYS = 2  # keys retired by rotation stay published a while, so tokens they signed still verify
DEFAULT_SCOPE = "hpgc:execute hpgc:deploy"
DEV_PREFIX = "/auth"
log = logging.getLogger(__name__)
DEV_WARNING = """
************************************************************************************************
*  DEVELOPMENT ISSUER ON: hpgc mints and trusts its own tokens (issuer %s).
*  Anyone who can read %s can act as ANY user.
*  Configure [[auth.issuers]] (Keycloak or any OpenID Connect provider) before real users come.
************************************************************************************************"""


class ServerSettings(Protocol):
    """What the issuer needs of the server's settings (hpgc.config.Settings has it): its address and keys."""

    data_dir: Path
    base_url: str | None
    host: str
    port: int
    auth: AuthSettings


def _write_private(path: Path, text: str, exclusive: bool) -> bool:
    """Atomic write, readable by the owner only; with exclusive, False when the file already exists."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        if exclusive:
            try:
                os.link(tmp, path)  # fails if another process created the file first: keep theirs
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _new_key(algorithm: str) -> dict[str, Any]:
    key = JsonWebKey.generate_key("EC", "P-256", is_private=True) if algorithm == "ES256" else \
        JsonWebKey.generate_key("RSA", 2048, is_private=True)
    jwk = key.as_dict(is_private=True)
    jwk.update(kid=key.thumbprint(), alg=algorithm, use="sig")
    return jwk


def _public(jwk: dict[str, Any]) -> dict[str, Any]:
    public = JsonWebKey.import_key(jwk).as_dict(is_private=False)
    public.update(kid=jwk["kid"], alg=jwk["alg"], use="sig")
    return public


class DevIssuer:
    """Keys on disk, reloaded when the file changes (a rotation by another process is seen at once)."""

    def __init__(self, data_dir: Path, algorithm: str = "ES256") -> None:
        self.dir = data_dir / "auth"
        self.algorithm = algorithm
        self._keys: list[dict[str, Any]] = []
        self._stamp: tuple[int, int] | None = None

    @property
    def key_file(self) -> Path:
        return self.dir / KEYS_FILE

    def load(self) -> None:
        """Read the keys, creating the first one when there is none or the algorithm changed."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key_file.exists():
            _write_private(self.key_file, json.dumps({"keys": [_new_key(self.algorithm)]}), exclusive=True)
        self._read()
        if self._keys[-1].get("alg") != self.algorithm:
            self.rotate()

    def _read(self) -> None:
        st = self.key_file.stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            keys = json.loads(self.key_file.read_text())["keys"]
            if not keys:
                raise ValueError(f"{self.key_file} holds no key")
            self._keys, self._stamp = keys, stamp

    def keys(self) -> list[dict[str, Any]]:
        if self._stamp is None:
            self.load()
        else:
            self._read()
        return self._keys

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_public(k) for k in self.keys()]}

    def rotate(self) -> str:
        """A new signing key; the previous ones stay published (up to KEEP_OLD_KEYS). Returns the new kid."""
        new = _new_key(self.algorithm)
        kept = self.keys()[-KEEP_OLD_KEYS:]
        _write_private(self.key_file, json.dumps({"keys": [*kept, new]}), exclusive=False)
        self._read()
        return str(new["kid"])

    def mint(self, issuer: str, user: str, scope: str = DEFAULT_SCOPE, ttl: int = 3600,
             audience: str = DEFAULT_AUDIENCE, **claims: Any) -> str:
        key = self.keys()[-1]
        now = int(time.time())
        payload = {"iss": issuer, "sub": user, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl,
                   "jti": uuid.uuid4().hex, "scope": scope, "preferred_username": user, "name": user,
                   "client_id": "hpgc-dev", **claims}
        header = {"alg": key["alg"], "kid": key["kid"], "typ": "at+jwt"}
        token: bytes = JsonWebToken([key["alg"]]).encode(header, payload, key)
        return token.decode()

    # The issuer identifier is the URL the serving process publishes discovery at; `hpgc token` reads it here
    # so that its tokens carry the `iss` the server expects.
    def record_issuer(self, url: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.dir / ISSUER_FILE).write_text(url + "\n")

    def recorded_issuer(self) -> str | None:
        path = self.dir / ISSUER_FILE
        return path.read_text().strip() or None if path.exists() else None


def discovery(issuer: str) -> dict[str, Any]:
    """A minimal OpenID Provider Metadata document: enough for resource servers to find the keys."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["hpgc:execute", "hpgc:deploy", "hpgc:admin"],
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "scope", "preferred_username", "name"],
    }


def dev_issuer_url(settings: ServerSettings) -> str:
    """The embedded issuer's identifier: the public URL when configured, else the listening address."""
    if settings.base_url:
        return settings.base_url.rstrip("/") + DEV_PREFIX
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}{DEV_PREFIX}"


def cli_token(settings: ServerSettings, user: str, scope: str, ttl: int, issuer: str | None) -> tuple[str, str | None]:
    """`hpgc token`: (token, warning). The issuer is the one the server using this data dir recorded."""
    dev = DevIssuer(settings.data_dir, settings.auth.dev_issuer.algorithm)
    dev.load()
    url = issuer or dev.recorded_issuer() or dev_issuer_url(settings)
    warning = None
    if issuer is None and not settings.auth.dev_issuer_active:
        warning = ("the development issuer is not enabled in this configuration: a server using it will "
                   "refuse this token")
    return dev.mint(url, user, scope, ttl), warning


def dev_issuer_settings(settings: ServerSettings, url: str) -> IssuerSettings:
    return IssuerSettings(issuer=url, audience=[DEFAULT_AUDIENCE], algorithms=["ES256", "RS256"],
                          subject_prefix=settings.auth.dev_issuer.subject_prefix, allow_http=True,
                          jwks_refresh_min_s=1.0)


# HTTP -------------------------------------------------------------------------------
Grant = Callable[[Any], dict[str, Any] | None]


def dev_issuer_routes(app: web.Application, dev: DevIssuer, issuer_url: str) -> Grant:
    """The issuer's routes; returns its authorization_code grant, which the embedded server's web sign-in
    redeems in-process (the issuer's URL may not be the one a test client reaches the server at)."""
    async def openid_configuration(request: web.Request) -> web.Response:
        device = device_metadata(issuer_url)
        return web.json_response({**discovery(issuer_url), **device,
                                  "grant_types_supported": ["authorization_code", *device["grant_types_supported"]]})

    async def jwks(request: web.Request) -> web.Response:
        keys = await asyncio.to_thread(dev.jwks)
        return web.json_response(keys, headers={"Cache-Control": "max-age=60"})

    app.router.add_get(f"{DEV_PREFIX}/.well-known/openid-configuration", openid_configuration)
    app.router.add_get(f"{DEV_PREFIX}/jwks", jwks)
    codes = AuthorizationCodes()
    signin_routes(app, DEV_PREFIX, codes, issuer_url)

    def mint(user: str, scope: str, ttl: int) -> str:
        return dev.mint(issuer_url, user, scope, ttl)

    grant = code_grant(codes, mint, TOKEN_TTL_S)
    device_routes(app, DEV_PREFIX, issuer_url, DeviceGrants(dev.dir), mint, {"authorization_code": grant})
    return grant


def dev_issuer_app(dev: DevIssuer, issuer_url: str) -> web.Application:
    """`hpgc dev-issuer`: the same issuer alone, to be trusted by a server as any OIDC provider would be."""
    app = web.Application()
    dev_issuer_routes(app, dev, issuer_url)
    return app


def run_dev_issuer(settings: ServerSettings, host: str, port: int) -> int:
    """Serve the development issuer until interrupted; port 0 picks a free one (printed, and recorded in the
    data dir for `hpgc token`)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # before the URL is printed: a client that reads it may connect at once (refused until listen)
    url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}{DEV_PREFIX}"
    dev = DevIssuer(settings.data_dir, settings.auth.dev_issuer.algorithm)
    dev.load()
    dev.record_issuer(url)
    log.warning(DEV_WARNING, url, dev.key_file)
    print(f"hpgc development issuer at {url}", flush=True)
    web.run_app(dev_issuer_app(dev, url), sock=sock, print=None, access_log=None)
    return 0
