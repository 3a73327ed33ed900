"""A stand-in OpenID provider for auth tests: discovery, JWKS and RFC 7662 introspection over real HTTP
(aiohttp on 127.0.0.1), with counters so tests can see what the verifier fetched. Also forges tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from hpgc.auth.jose import JsonWebKey, JsonWebToken, Key

CLIENT = ("hpgc-rs", "s3cret")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def rsa_key() -> Key:
    return JsonWebKey.generate_key("RSA", 2048, options={"kid": uuid.uuid4().hex[:12]}, is_private=True)


def ec_key() -> Key:
    return JsonWebKey.generate_key("EC", "P-256", options={"kid": uuid.uuid4().hex[:12]}, is_private=True)


class FakeIssuer:
    def __init__(self, path: str = "/realms/test", keys: list[Key] | None = None, audience: str = "hpgc") -> None:
        self.path = path
        self.keys = keys or [rsa_key()]
        self.signing = self.keys[0]
        self.audience = audience
        self.url = ""  # set once served
        self.jwks_hits = 0
        self.introspection_hits = 0
        self.active_tokens: dict[str, dict[str, Any]] = {}
        self.extra_metadata: dict[str, Any] = {}
        self.metadata_issuer: str | None = None  # to serve a discovery document naming another issuer

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"{self.path}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{self.path}/jwks", self._jwks)
        app.router.add_post(f"{self.path}/introspect", self._introspect)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.metadata_issuer or self.url, "jwks_uri": f"{self.url}/jwks",
                                  "introspection_endpoint": f"{self.url}/introspect", **self.extra_metadata})

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        return web.json_response({"keys": [self.public(k) for k in self.keys]})

    async def _introspect(self, request: web.Request) -> web.Response:
        self.introspection_hits += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT[0]}:{CLIENT[1]}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        answer = self.active_tokens.get(str(form.get("token")))
        return web.json_response(answer if answer is not None else {"active": False})

    @staticmethod
    def public(key: Key) -> dict[str, Any]:
        jwk = key.as_dict(is_private=False)
        jwk.update(kid=key.kid, use="sig")
        return jwk

    def serve_at(self, base: str) -> None:
        self.url = base.rstrip("/") + self.path

    def rotate(self, drop_old: bool = False) -> Key:
        new = rsa_key()
        self.keys = [new] if drop_old else [*self.keys, new]
        self.signing = new
        return new

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "alice-sub", "aud": self.audience, "iat": now, "nbf": now,
                  "exp": now + 600, "scope": "openid hpgc:execute", "preferred_username": "alice",
                  "name": "Alice A."}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: Key | None = None, header: dict[str, Any] | None = None, **claims: Any) -> str:
        key = key or self.signing
        alg = "ES256" if key.kty == "EC" else "RS256"
        head = {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}
        head = {k: v for k, v in head.items() if v is not None}
        return JsonWebToken([head["alg"]]).encode(head, self.claims(**claims), key).decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64json(header)}.{b64json(payload)}.{b64(signature)}"


def rs256_raw(header: dict[str, Any], payload: dict[str, Any], key: Key) -> str:
    """RS256 over exactly this header (authlib's encoder would put the key's own kid in)."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    sig = key.get_private_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(sig)}"


def hs256_with_public_key(issuer: FakeIssuer) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the RSA public key a verifier might load."""
    pem = issuer.signing.as_pem(is_private=False)
    header = {"alg": "HS256", "kid": issuer.signing.kid, "typ": "JWT"}
    signing_input = f"{b64json(header)}.{b64json(issuer.claims())}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"
