"""The cache of verified JWTs: a token's signature is checked once, the cache is bounded, and expired entries
go first. Attacks on it are in tests/security/test_token_cache.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hpgc.auth import verifier as verifier_module
from hpgc.auth.principal import InvalidToken
from hpgc.auth.token_cache import Verified, VerifiedTokens
from tests.security.test_token_cache import fake_clock, setup
from tests.unit.test_auth_issuer_keys import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return fake_clock(monkeypatch)


async def test_the_signature_of_a_token_is_checked_once(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, fake, jwks = setup()
    decodes = []
    real = verifier_module.JsonWebToken

    class Counting(real):  # type: ignore[misc,valid-type]
        def decode(self, *args: object, **kwargs: object) -> object:
            decodes.append(1)
            return super().decode(*args, **kwargs)

    monkeypatch.setattr(verifier_module, "JsonWebToken", Counting)
    token = fake.token()
    for _ in range(3):
        issuer, claims = await verifier.verify(token)
        assert issuer.id == fake.url and claims["sub"] == "alice-sub"
    claims["sub"] = "mallory"  # a caller changing its copy does not change the cached claims
    assert (await verifier.verify(token))[1]["sub"] == "alice-sub"
    assert len(decodes) == 1 and jwks.fetches == 1
    await verifier.verify(fake.token(sub="bob"))
    assert len(decodes) == 2, "another token is verified"


def entry(exp: float) -> Verified:
    return Verified("iss", None, object(), {}, exp)


def test_the_cache_is_bounded_dropping_expired_then_oldest(clock: Clock) -> None:
    cache = VerifiedTokens(leeway_s=0, size=3)
    cache.put("a", entry(clock.wall + 100))
    cache.put("b", entry(clock.wall + 10))
    cache.put("c", entry(clock.wall + 100))
    clock.advance(20)  # b expired
    cache.put("d", entry(clock.wall + 100))
    assert len(cache) == 3 and cache.get("b") is None and cache.get("a") is not None
    cache.put("e", entry(clock.wall + 100))  # nothing expired: the oldest (a) goes
    assert len(cache) == 3 and cache.get("a") is None and cache.get("e") is not None


def test_a_cache_of_size_zero_keeps_nothing(clock: Clock) -> None:
    cache = VerifiedTokens(leeway_s=0, size=0)
    cache.put("a", entry(clock.wall + 100))
    assert cache.get("a") is None and len(cache) == 0



async def test_a_verified_tokens_principal_is_derived_once(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, fake, _ = setup()
    derived = []
    real = verifier_module.principal_from_claims

    def counting(*args: object, **kwargs: object) -> object:
        derived.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verifier_module, "principal_from_claims", counting)
    token = fake.token()
    first = await verifier.principal(token)
    assert first.subject.endswith("alice-sub") and await verifier.principal(token) is first
    assert len(derived) == 1
    other = await verifier.principal(fake.token(sub="bob"))
    assert other.subject.endswith("bob") and len(derived) == 2
    with pytest.raises(ValidationError):
        first.subject = "mallory"  # type: ignore[misc]  # shared between requests: it cannot be changed
    clock.advance(10 * 3600)  # expired: verified (and refused) again, never served from the cache
    with pytest.raises(InvalidToken):
        await verifier.principal(token)
