"""Bearer token → verified claims: JWTs against each issuer's JWKS (OpenID discovery), opaque tokens by
RFC 7662 introspection. Every refusal raises InvalidToken with a reason fit for the client.

What decides acceptance is never taken from the token alone: the issuer must be configured, the algorithm
must be one configured for it, the key comes from that issuer's JWKS (never from jku/x5u/jwk headers), and
its type must fit the algorithm.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Any

from hpgc.auth.identity import principal_from_claims
from hpgc.auth.issuer import Issuer
from hpgc.auth.jose import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidTokenError,
    JoseError,
    JsonWebToken,
    MissingClaimError,
)
from hpgc.auth.principal import AuthUnavailable, InvalidToken, Principal
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.auth.token_cache import Verified, VerifiedTokens, digest

log = logging.getLogger(__name__)
MAX_TOKEN = 16 * 1024
KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
ACCESS_TOKEN_TYPES = {"jwt", "at+jwt", "application/at+jwt"}


def _b64json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return None


def split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, unverified payload) of a compact JWS, or None when the token is not one (opaque)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header = _b64json(parts[0])
    if not isinstance(header, dict) or "alg" not in header:
        return None
    payload = _b64json(parts[1])
    if not isinstance(payload, dict):
        raise InvalidToken("the token's payload is not a JSON object")
    return header, payload


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_introspection(answer: dict[str, Any], settings: IssuerSettings, leeway_s: int) -> None:
    """An active RFC 7662 answer is trusted only as far as a JWT would be: it must say when it ends, and for
    which issuer and audience it was made. RFC 7662 makes those members optional; an answer that leaves
    them out could be for a token of another realm or client, or one that never expires."""
    now = time.time()
    if answer.get("active") is not True:
        raise InvalidToken("the token is not active (introspection)")
    if not _number(answer.get("exp")):
        raise InvalidToken("the introspection answer gives the token no expiry (exp)")
    if answer["exp"] < now - leeway_s:
        raise InvalidToken("the token has expired")
    if _number(answer.get("nbf")) and answer["nbf"] > now + leeway_s:
        raise InvalidToken("the token is not valid yet")
    if answer.get("iss") != settings.issuer:
        raise InvalidToken("the introspection answer does not name this issuer (iss)" if "iss" not in answer
                           else "the introspected token is from another issuer")
    if settings.audience:
        aud = answer.get("aud")
        auds = [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] \
            if isinstance(aud, list) else []
        if not auds:
            raise InvalidToken("the introspection answer names no audience (aud), and this server needs one "
                               f"of: {', '.join(settings.audience)}")
        if not set(auds) & set(settings.audience):
            raise InvalidToken("the token's 'aud' claim is not acceptable here")


class TokenVerifier:
    def __init__(self, settings: AuthSettings, issuers: list[Issuer]) -> None:
        self.settings = settings
        self.issuers = {i.id: i for i in issuers}
        self._verified = VerifiedTokens(settings.leeway_s)  # JWTs whose signature was checked (token_cache.py)

    async def warm_up(self) -> None:
        """Fetch discovery and keys early, so the first request is quick and a misconfiguration shows in the
        log at start; an issuer that is down is retried on the first request."""
        for issuer in self.issuers.values():
            try:
                await issuer.refresh_keys(stale_ok=False)
            except AuthUnavailable as exc:
                log.warning("%s (retried on the first request that needs it)", exc.detail)

    async def principal(self, token: str) -> Principal:
        """Who the token stands for (identity.py): verified as `verify` does; derived from the claims once
        per cached verification, since the same token and settings always give the same principal."""
        issuer, claims, entry = await self._verify(token)
        if entry is not None and entry.principal is not None:
            return entry.principal
        who = principal_from_claims(claims, issuer.id, issuer.settings.subject_prefix, self.settings)
        if entry is not None:
            entry.principal = who
        return who

    async def verify(self, token: str) -> tuple[Issuer, dict[str, Any]]:
        issuer, claims, _ = await self._verify(token)
        return issuer, dict(claims)

    async def _verify(self, token: str) -> tuple[Issuer, dict[str, Any], Verified | None]:
        """The issuer, the claims (not to be changed: they may be the cache's) and the cache entry (None for an
        introspected token, which is not cached here)."""
        if len(token) > MAX_TOKEN:
            raise InvalidToken("the token is too long")
        cache_key = digest(token)  # only JWTs are cached: a hit needs no parsing of the token
        hit = self._verified.get(cache_key)
        if hit is not None:
            if await self._still_valid(hit):
                return self.issuers[hit.issuer_id], hit.claims, hit
            self._verified.drop(cache_key)
        parts = split_jwt(token)
        if parts is None:
            issuer, claims = await self._opaque(token)
            return issuer, claims, None
        header, unverified = parts
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise InvalidToken(f"the token's issuer {iss!r} is not trusted here"[:200])
        claims, key = await self._verify_jwt(token, header, issuer)
        entry = Verified(issuer.id, header.get("kid"), key, claims, float(claims["exp"]))
        self._verified.put(cache_key, entry)
        return issuer, claims, entry

    async def _still_valid(self, hit: Verified) -> bool:
        """Whether the key that verified a cached token is still its issuer's key for its kid (the issuer's
        keys are fetched again after jwks_max_age_s); False: verify it again."""
        try:
            current = await self.issuers[hit.issuer_id].key(hit.kid)
        except InvalidToken:
            return False
        return current is hit.key

    async def _verify_jwt(self, token: str, header: dict[str, Any], issuer: Issuer) -> tuple[dict[str, Any], object]:
        """The token's claims, and the key that verified its signature."""
        s = issuer.settings
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in s.algorithms:
            raise InvalidToken(f"the token's algorithm {alg!r} is not accepted (accepted: {', '.join(s.algorithms)})")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
            raise InvalidToken(f"a token of type {typ!r} is not an access token")
        if "crit" in header:  # RFC 7515 §4.1.11: extensions we do not implement must make us refuse
            raise InvalidToken("the token has critical header extensions this server does not support")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's kid is not a string")
        key = await issuer.key(kid)
        if key.kty != KTY_FOR_ALG[alg[:2]] or key.tokens.get("alg", alg) != alg:
            raise InvalidToken(f"the key {kid!r} is not for algorithm {alg}")
        options: dict[str, Any] = {"iss": {"essential": True, "value": issuer.id}, "exp": {"essential": True}}
        if s.audience:
            options["aud"] = {"essential": True, "values": s.audience}
        try:
            claims = JsonWebToken([alg]).decode(token, key, claims_options=options)
            claims.validate(leeway=self.settings.leeway_s)
        except ExpiredTokenError:
            raise InvalidToken("the token has expired") from None
        except InvalidTokenError:
            raise InvalidToken("the token is not valid yet (nbf or iat in the future)") from None
        except BadSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except InvalidClaimError as exc:
            raise InvalidToken(f"the token's '{exc.claim_name}' claim is not acceptable here") from None
        except MissingClaimError as exc:
            raise InvalidToken(f"the token lacks a claim: {exc.description}") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"the token is malformed: {getattr(exc, 'description', None) or exc}") from None
        return dict(claims), key

    async def _opaque(self, token: str) -> tuple[Issuer, dict[str, Any]]:
        introspecting = [i for i in self.issuers.values() if i.settings.introspects]
        if not introspecting:
            raise InvalidToken("the token is not a JWT, and no issuer here introspects opaque tokens")
        issuer = introspecting[0]  # configuration allows one: an opaque token must not visit several issuers
        answer = await issuer.introspect(token)
        check_introspection(answer, issuer.settings, self.settings.leeway_s)
        return issuer, answer
