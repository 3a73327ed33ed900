"""JWTs already verified, so that a client polling with the same token does not pay a signature check
per request (a third of the event loop's time on `GET /jobs/{id}` under load, docs/performance.md).

What a hit still decides, so that the cache never accepts what a full verification would refuse:
- the token is looked up by the SHA-256 of the whole token (header, claims and signature), so a token that
  differs anywhere, a forged signature included, is not a hit; the cache never holds tokens themselves;
- its `exp` is checked against the clock on every hit, with the same leeway as the verification;
- the key that verified it must still be its issuer's key for that kid: after the issuer's keys are fetched
  again (every `jwks_max_age_s`, or for an unknown kid), entries verified with a key that is gone, or
  replaced, are verified again, so dropping a compromised key from the JWKS is honoured as before.
JWTs are not revocable one by one here (the verifier never asks the issuer about a JWT): caching changes
nothing about that.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from hpgc.auth.principal import Principal

MAX_ENTRIES = 10_000


@dataclass
class Verified:
    issuer_id: str
    kid: str | None
    key: object  # the key object that verified the signature: identity is compared, never its value
    claims: dict[str, Any]
    exp: float
    principal: Principal | None = None  # who the claims stand for, derived on first use (TokenVerifier.principal)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class VerifiedTokens:
    """At most `size` verified tokens, until their `exp` (+ leeway)."""

    def __init__(self, leeway_s: float, size: int = MAX_ENTRIES) -> None:
        self.leeway_s = leeway_s
        self.size = size
        self._entries: dict[str, Verified] = {}

    def get(self, key: str) -> Verified | None:
        hit = self._entries.get(key)
        if hit is not None and hit.exp < time.time() - self.leeway_s:
            del self._entries[key]
            return None
        return hit

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def put(self, key: str, entry: Verified) -> None:
        if self.size <= 0:
            return
        if len(self._entries) >= self.size:
            now = time.time() - self.leeway_s
            self._entries = {k: v for k, v in self._entries.items() if v.exp >= now}
            while len(self._entries) >= self.size:  # the oldest go first: dicts keep insertion order
                del self._entries[next(iter(self._entries))]
        self._entries[key] = entry

    def __len__(self) -> int:
        return len(self._entries)
