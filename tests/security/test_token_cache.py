"""Attacks on the cache of verified JWTs (hpgc/auth/token_cache.py): what a full verification refuses, a
cached token is refused too. The clock is the fake one of tests/unit/test_auth_issuer_keys.py."""

from __future__ import annotations

import pytest

from hpgc.auth import issuer as oidc
from hpgc.auth.principal import InvalidToken
from hpgc.auth.settings import AuthSettings
from hpgc.auth.verifier import TokenVerifier
from tests.fake_issuer import FakeIssuer, rsa_key
from tests.unit.test_auth_issuer_keys import ISS, Clock, Jwks, issuer


def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(oidc.time, "monotonic", lambda: c.mono)
    monkeypatch.setattr(oidc.time, "time", lambda: c.wall)  # the time module's: authlib's checks see it too
    return c


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return fake_clock(monkeypatch)


def setup(**settings: object) -> tuple[TokenVerifier, FakeIssuer, Jwks]:
    fake = FakeIssuer(keys=[rsa_key()])
    fake.url = ISS
    jwks = Jwks(fake.signing)
    iss = issuer(jwks, **settings)
    return TokenVerifier(AuthSettings(issuers=[iss.settings]), [iss]), fake, jwks


async def test_an_expired_cached_token_is_refused(clock: Clock) -> None:
    verifier, fake, _ = setup()
    token = fake.token(exp=int(clock.wall) + 60)
    await verifier.verify(token)
    clock.advance(60 + 30 - 1)  # within exp + leeway (30 s): still good, from the cache
    await verifier.verify(token)
    clock.advance(2)
    with pytest.raises(InvalidToken, match="the token has expired"):
        await verifier.verify(token)
    with pytest.raises(InvalidToken, match="the token has expired"):
        await verifier.verify(token)  # and again: the refusal is not cached as an acceptance either


async def test_a_cached_token_with_another_signature_is_not_a_hit(clock: Clock) -> None:
    verifier, fake, _ = setup()
    token = fake.token()
    await verifier.verify(token)
    head, payload, sig = token.split(".")
    for forged in (f"{head}.{payload}.{sig[:-4]}AAAA", f"{head}.{payload}.", f"{head}.{payload}.{sig}x"):
        with pytest.raises(InvalidToken):
            await verifier.verify(forged)


async def test_a_cached_token_whose_key_left_the_jwks_is_refused(clock: Clock) -> None:
    verifier, fake, jwks = setup(jwks_max_age_s=300)
    token = fake.token(exp=int(clock.wall) + 3600)
    await verifier.verify(token)
    jwks.keys = [FakeIssuer.public(rsa_key())]  # the issuer dropped a compromised key
    clock.advance(301)  # the keys are fetched again after their max age
    with pytest.raises(InvalidToken, match="is not one of issuer"):
        await verifier.verify(token)


async def test_a_key_replaced_under_the_same_kid_means_verifying_again(clock: Clock) -> None:
    verifier, fake, jwks = setup(jwks_max_age_s=300)
    token = fake.token(exp=int(clock.wall) + 3600)
    await verifier.verify(token)
    impostor = rsa_key()
    jwks.keys = [{**FakeIssuer.public(impostor), "kid": fake.signing.kid}]
    clock.advance(301)
    with pytest.raises(InvalidToken, match="signature does not verify"):
        await verifier.verify(token)
